// SPDX-License-Identifier: Apache-2.0
#include "qemu/qmp.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/json.h"
#include "util/time.h"

#define QMP_MAX_LINE (4u << 20)

void qemu_qmp_release(struct qemu_qmp *q)
{
	strbuf_release(&q->in);
	q->fd = -1;
}

/* Read once (with timeout; 0 = don't wait). 0 = got data, -ETIMEDOUT, -EPIPE on EOF. */
static int fill(struct qemu_qmp *q, int timeout_ms)
{
	struct pollfd p = {.fd = q->fd, .events = POLLIN};
	int n;
	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return negerrno();
	if (n == 0)
		return -ETIMEDOUT;
	char buf[8192];
	ssize_t k;
	do
		k = read(q->fd, buf, sizeof(buf));
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return errno == EAGAIN ? -ETIMEDOUT : negerrno();
	if (k == 0)
		return -EPIPE;
	return strbuf_add(&q->in, buf, (size_t)k);
}

/* Take one complete line out of the buffer, parsed; -EAGAIN when none is complete. */
static int next_message(struct qemu_qmp *q, json_t **ret)
{
	char *nl = memchr(q->in.buf, '\n', q->in.len);
	if (!nl)
		return -EAGAIN;
	size_t len = (size_t)(nl - q->in.buf) + 1;
	json_t *j = NULL;
	int r = json_parse_buf(q->in.buf, len, &j);
	memmove(q->in.buf, q->in.buf + len, q->in.len - len);
	q->in.len -= len;
	q->in.buf[q->in.len] = '\0';
	if (r < 0)
		return r;
	*ret = j;
	return 0;
}

static void dispatch_event(struct qemu_qmp *q, json_t *msg)
{
	const char *name = json_string_value(json_object_get(msg, "event"));
	if (!name)
		return;
	json_t *data = json_object_get(msg, "data");
	if (q->on_event)
		q->on_event(name, data, q->userdata);
	for (size_t i = 0; i < q->n_watchers; i++)
		q->watchers[i].fn(name, data, q->watchers[i].userdata);
}

int qemu_qmp_watch(struct qemu_qmp *q, qemu_qmp_event_fn fn, void *userdata)
{
	if (q->n_watchers >= QEMU_QMP_MAX_WATCHERS)
		return -ENOSPC;
	q->watchers[q->n_watchers].fn = fn;
	q->watchers[q->n_watchers].userdata = userdata;
	q->n_watchers++;
	return 0;
}

/* Wait for a message that is not an event, dispatching events on the way. */
static int wait_reply(struct qemu_qmp *q, int timeout_ms, json_t **ret)
{
	usec_t deadline = now_monotonic_usec() + (usec_t)timeout_ms * 1000;
	for (;;) {
		json_t *msg = NULL;
		int r = next_message(q, &msg);
		if (r == 0) {
			if (json_object_get(msg, "event")) {
				dispatch_event(q, msg);
				json_decref(msg);
				continue;
			}
			*ret = msg;
			return 0;
		}
		if (r != -EAGAIN)
			return r;
		usec_t now = now_monotonic_usec();
		if (now >= deadline)
			return -ETIMEDOUT;
		r = fill(q, (int)((deadline - now + 999) / 1000));
		if (r < 0)
			return r;
	}
}

int qemu_qmp_open(struct qemu_qmp *q, int fd, int timeout_ms)
{
	q->fd = fd;
	strbuf_init(&q->in, QMP_MAX_LINE);
	_cleanup_json_ json_t *greeting = NULL;
	int r = wait_reply(q, timeout_ms, &greeting);
	if (r < 0)
		return r;
	if (!json_object_get(greeting, "QMP"))
		return -EPROTO;
	return qemu_qmp_call(q, "qmp_capabilities", NULL, timeout_ms, NULL, NULL);
}

static int send_all(int fd, const char *buf, size_t len, int pass_fd)
{
	while (len > 0) {
		struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} control;
		if (pass_fd >= 0) {
			memset(&control, 0, sizeof(control));
			mh.msg_control = control.buf;
			mh.msg_controllen = sizeof(control.buf);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
		}
		ssize_t k = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return errno == EPIPE || errno == ECONNRESET ? -EPIPE : negerrno();
		}
		buf += k;
		len -= (size_t)k;
		pass_fd = -1;
	}
	return 0;
}

static int call(struct qemu_qmp *q, const char *command, json_t *args, int pass_fd, int timeout_ms,
		json_t **ret_return, char **ret_err)
{
	_cleanup_json_ json_t *req = json_pack("{s:s}", "execute", command);
	if (args)
		json_object_set_new(req, "arguments", args);
	_cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	struct strbuf line = STRBUF_INIT;
	strbuf_putf(&line, "%s\n", text);
	int r = send_all(q->fd, line.buf, line.len, pass_fd);
	strbuf_release(&line);
	if (r < 0)
		return r;
	_cleanup_json_ json_t *reply = NULL;
	r = wait_reply(q, timeout_ms, &reply);
	if (r < 0)
		return r;
	json_t *err = json_object_get(reply, "error");
	if (err) {
		const char *desc = json_string_value(json_object_get(err, "desc"));
		if (ret_err)
			*ret_err = xstrdup(desc ? desc : "unknown QMP error");
		return -EREMOTEIO;
	}
	if (ret_return)
		*ret_return = json_incref(json_object_get(reply, "return"));
	return 0;
}

int qemu_qmp_call(struct qemu_qmp *q, const char *command, json_t *args, int timeout_ms,
		  json_t **ret_return, char **ret_err)
{
	return call(q, command, args, -1, timeout_ms, ret_return, ret_err);
}

int qemu_qmp_send_fd(struct qemu_qmp *q, const char *name, int fd, int timeout_ms, char **ret_err)
{
	return call(q, "getfd", json_pack("{s:s}", "fdname", name), fd, timeout_ms, NULL, ret_err);
}

int qemu_qmp_poll_events(struct qemu_qmp *q)
{
	for (;;) {
		json_t *msg = NULL;
		int r = next_message(q, &msg);
		if (r == 0) {
			dispatch_event(q, msg);
			json_decref(msg);
			continue;
		}
		if (r != -EAGAIN)
			return r;
		r = fill(q, 0);
		if (r == -ETIMEDOUT)
			return 0;
		if (r < 0)
			return r;
	}
}
