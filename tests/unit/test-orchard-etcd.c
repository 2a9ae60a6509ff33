// SPDX-License-Identifier: Apache-2.0
/* The etcd client against a scripted gateway on loopback (one canned answer per connection). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "orchard/store/etcd.h"

struct fake {
	int fd;
	const char *body;	/* the answer's body, sent after the request was read */
	const char *watch_body; /* instead, for /v3/watch (NULL: body) */
	int serve;		/* connections to answer */
	bool hang;		/* accept, read, never answer (a SIGSTOPped member) */
	int accepted;
	int held[16];
};

/* Read one request (headers, then Content-Length bytes), answer 200 with the body, close. */
static void serve_conn(struct fake *f, int c)
{
	char buf[8192];
	size_t n = 0;
	char *end = NULL;
	while (!end && n < sizeof(buf) - 1) {
		ssize_t r = read(c, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = 0;
		end = strstr(buf, "\r\n\r\n");
	}
	const char *body = f->watch_body && strstr(buf, "/v3/watch") ? f->watch_body : f->body;
	const char *cl = end ? strcasestr(buf, "content-length:") : NULL;
	size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0,
	       have = end ? n - (size_t)(end + 4 - buf) : 0;
	while (have < want) {
		ssize_t r = read(c, buf, sizeof(buf));
		if (r <= 0)
			break;
		have += (size_t)r;
	}
	char head[256];
	int hn = snprintf(head, sizeof(head),
			  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			  strlen(body));
	(void)!write(c, head, (size_t)hn);
	(void)!write(c, body, strlen(body));
	close(c);
}

static void *serve(void *userdata)
{
	struct fake *f = userdata;
	for (int i = 0; i < f->serve; i++) {
		int c = accept(f->fd, NULL, NULL);
		if (c < 0)
			return NULL;
		__atomic_add_fetch(&f->accepted, 1, __ATOMIC_SEQ_CST);
		if (f->hang && i < 16)
			f->held[i] = c; /* open and silent until the test ends */
		else
			serve_conn(f, c);
	}
	return NULL;
}

static int listen_loopback(int *ret_port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 4), 0);
	socklen_t l = sizeof(a);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	*ret_port = ntohs(a.sin_port);
	return fd;
}

struct seen {
	int64_t revisions[8];
	int types[8];
	size_t n;
};

static int on_event(void *userdata, const struct etcd_event *ev)
{
	struct seen *s = userdata;
	if (s->n < 8) {
		s->revisions[s->n] = ev->kv.mod_revision;
		s->types[s->n] = ev->type;
		s->n++;
	}
	return 0;
}

/* An event whose key does not decode is handed over as such and passed, not replayed. */
static void test_watch_skips_an_unparsable_event(void **state)
{
	(void)state;
	/* "a2V5" is "key", "dmFs" is "val"; "!!!" is no base64 */
	struct fake f = {
	    .body = "{\"result\":{\"header\":{\"revision\":\"7\"},\"created\":true}}\n"
		    "{\"result\":{\"events\":[{\"kv\":{\"key\":\"!!!\",\"value\":\"dmFs\","
		    "\"mod_revision\":\"5\"}},{\"kv\":{\"key\":\"a2V5\",\"value\":\"dmFs\","
		    "\"mod_revision\":\"6\"}}]}}\n"
		    "{\"result\":{\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"a2V5\","
		    "\"mod_revision\":\"7\"}}]}}\n"};
	int port;
	f.fd = listen_loopback(&port);
	f.serve = 1;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, serve, &f), 0);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	struct etcd *e;
	assert_int_equal(etcd_new(url, 5, &e), 0);
	struct seen s = {0};
	int r = etcd_watch(e, "k", NULL, 5, on_event, &s, NULL);
	pthread_join(t, NULL);
	close(f.fd);
	etcd_free(e);
	/* the stream ended after it ran: the caller resumes after the last revision */
	assert_int_equal(r, -ECONNRESET);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.types[0], ETCD_EVENT_UNPARSABLE);
	assert_int_equal(s.revisions[0], 5);
	assert_int_equal(s.types[1], ETCD_EVENT_PUT);
	assert_int_equal(s.revisions[1], 6);
	assert_int_equal(s.types[2], ETCD_EVENT_DELETE);
	assert_int_equal(s.revisions[2], 7);
}

/*
 * A member that accepts connections and never answers costs one timeout: after it, calls go
 * to the member that answered, also after a watch there ended (which used to move them back
 * to the next member in the list, the hung one).
 */
static void test_a_hung_member_costs_one_timeout(void **state)
{
	(void)state;
	struct fake hung = {.hang = true, .serve = 16};
	struct fake good = {.body = "{\"header\":{\"revision\":\"3\"},\"count\":\"0\"}",
			    .watch_body = "{\"result\":{\"header\":{\"revision\":\"3\"},"
					  "\"created\":true}}\n",
			    .serve = 5};
	int hp, gp;
	hung.fd = listen_loopback(&hp);
	good.fd = listen_loopback(&gp);
	pthread_t th, tg;
	assert_int_equal(pthread_create(&th, NULL, serve, &hung), 0);
	assert_int_equal(pthread_create(&tg, NULL, serve, &good), 0);
	char urls[128];
	snprintf(urls, sizeof(urls), "http://127.0.0.1:%d,http://127.0.0.1:%d", hp, gp);
	struct etcd *e;
	assert_int_equal(etcd_new(urls, 1, &e), 0);
	struct etcd_kvs kvs;
	/* the first call waits for the hung member once, then gets its answer elsewhere */
	assert_int_equal(etcd_range(e, "k", NULL, 0, 0, false, false, &kvs), 0);
	etcd_kvs_release(&kvs);
	assert_int_equal(__atomic_load_n(&hung.accepted, __ATOMIC_SEQ_CST), 1);
	/* a watch on the member that answers, which then ends */
	struct seen s = {0};
	assert_int_equal(etcd_watch(e, "k", NULL, 0, on_event, &s, NULL), -ECONNRESET);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(etcd_range(e, "k", NULL, 0, 0, false, false, &kvs), 0);
		etcd_kvs_release(&kvs);
	}
	pthread_join(tg, NULL);
	/* every later call and the watch went to the member that answers */
	assert_int_equal(__atomic_load_n(&hung.accepted, __ATOMIC_SEQ_CST), 1);
	assert_int_equal(good.accepted, 5);
	etcd_free(e);
	shutdown(hung.fd, SHUT_RDWR);
	close(hung.fd);
	pthread_join(th, NULL);
	for (int i = 0; i < hung.accepted && i < 16; i++)
		close(hung.held[i]);
	close(good.fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_watch_skips_an_unparsable_event),
	    cmocka_unit_test(test_a_hung_member_costs_one_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
