// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qemu/qmp.h"
#include "util/alloc.h"

/*
 * A stand-in for qemu-guest-agent on the other end of a socketpair: it leaves stale bytes in
 * the channel, answers guest-sync-delimited after a 0xff, and runs a fake guest-exec whose
 * status first says "not exited", then exited with code 3 and base64 output.
 */
struct agent {
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

static void *agent_main(void *arg)
{
	struct agent *a = arg;
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
		unsigned id;
		char out[256];
		if (sscanf(req, "{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%u}}",
			   &id) == 1) {
			snprintf(out, sizeof(out), "\xff{\"return\": %u}\n", id);
			say(a->fd, out);
		} else if (strstr(req, "\"guest-exec\"")) {
			assert_non_null(strstr(req, "\"arg\":[\"-c\",\"echo hi\"]"));
			say(a->fd, "{\"return\": {\"pid\": 42}}\n");
		} else if (strstr(req, "\"guest-exec-status\"")) {
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

static void test_agent(void **state)
{
	(void)state;
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	struct agent a = {.fd = sp[1]};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, agent_main, &a), 0);
	struct qemu_qmp q = {0};
	assert_int_equal(qemu_qga_open(&q, sp[0], 5000), 0);
	const char *argv[] = {"/bin/sh", "-c", "echo hi", NULL};
	char *out = NULL, *err = NULL;
	assert_int_equal(qemu_qga_exec(&q, argv, NULL, 5000, &out, &err), 3);
	assert_string_equal(out, "hi\n");
	free(out);
	assert_int_equal(qemu_qmp_call(&q, "guest-nothing", NULL, 5000, NULL, &err), -EREMOTEIO);
	assert_string_equal(err, "unknown");
	free(err);
	qemu_qmp_release(&q);
	close(sp[0]);
	pthread_join(t, NULL);
	close(sp[1]);
}

static void test_no_agent_times_out(void **state)
{
	(void)state;
	int sp[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	struct agent a = {.fd = sp[1], .silent = true};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, agent_main, &a), 0);
	struct qemu_qmp q = {0};
	assert_int_equal(qemu_qga_open(&q, sp[0], 200), -ETIMEDOUT);
	qemu_qmp_release(&q);
	close(sp[0]);
	pthread_join(t, NULL);
	close(sp[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_agent),
	    cmocka_unit_test(test_no_agent_times_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
