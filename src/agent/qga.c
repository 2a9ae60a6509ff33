// SPDX-License-Identifier: Apache-2.0
#include "agent/qga.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/base64.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/macro.h"

/* Captured output per stream (qga's own cap is 16 MiB). */
#define QGA_OUTPUT_MAX (16u << 20)

struct agent_qga_call {
	struct agent_qga_call *next;
	char *line; /* the request, newline-terminated */
	agent_qga_cb cb;
	void *userdata;
};

void agent_qga_init(struct agent_qga *q, int fd)
{
	*q = (struct agent_qga){.fd = fd, .state = QGA_DOWN};
	strbuf_init(&q->in, QGA_LINE_MAX);
	strbuf_init(&q->out, 0);
}

static struct agent_qga_call *pop(struct agent_qga *q)
{
	struct agent_qga_call *c = q->head;
	if (c) {
		q->head = c->next;
		if (!q->head)
			q->tail = NULL;
	}
	q->head_sent = false;
	return c;
}

static void complete(struct agent_qga_call *c, int r, json_t *ret, const char *err)
{
	if (c->cb)
		c->cb(r, ret, err, c->userdata);
	free(c->line);
	free(c);
}

static void fail_all(struct agent_qga *q, int r)
{
	struct agent_qga_call *c;
	while ((c = pop(q)))
		complete(c, r, NULL, NULL);
}

void agent_qga_release(struct agent_qga *q)
{
	fail_all(q, -ENOTCONN);
	strbuf_release(&q->in);
	strbuf_release(&q->out);
}

static void queue_out(struct agent_qga *q, const void *data, size_t len)
{
	strbuf_putn(&q->out, data, len);
}

static void start_sync(struct agent_qga *q, usec_t now)
{
	uint32_t r = 0;
	(void)fs_random_bytes(&r, sizeof(r));
	q->sync_id = r ? r : 1;
	q->state = QGA_SYNCING;
	q->seen_sentinel = false;
	q->deadline = now + QGA_SYNC_TIMEOUT_USEC;
	strbuf_reset(&q->in);
	/* A call that was sent but not answered is lost with the old stream. */
	if (q->head && q->head_sent)
		complete(pop(q), -ETIMEDOUT, NULL, NULL);
	q->head_sent = false;
	char line[128];
	int n = snprintf(line, sizeof(line),
			 "\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%llu}}\n",
			 (unsigned long long)q->sync_id);
	queue_out(q, line, (size_t)n);
}

void agent_qga_port_changed(struct agent_qga *q, bool open, usec_t now)
{
	q->port_known_open = open;
	if (open) {
		start_sync(q, now);
		return;
	}
	q->state = QGA_DOWN;
	q->deadline = 0;
	/* Bytes not yet taken by QEMU would reach the next qga: it flushes at our 0xFF anyway. */
	strbuf_reset(&q->out);
	q->out_off = 0;
	strbuf_reset(&q->in);
	fail_all(q, -ENOTCONN);
}

void agent_qga_probe(struct agent_qga *q, usec_t now)
{
	if (q->state == QGA_DOWN)
		start_sync(q, now);
}

bool agent_qga_usable(const struct agent_qga *q)
{
	return q->state != QGA_DOWN;
}

static void send_head(struct agent_qga *q, usec_t now)
{
	if (q->state != QGA_READY || !q->head || q->head_sent)
		return;
	queue_out(q, q->head->line, strlen(q->head->line));
	q->head_sent = true;
	q->deadline = now + QGA_CALL_TIMEOUT_USEC;
}

void agent_qga_call(struct agent_qga *q, const char *command, json_t *args, agent_qga_cb cb,
		    void *userdata, usec_t now)
{
	struct agent_qga_call *c = xcalloc(1, sizeof(*c));
	c->cb = cb;
	c->userdata = userdata;
	_cleanup_json_ json_t *req = json_pack("{s:s}", "execute", command);
	if (args)
		json_object_set_new(req, "arguments", args);
	char *s = json_dumps(req, JSON_COMPACT);
	c->line = xasprintf("%s\n", s ? s : "{}");
	free(s);
	if (q->state == QGA_DOWN) {
		complete(c, -ENOTCONN, NULL, NULL);
		return;
	}
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	send_head(q, now);
}

void agent_qga_forget(struct agent_qga *q, void *userdata)
{
	for (struct agent_qga_call *c = q->head; c; c = c->next)
		if (c->userdata == userdata)
			c->cb = NULL;
}

short agent_qga_events(const struct agent_qga *q)
{
	if (q->fd < 0)
		return 0;
	return (short)(POLLIN | (q->out.len > q->out_off ? POLLOUT : 0));
}

usec_t agent_qga_deadline(const struct agent_qga *q)
{
	return q->deadline;
}

/* One complete response line: the sync echo, or the answer to the call in flight. */
static void on_line(struct agent_qga *q, const char *line, size_t len, usec_t now)
{
	_cleanup_json_ json_t *j = NULL;
	if (json_parse_buf(line, len, &j) < 0 || !json_is_object(j))
		return; /* qga's answers are objects; anything else is noise from a reset */
	json_t *ret = json_object_get(j, "return");
	json_t *err = json_object_get(j, "error");
	if (q->state == QGA_SYNCING) {
		if (q->seen_sentinel && json_is_integer(ret) &&
		    (uint64_t)json_integer_value(ret) == q->sync_id) {
			q->state = QGA_READY;
			q->deadline = 0;
			send_head(q, now);
		}
		return;
	}
	if (!q->head || !q->head_sent)
		return; /* nothing asked: stale */
	struct agent_qga_call *c = pop(q);
	q->deadline = 0;
	if (err) {
		const char *desc = json_string_value(json_object_get(err, "desc"));
		complete(c, -EREMOTEIO, NULL, desc ? desc : "unknown error");
	} else {
		complete(c, 0, ret ? ret : json_null(), NULL);
	}
	send_head(q, now);
}

static void parse_input(struct agent_qga *q, usec_t now)
{
	size_t start = 0;
	for (;;) {
		if (q->state == QGA_SYNCING && !q->seen_sentinel) {
			char *s = memchr(q->in.buf + start, 0xff, q->in.len - start);
			if (!s) {
				start = q->in.len;
				break;
			}
			q->seen_sentinel = true;
			start = (size_t)(s - q->in.buf) + 1;
		}
		char *nl = memchr(q->in.buf + start, '\n', q->in.len - start);
		if (!nl)
			break;
		size_t len = (size_t)(nl - (q->in.buf + start));
		on_line(q, q->in.buf + start, len, now);
		start += len + 1;
		if (q->state == QGA_DOWN)
			return;
	}
	memmove(q->in.buf, q->in.buf + start, q->in.len - start);
	q->in.len -= start;
	q->in.buf[q->in.len] = '\0';
}

void agent_qga_handle(struct agent_qga *q, short revents, usec_t now)
{
	if (revents & POLLIN) {
		char buf[65536];
		ssize_t k = read(q->fd, buf, sizeof(buf));
		if (k > 0 && q->state != QGA_DOWN) {
			if (strbuf_add(&q->in, buf, (size_t)k) < 0) {
				/* A line beyond any sane reply: resynchronise. */
				start_sync(q, now);
			} else {
				parse_input(q, now);
			}
		}
	}
	if ((revents & POLLOUT) && q->out.len > q->out_off) {
		ssize_t k = write(q->fd, q->out.buf + q->out_off, q->out.len - q->out_off);
		if (k > 0) {
			q->out_off += (size_t)k;
			if (q->out_off == q->out.len) {
				strbuf_reset(&q->out);
				q->out_off = 0;
			}
		}
	}
	if (q->deadline && now >= q->deadline) {
		if (q->state == QGA_SYNCING && !q->port_known_open) {
			/* Nobody answered and QMP never saw the port open: no qga. */
			q->state = QGA_DOWN;
			q->deadline = 0;
			fail_all(q, -ENOTCONN);
		} else {
			if (q->state == QGA_SYNCING)
				fail_all(q, -ETIMEDOUT);
			start_sync(q, now);
		}
	}
}

/* ---- blocking use ------------------------------------------------------------------------ */

struct wait_result {
	bool done;
	int r;
	json_t *ret;
	char *err;
};

static void wait_done(int r, json_t *ret, const char *err, void *userdata)
{
	struct wait_result *w = userdata;
	w->done = true;
	w->r = r;
	w->ret = ret ? json_incref(ret) : NULL;
	w->err = err ? xstrdup(err) : NULL;
}

void agent_qga_open_wait(struct agent_qga *q, int fd)
{
	agent_qga_init(q, fd);
	/* A sync that times out is then tried again instead of giving up: the caller's deadline
	 * bounds it. */
	q->port_known_open = true;
	agent_qga_probe(q, now_monotonic_usec());
}

int agent_qga_call_wait(struct agent_qga *q, const char *command, json_t *args, usec_t deadline,
			json_t **ret, char **ret_err)
{
	for (;;) {
		struct wait_result w = {0};
		/* agent_qga_call() steals a reference: the caller keeps its own */
		agent_qga_call(q, command, json_incref(args), wait_done, &w, now_monotonic_usec());
		while (!w.done) {
			usec_t now = now_monotonic_usec();
			if (now >= deadline) {
				agent_qga_forget(q, &w);
				return -ETIMEDOUT;
			}
			usec_t until = agent_qga_deadline(q);
			if (!until || until > deadline)
				until = deadline;
			struct pollfd p = {.fd = q->fd, .events = agent_qga_events(q)};
			int k = poll(&p, 1, until <= now ? 0 : (int)((until - now + 999) / 1000));
			if (k < 0 && errno != EINTR) {
				agent_qga_forget(q, &w);
				return negerrno();
			}
			agent_qga_handle(q, k > 0 ? p.revents : 0, now_monotonic_usec());
		}
		/* Failed while the stream was being synced (the guest is slow): ask again. */
		if (w.r == -ETIMEDOUT && now_monotonic_usec() < deadline)
			continue;
		if (w.r == 0 && ret)
			*ret = w.ret;
		else
			json_decref(w.ret);
		if (w.err && ret_err)
			*ret_err = w.err;
		else
			free(w.err);
		return w.r;
	}
}

int agent_qga_exec_wait(struct agent_qga *q, const char *path, char *const *args, size_t n_args,
			usec_t deadline, struct agent_qga_exec_status *st, char **ret_err)
{
	*st = (struct agent_qga_exec_status){0};
	_cleanup_json_ json_t *started = NULL;
	_cleanup_json_ json_t *a = agent_qga_exec_args(path, args, n_args, NULL, 0);
	int r = agent_qga_call_wait(q, "guest-exec", a, deadline, &started, ret_err);
	if (r < 0)
		return r;
	json_int_t pid = json_integer_value(json_object_get(started, "pid"));
	for (;;) {
		_cleanup_json_ json_t *ret = NULL;
		_cleanup_json_ json_t *sa = json_pack("{s:I}", "pid", pid);
		r = agent_qga_call_wait(q, "guest-exec-status", sa, deadline, &ret, ret_err);
		if (r < 0)
			return r;
		r = agent_qga_exec_status_parse(ret, st);
		if (r < 0 || st->exited)
			return r;
		usleep(10000);
	}
}

/* Go's net.IP.IsGlobalUnicast for IPv4, which Tart's agent applies (private ranges count). */
static bool ipv4_global_unicast(uint32_t a)
{
	return !(a == 0 || a == 0xffffffffu || (a >> 24) == 127 || (a >> 16) == 0xa9fe ||
		 (a >> 28) == 0xe);
}

int agent_qga_pick_ipv4(const json_t *interfaces, char ret[16])
{
	if (!json_is_array(interfaces))
		return -EBADMSG;
	size_t i, j;
	json_t *iface, *addr;
	json_array_foreach(interfaces, i, iface)
	{
		json_array_foreach(json_object_get(iface, "ip-addresses"), j, addr)
		{
			const char *type =
			    json_string_value(json_object_get(addr, "ip-address-type"));
			const char *ip = json_string_value(json_object_get(addr, "ip-address"));
			struct in_addr in;
			if (!type || !ip || !streq(type, "ipv4") ||
			    inet_pton(AF_INET, ip, &in) != 1)
				continue;
			if (!ipv4_global_unicast(ntohl(in.s_addr)))
				continue;
			snprintf(ret, 16, "%s", ip);
			return 0;
		}
	}
	return -ENOENT;
}

json_t *agent_qga_exec_args(const char *path, char *const *args, size_t n_args, const void *input,
			    size_t input_len)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n_args; i++)
		json_array_append_new(a, json_string(args[i]));
	json_t *j = json_pack("{s:s,s:o,s:b}", "path", path, "arg", a, "capture-output", 1);
	if (input) {
		_cleanup_free_ char *b64 = base64_encode(input, input_len);
		json_object_set_new(j, "input-data", json_string(b64));
	}
	return j;
}

static int decode_field(const json_t *ret, const char *key, char **out, size_t *len)
{
	const json_t *v = json_object_get(ret, key);
	if (!v)
		return 0;
	if (!json_is_string(v))
		return -EBADMSG;
	int r =
	    base64_decode(json_string_value(v), json_string_length(v), QGA_OUTPUT_MAX, out, len);
	return r == -EFBIG ? -EBADMSG : r;
}

int agent_qga_exec_status_parse(const json_t *ret, struct agent_qga_exec_status *st)
{
	*st = (struct agent_qga_exec_status){0};
	const json_t *exited = json_object_get(ret, "exited");
	if (!json_is_boolean(exited))
		return -EBADMSG;
	st->exited = json_is_true(exited);
	if (!st->exited)
		return 0;
	const json_t *code = json_object_get(ret, "exitcode");
	const json_t *sig = json_object_get(ret, "signal");
	if (json_is_integer(sig)) {
		st->signal = (int)json_integer_value(sig);
		st->code = -1;
	} else if (json_is_integer(code)) {
		st->code = (int)json_integer_value(code);
	} else {
		return -EBADMSG;
	}
	int r = decode_field(ret, "out-data", &st->out, &st->out_len);
	if (r >= 0)
		r = decode_field(ret, "err-data", &st->err, &st->err_len);
	if (r < 0) {
		agent_qga_exec_status_release(st);
		return r;
	}
	st->truncated = json_is_true(json_object_get(ret, "out-truncated")) ||
			json_is_true(json_object_get(ret, "err-truncated"));
	return 0;
}

void agent_qga_exec_status_release(struct agent_qga_exec_status *st)
{
	free(st->out);
	free(st->err);
	st->out = st->err = NULL;
}
