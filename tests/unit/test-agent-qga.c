// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/qga.h"
#include "util/alloc.h"
#include "util/json.h"

static json_t *parse(const char *s)
{
	json_t *j = NULL;
	assert_int_equal(json_parse_buf(s, strlen(s), &j), 0);
	return j;
}

static void test_pick_ipv4(void **state)
{
	(void)state;
	char ip[16];
	/* Loopback, link-local and IPv6 are skipped; a private address counts (as in Go). */
	json_t *j = parse(
	    "[{\"name\":\"lo\",\"ip-addresses\":[{\"ip-address-type\":\"ipv4\",\"ip-address\":"
	    "\"127.0.0.1\",\"prefix\":8}]},"
	    "{\"name\":\"eth0\",\"ip-addresses\":[{\"ip-address-type\":\"ipv6\",\"ip-address\":"
	    "\"fe80::1\"},{\"ip-address-type\":\"ipv4\",\"ip-address\":\"169.254.3.4\"},"
	    "{\"ip-address-type\":\"ipv4\",\"ip-address\":\"192.168.64.5\"}]},"
	    "{\"name\":\"eth1\",\"ip-addresses\":[{\"ip-address-type\":\"ipv4\",\"ip-address\":"
	    "\"10.0.0.9\"}]}]");
	assert_int_equal(agent_qga_pick_ipv4(j, ip), 0);
	assert_string_equal(ip, "192.168.64.5");
	json_decref(j);
	j = parse("[{\"name\":\"lo\",\"ip-addresses\":[{\"ip-address-type\":\"ipv4\","
		  "\"ip-address\":\"127.0.0.1\"}]},{\"name\":\"x\"}]");
	assert_int_equal(agent_qga_pick_ipv4(j, ip), -ENOENT);
	json_decref(j);
	j = parse("{\"not\":\"an array\"}");
	assert_int_equal(agent_qga_pick_ipv4(j, ip), -EBADMSG);
	json_decref(j);
}

static void test_exec_args(void **state)
{
	(void)state;
	char *args[] = {(char *)"-c", (char *)"cat"};
	json_t *j = agent_qga_exec_args("sh", args, 2, "hi", 2);
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "{\"arg\":[\"-c\",\"cat\"],\"capture-output\":true,\"input-data\":"
			       "\"aGk=\",\"path\":\"sh\"}");
	free(s);
	json_decref(j);
	j = agent_qga_exec_args("true", NULL, 0, NULL, 0);
	assert_null(json_object_get(j, "input-data"));
	json_decref(j);
}

static void test_exec_status(void **state)
{
	(void)state;
	struct agent_qga_exec_status st;
	json_t *j = parse("{\"exited\":false}");
	assert_int_equal(agent_qga_exec_status_parse(j, &st), 0);
	assert_false(st.exited);
	json_decref(j);
	j = parse("{\"exited\":true,\"exitcode\":3,\"out-data\":\"aGVsbG8=\",\"err-data\":\"\","
		  "\"out-truncated\":true}");
	assert_int_equal(agent_qga_exec_status_parse(j, &st), 0);
	assert_true(st.exited);
	assert_int_equal(st.code, 3);
	assert_int_equal(st.out_len, 5);
	assert_memory_equal(st.out, "hello", 5);
	assert_int_equal(st.err_len, 0);
	assert_true(st.truncated);
	agent_qga_exec_status_release(&st);
	json_decref(j);
	/* Killed by a signal: -1, as Tart's agent reports. */
	j = parse("{\"exited\":true,\"signal\":9}");
	assert_int_equal(agent_qga_exec_status_parse(j, &st), 0);
	assert_int_equal(st.code, -1);
	assert_int_equal(st.signal, 9);
	agent_qga_exec_status_release(&st);
	json_decref(j);
	/* Malformed: no exit code, bad base64, wrong types. */
	const char *bad[] = {
	    "{\"exited\":true}", "{\"exited\":true,\"exitcode\":0,\"out-data\":\"@@@\"}",
	    "{\"exited\":\"yes\"}", "{\"exited\":true,\"exitcode\":0,\"err-data\":5}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		j = parse(bad[i]);
		assert_int_equal(agent_qga_exec_status_parse(j, &st), -EBADMSG);
		json_decref(j);
	}
}

/* The protocol against a scripted qga on the other end of a socketpair. */
struct result {
	int calls, r;
	char text[256];
};

static void on_result(int r, json_t *ret, const char *err, void *ud)
{
	struct result *res = ud;
	res->calls++;
	res->r = r;
	if (r == 0) {
		char *s = json_dumps(ret, JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(res->text, sizeof(res->text), "%s", s);
		free(s);
	} else if (err) {
		snprintf(res->text, sizeof(res->text), "%s", err);
	}
}

/* Run the client until nothing moves; returns what it wrote to the peer. */
static void pump(struct agent_qga *q, usec_t now)
{
	for (int i = 0; i < 20; i++) {
		struct pollfd p = {.fd = q->fd, .events = agent_qga_events(q)};
		if (poll(&p, 1, 0) <= 0)
			break;
		agent_qga_handle(q, p.revents, now);
	}
}

static size_t peer_read(int fd, char *buf, size_t len)
{
	ssize_t k = read(fd, buf, len - 1);
	buf[k > 0 ? k : 0] = 0;
	return k > 0 ? (size_t)k : 0;
}

static void test_sync_and_calls(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	struct agent_qga q;
	agent_qga_init(&q, sv[0]);
	struct result res = {0};
	/* Port closed: a call fails at once. */
	agent_qga_call(&q, "guest-ping", NULL, on_result, &res, 1);
	assert_int_equal(res.calls, 1);
	assert_int_equal(res.r, -ENOTCONN);

	agent_qga_port_changed(&q, true, 1000);
	assert_int_equal(q.state, QGA_SYNCING);
	memset(&res, 0, sizeof(res));
	agent_qga_call(&q, "guest-info", NULL, on_result, &res, 1000);
	pump(&q, 1000);
	char buf[4096];
	peer_read(sv[1], buf, sizeof(buf));
	/* 0xFF first (qga flushes its parser), then the sync with our id; no call yet. */
	assert_int_equal((unsigned char)buf[0], 0xff);
	assert_non_null(strstr(buf, "guest-sync-delimited"));
	assert_null(strstr(buf, "guest-info"));
	char id[32];
	snprintf(id, sizeof(id), "%llu", (unsigned long long)q.sync_id);
	/* Stale output of an earlier client, then the sentinel and a wrong echo, then ours. */
	char reply[512];
	int n = snprintf(reply, sizeof(reply),
			 "{\"return\": {\"stale\": 1}}\n\xff{\"return\": 12345}\n"
			 "{\"return\": %s}\n",
			 id);
	assert_int_equal(write(sv[1], reply, (size_t)n), n);
	pump(&q, 1001);
	assert_int_equal(q.state, QGA_READY);
	assert_int_equal(res.calls, 0);
	peer_read(sv[1], buf, sizeof(buf));
	assert_string_equal(buf, "{\"execute\":\"guest-info\"}\n");
	const char ok[] = "{\"return\": {\"version\": \"7.2\"}}\n";
	assert_int_equal(write(sv[1], ok, sizeof(ok) - 1), (ssize_t)sizeof(ok) - 1);
	pump(&q, 1002);
	assert_int_equal(res.calls, 1);
	assert_int_equal(res.r, 0);
	assert_string_equal(res.text, "{\"version\":\"7.2\"}");

	/* An error reply carries qga's description. */
	memset(&res, 0, sizeof(res));
	agent_qga_call(&q, "guest-exec", json_pack("{s:s}", "path", "/nope"), on_result, &res,
		       2000);
	pump(&q, 2000);
	peer_read(sv[1], buf, sizeof(buf));
	const char err[] =
	    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no such file\"}}\n";
	assert_int_equal(write(sv[1], err, sizeof(err) - 1), (ssize_t)sizeof(err) - 1);
	pump(&q, 2001);
	assert_int_equal(res.r, -EREMOTEIO);
	assert_string_equal(res.text, "no such file");

	/* No answer in time: the call fails and a new sync starts (a late reply is dropped). */
	memset(&res, 0, sizeof(res));
	agent_qga_call(&q, "guest-exec-status", NULL, on_result, &res, 3000);
	pump(&q, 3000);
	peer_read(sv[1], buf, sizeof(buf));
	agent_qga_handle(&q, 0, 3000 + QGA_CALL_TIMEOUT_USEC);
	assert_int_equal(res.r, -ETIMEDOUT);
	assert_int_equal(q.state, QGA_SYNCING);

	/* The port closes: pending calls fail, nothing more is sent. */
	memset(&res, 0, sizeof(res));
	agent_qga_call(&q, "guest-ping", NULL, on_result, &res, 4000);
	agent_qga_port_changed(&q, false, 4001);
	assert_int_equal(res.r, -ENOTCONN);
	assert_int_equal(q.state, QGA_DOWN);
	assert_int_equal(agent_qga_events(&q) & POLLOUT, 0);

	/* A probe (restored VM) that nobody answers gives up: no qga. */
	agent_qga_probe(&q, 5000);
	assert_int_equal(q.state, QGA_SYNCING);
	agent_qga_handle(&q, 0, 5000 + QGA_SYNC_TIMEOUT_USEC);
	assert_int_equal(q.state, QGA_DOWN);

	agent_qga_release(&q);
	close(sv[0]);
	close(sv[1]);
}

/*
 * A stand-in for qemu-guest-agent on the other end of a socketpair, for the blocking helpers:
 * it leaves stale bytes in the channel, answers guest-sync-delimited after a 0xff, and runs a
 * fake guest-exec whose status first says "not exited", then exited with code 3 and output.
 */
struct fake_qga {
	int fd;
	bool silent; /* no agent at all: never answers */
};

static char *read_line(int fd)
{
	char buf[8192];
	size_t n = 0;
	while (n + 1 < sizeof(buf)) {
		ssize_t k = read(fd, buf + n, 1);
		if (k <= 0)
			return NULL;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return xstrdup(buf);
}

static void say(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void *fake_qga_main(void *arg)
{
	struct fake_qga *a = arg;
	say(a->fd, "{\"return\": {}}\n{\"ret"); /* what a previous host left half-read */
	int polls = 0;
	for (;;) {
		char *line = read_line(a->fd);
		if (!line)
			return NULL;
		if (a->silent) {
			free(line);
			continue;
		}
		char *req = line[0] == '\xff' ? line + 1 : line;
		unsigned long long id;
		char out[256];
		if (sscanf(req,
			   "{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%llu}}",
			   &id) == 1) {
			snprintf(out, sizeof(out), "\xff{\"return\": %llu}\n", id);
			say(a->fd, out);
		} else if (strstr(req, "\"guest-exec\"")) {
			assert_non_null(strstr(req, "\"arg\":[\"-c\",\"echo hi\"]"));
			say(a->fd, "{\"return\": {\"pid\": 42}}\n");
		} else if (strstr(req, "\"guest-exec-status\"")) {
			assert_non_null(strstr(req, "\"pid\":42"));
			say(a->fd, polls++ == 0
				       ? "{\"return\": {\"exited\": false}}\n"
				       : "{\"return\": {\"exited\": true, \"exitcode\": 3, "
					 "\"out-data\": \"aGkK\"}}\n");
		} else {
			say(a->fd, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
				   "\"unknown\"}}\n");
		}
		free(line);
	}
}

static void test_blocking_use(void **state)
{
	(void)state;
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	struct fake_qga a = {.fd = sp[1]};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, fake_qga_main, &a), 0);
	struct agent_qga q;
	agent_qga_open_wait(&q, sp[0]);
	usec_t deadline = now_monotonic_usec() + 5000000;
	char c[] = "-c", cmd[] = "echo hi";
	char *args[] = {c, cmd};
	struct agent_qga_exec_status st;
	char *err = NULL;
	assert_int_equal(agent_qga_exec_wait(&q, "/bin/sh", args, 2, deadline, &st, &err), 0);
	assert_true(st.exited);
	assert_int_equal(st.code, 3);
	assert_int_equal(st.out_len, 3);
	assert_memory_equal(st.out, "hi\n", 3);
	agent_qga_exec_status_release(&st);
	json_t *args2 = json_pack("{s:i}", "x", 1);
	assert_int_equal(agent_qga_call_wait(&q, "guest-nothing", args2, deadline, NULL, &err),
			 -EREMOTEIO);
	assert_int_equal(args2->refcount, 1); /* borrowed, not stolen */
	json_decref(args2);
	assert_string_equal(err, "unknown");
	free(err);
	agent_qga_release(&q);
	close(sp[0]);
	pthread_join(t, NULL);
	close(sp[1]);
}

static void test_blocking_without_agent_times_out(void **state)
{
	(void)state;
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	struct fake_qga a = {.fd = sp[1], .silent = true};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, fake_qga_main, &a), 0);
	struct agent_qga q;
	agent_qga_open_wait(&q, sp[0]);
	json_t *ret = NULL;
	assert_int_equal(
	    agent_qga_call_wait(&q, "guest-ping", NULL, now_monotonic_usec() + 200000, &ret, NULL),
	    -ETIMEDOUT);
	assert_null(ret);
	agent_qga_release(&q);
	close(sp[0]);
	pthread_join(t, NULL);
	close(sp[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pick_ipv4),
	    cmocka_unit_test(test_exec_args),
	    cmocka_unit_test(test_exec_status),
	    cmocka_unit_test(test_sync_and_calls),
	    cmocka_unit_test(test_blocking_use),
	    cmocka_unit_test(test_blocking_without_agent_times_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
