// SPDX-License-Identifier: Apache-2.0
#include "agent/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "agent/agent.pb-c.h"
#include "agent/control.h"
#include "agent/grpc.h"
#include "agent/keepalive.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/time.h"

/* ---- one gRPC call over control.sock ------------------------------------------------------ */

struct call {
	int fd;
	nghttp2_session *s;
	int32_t id;
	struct agent_grpc_outq out;
	struct agent_grpc_reader rd;
	struct agent_grpc_meta meta;
	bool got_settings; /* the other end speaks HTTP/2: tart run's mux, or the agent */
	bool got_headers;  /* response headers: the agent (or tart run for it) answered */
	bool closed;	   /* the stream (or the connection) is over */
	uint32_t rst_code;
	size_t unconsumed; /* stream bytes received and not yet acknowledged */
	int error;	   /* a framing error (-EMSGSIZE, -EPROTO), sticky */
	struct agent_keepalive ka;
	char why[128]; /* what ended the connection, for messages */
};

static ssize_t call_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
	(void)s, (void)flags;
	struct call *c = ud;
	ssize_t k;
	do
		k = write(c->fd, data, len);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return errno == EAGAIN ? NGHTTP2_ERR_WOULDBLOCK : NGHTTP2_ERR_CALLBACK_FAILURE;
	return k;
}

static int call_on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
			  size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	(void)s, (void)flags;
	struct call *c = ud;
	if (frame->hd.stream_id == c->id && agent_grpc_meta_add(&c->meta, name, nl, value, vl) < 0)
		c->error = -EBADMSG;
	return 0;
}

static int call_on_frame(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
	(void)s;
	struct call *c = ud;
	if (frame->hd.type == NGHTTP2_SETTINGS)
		c->got_settings = true;
	if (frame->hd.type == NGHTTP2_HEADERS && frame->hd.stream_id == c->id)
		c->got_headers = true;
	/* The answer is complete: whether or not the server also resets the stream (grpc does,
	 * a server may not), our side is done. */
	if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
	    frame->hd.stream_id == c->id && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
		c->closed = true;
	if (frame->hd.type == NGHTTP2_GOAWAY && !c->why[0])
		snprintf(c->why, sizeof(c->why), "the agent closed the connection (GOAWAY)");
	return 0;
}

static int call_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
			size_t len, void *ud)
{
	(void)flags;
	struct call *c = ud;
	/* The connection window comes back at once; the stream's once the bytes are written. */
	(void)nghttp2_session_consume_connection(s, len);
	if (id != c->id)
		return 0;
	c->unconsumed += len;
	int k = agent_grpc_reader_feed(&c->rd, data, len);
	if (k < 0 && !c->error)
		c->error = k;
	return 0;
}

static int call_on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
	(void)s;
	struct call *c = ud;
	if (id == c->id) {
		c->closed = true;
		c->rst_code = code;
	}
	return 0;
}

static void call_release(struct call *c)
{
	if (c->s)
		nghttp2_session_del(c->s);
	if (c->fd >= 0)
		close(c->fd);
	agent_grpc_outq_release(&c->out);
	agent_grpc_reader_release(&c->rd);
	c->s = NULL;
	c->fd = -1;
}

/* Connect to control.sock and open a call of path; its first messages are in c->out. */
static int call_open(struct call *c, const char *vm_dir, const char *path)
{
	*c = (struct call){.fd = -1};
	agent_keepalive_init(&c->ka, now_monotonic_usec());
	agent_grpc_outq_init(&c->out);
	agent_grpc_reader_init(&c->rd, 0);
	agent_grpc_meta_init(&c->meta);
	c->fd = agent_control_connect(vm_dir);
	if (c->fd < 0)
		return c->fd;
	(void)fcntl(c->fd, F_SETFL, O_NONBLOCK);
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		return -ENOMEM;
	nghttp2_session_callbacks_set_send_callback(cb, call_send);
	nghttp2_session_callbacks_set_on_header_callback(cb, call_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, call_on_frame);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, call_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, call_on_close);
	int k = agent_grpc_option_new(&opt);
	if (k == 0) {
		k = nghttp2_session_client_new2(&c->s, cb, c, opt) == 0 ? 0 : -ENOMEM;
		nghttp2_option_del(opt);
	}
	nghttp2_session_callbacks_del(cb);
	if (k < 0)
		return k;
	(void)agent_grpc_submit_settings(c->s);
	struct agent_grpc_nv h;
	agent_grpc_nv_request(&h, path, NULL);
	nghttp2_data_provider prd = {.source.ptr = &c->out, .read_callback = agent_grpc_outq_read};
	c->id = nghttp2_submit_request(c->s, NULL, h.nv, h.n, &prd, NULL);
	agent_grpc_nv_release(&h);
	return c->id < 0 ? -EIO : 0;
}

/* Read what the socket has; false when the connection is over. */
static bool call_recv(struct call *c)
{
	uint8_t buf[65536];
	ssize_t k = read(c->fd, buf, sizeof(buf));
	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (k <= 0) {
		if (!c->why[0])
			snprintf(c->why, sizeof(c->why), "%s",
				 k == 0 ? "the connection was closed" : strerror(errno));
		c->closed = true;
		return false;
	}
	agent_keepalive_rx(&c->ka, now_monotonic_usec());
	if (nghttp2_session_mem_recv(c->s, buf, (size_t)k) != k) {
		snprintf(c->why, sizeof(c->why), "the other end does not speak HTTP/2 correctly");
		c->closed = true;
		return false;
	}
	return true;
}

static bool call_flush(struct call *c)
{
	if (c->closed && !nghttp2_session_want_write(c->s))
		return true;
	if (nghttp2_session_send(c->s) != 0) {
		if (!c->why[0])
			snprintf(c->why, sizeof(c->why), "cannot write to the control socket");
		c->closed = true;
		return false;
	}
	return true;
}

static short call_events(const struct call *c)
{
	if (c->fd < 0)
		return 0;
	return (short)(POLLIN | (nghttp2_session_want_write(c->s) ? POLLOUT : 0));
}

/* The answer of a call that ended without an exit code (or a response), as a message. */
static bool agent_unreachable(const struct call *c)
{
	/* No agent behind control.sock: the mux's UNAVAILABLE before any answer, or nothing. */
	return !c->got_settings ||
	       (c->meta.grpc_status == AGENT_GRPC_UNAVAILABLE && !c->got_headers) ||
	       (c->meta.grpc_status == AGENT_GRPC_UNAVAILABLE &&
		strstr(c->meta.grpc_message, "no guest agent answers"));
}

static int log_connect_failure(const char *why)
{
	log_error(
	    "Failed to connect to the VM using its control socket: %s, is the Tart Guest Agent "
	    "running?",
	    why);
	return -EHOSTUNREACH;
}

/* ---- the terminal ------------------------------------------------------------------------- */

static struct termios saved_termios;
static volatile sig_atomic_t saved_fd = -1;

/* Async-signal-safe: also runs from fatal signal handlers and atexit. */
static void terminal_restore(void)
{
	if (saved_fd >= 0) {
		(void)tcsetattr(saved_fd, TCSAFLUSH, &saved_termios);
		saved_fd = -1;
	}
}

static void fatal_signal(int sig)
{
	terminal_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Raw mode as Go's term.MakeRaw (Tart's Term.MakeRaw), restored on every way out: normal
 * return, exit(), the signals we handle, and fatal ones. Without -i our stdin is not sent, so
 * ISIG stays on and Ctrl-C still interrupts (in raw mode it would be a byte nobody reads).
 */
static int terminal_raw(int fd, bool keep_isig)
{
	struct termios t;
	if (tcgetattr(fd, &t) < 0)
		return negerrno();
	saved_termios = t;
	t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t.c_oflag &= ~(tcflag_t)OPOST;
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | IEXTEN | (keep_isig ? 0 : ISIG));
	t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
	t.c_cflag |= CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	static bool hooked;
	if (!hooked) {
		hooked = true;
		atexit(terminal_restore);
		static const int fatal[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
		for (size_t i = 0; i < ARRAY_SIZE(fatal); i++)
			signal(fatal[i], fatal_signal);
	}
	saved_fd = fd;
	if (tcsetattr(fd, TCSAFLUSH, &t) < 0) {
		saved_fd = -1;
		return negerrno();
	}
	return 0;
}

static void terminal_size(uint32_t *rows, uint32_t *cols)
{
	struct winsize ws = {0};
	if ((ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || !ws.ws_row) &&
	    ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
		ws = (struct winsize){0};
	*rows = ws.ws_row ? ws.ws_row : 24;
	*cols = ws.ws_col ? ws.ws_col : 80;
}

/* ---- exec --------------------------------------------------------------------------------- */

struct exec_state {
	struct call c;
	const struct agent_exec_options *o;
	int sigfd;
	bool stdin_done;    /* EOF sent (or no -i) */
	struct strbuf pend; /* output of one message, not yet written */
	size_t pend_off;
	int pend_fd;
	size_t chunk[3]; /* largest write that cannot block on fd 1 and 2 after POLLOUT */
	bool got_exit;
	int32_t exit_code;
};

/* Pipes and sockets take PIPE_BUF after POLLOUT without blocking; files and ttys take more. */
static size_t safe_chunk(int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
		return 4096;
	return 65536;
}

/* Cancel the call, put the terminal back, and end the process by sig. */
static _noreturn_ void die_by_signal(struct exec_state *x, int sig)
{
	if (x->c.s && !x->c.closed) {
		(void)nghttp2_submit_rst_stream(x->c.s, NGHTTP2_FLAG_NONE, x->c.id, NGHTTP2_CANCEL);
		(void)nghttp2_session_send(x->c.s);
	}
	call_release(&x->c);
	terminal_restore();
	fflush(stdout);
	signal(sig, SIG_DFL);
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, sig);
	sigprocmask(SIG_UNBLOCK, &m, NULL);
	raise(sig);
	_exit(128 + sig);
}

static void queue_stdin(struct exec_state *x)
{
	char buf[AGENT_GRPC_CHUNK];
	ssize_t k = read(STDIN_FILENO, buf, sizeof(buf));
	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	/* EOF (or an error reading it): Tart's EOF, an empty chunk. */
	(void)agent_grpc_pack_stdin(&sb, buf, k > 0 ? (size_t)k : 0);
	if (k <= 0)
		x->stdin_done = true;
	(void)agent_grpc_outq_add(&x->c.out, sb.buf, sb.len);
	(void)agent_grpc_outq_kick(&x->c.out, x->c.s, x->c.id);
}

static void queue_resize(struct exec_state *x)
{
	uint32_t rows, cols;
	terminal_size(&rows, &cols);
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	(void)agent_grpc_pack_resize(&sb, rows, cols);
	(void)agent_grpc_outq_add(&x->c.out, sb.buf, sb.len);
	(void)agent_grpc_outq_kick(&x->c.out, x->c.s, x->c.id);
}

/* Take whole messages while nothing waits to be written. <0: malformed. */
static int take_messages(struct exec_state *x)
{
	while (x->pend.len == 0 && !x->got_exit) {
		const uint8_t *msg;
		size_t len;
		int k = agent_grpc_reader_next(&x->c.rd, &msg, &len);
		if (k < 0)
			return k;
		if (k == 0)
			break;
		ExecResponse *r = NULL;
		if (agent_grpc_unpack_exec_response(msg, len, &r) < 0)
			return -EBADMSG;
		switch (r->type_case) {
		case EXEC_RESPONSE__TYPE_STANDARD_OUTPUT:
		case EXEC_RESPONSE__TYPE_STANDARD_ERROR: {
			const IOChunk *ch = r->type_case == EXEC_RESPONSE__TYPE_STANDARD_OUTPUT
						? r->standard_output
						: r->standard_error;
			x->pend_fd = r->type_case == EXEC_RESPONSE__TYPE_STANDARD_OUTPUT
					 ? STDOUT_FILENO
					 : STDERR_FILENO;
			if (ch)
				strbuf_putn(&x->pend, ch->data.data, ch->data.len);
			x->pend_off = 0;
			break;
		}
		case EXEC_RESPONSE__TYPE_EXIT:
			x->got_exit = true;
			x->exit_code = r->exit ? r->exit->code : 0;
			break;
		default:
			break; /* unknown event: ignored, as Tart does */
		}
		exec_response__free_unpacked(r, NULL);
	}
	/* Everything received is written out: the agent may send the next window's worth. */
	if (x->pend.len == 0 && x->c.unconsumed && !x->c.closed) {
		(void)nghttp2_session_consume_stream(x->c.s, x->c.id, x->c.unconsumed);
		x->c.unconsumed = 0;
	}
	return 0;
}

static void write_pending(struct exec_state *x)
{
	size_t n = MIN(x->pend.len - x->pend_off, x->chunk[x->pend_fd]);
	ssize_t k = write(x->pend_fd, x->pend.buf + x->pend_off, n);
	if (k < 0 && errno == EPIPE)
		die_by_signal(x, SIGPIPE);
	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (k < 0) {
		/* e.g. ENOSPC: the output is lost, stop the command rather than carry on */
		log_error_errno(negerrno(), "cannot write the command's output");
		die_by_signal(x, SIGPIPE);
	}
	x->pend_off += (size_t)k;
	if (x->pend_off == x->pend.len) {
		strbuf_reset(&x->pend);
		x->pend_off = 0;
	}
}

/* The call ended without an exit code: say why. */
static int exec_failed(struct exec_state *x)
{
	struct call *c = &x->c;
	if (c->error == -EMSGSIZE || c->error == -EPROTO) {
		log_error("the guest agent sent a message that is too large (over %u bytes) or "
			  "compressed",
			  AGENT_GRPC_MAX_MESSAGE);
		return -EPROTO;
	}
	if (c->error == -EBADMSG) {
		log_error("the guest agent sent a malformed message");
		return -EBADMSG;
	}
	if (c->got_headers && c->meta.grpc_status < 0 &&
	    (c->meta.http_status != 200 || !c->meta.content_type_ok)) {
		log_error(
		    "the other end of the control socket does not answer gRPC (HTTP status %d)",
		    c->meta.http_status);
		return -EPROTO;
	}
	if (agent_unreachable(c))
		return log_connect_failure(c->meta.grpc_message[0] ? c->meta.grpc_message
					   : c->why[0]		   ? c->why
								   : "no answer");
	if (c->meta.grpc_status == AGENT_GRPC_UNAVAILABLE) {
		log_error("the connection to the guest agent was lost before the command "
			  "finished: %s",
			  c->meta.grpc_message[0] ? c->meta.grpc_message : "unavailable");
		return -ECONNRESET;
	}
	if (c->meta.grpc_status > 0) {
		log_error("the guest agent failed the command: %s (%s)",
			  c->meta.grpc_message[0] ? c->meta.grpc_message : "no message",
			  agent_grpc_code_name(c->meta.grpc_status));
		return -EREMOTEIO;
	}
	if (c->meta.grpc_status == 0) {
		log_error("the guest agent ended the command without an exit code");
		return -EREMOTEIO;
	}
	if (agent_grpc_reader_partial(&c->rd))
		log_error(
		    "the connection to the guest agent was lost in the middle of a message: %s",
		    c->why[0] ? c->why : "stream reset");
	else
		log_error("the connection to the guest agent was lost before the command "
			  "finished: %s",
			  c->why[0]	? c->why
			  : c->rst_code ? nghttp2_http2_strerror(c->rst_code)
					: "stream reset");
	return -ECONNRESET;
}

static int exec_loop(struct exec_state *x)
{
	usec_t deadline = now_monotonic_usec() + (usec_t)AGENT_CONNECT_TIMEOUT_MS * 1000;
	for (;;) {
		int k = take_messages(x);
		if (k < 0)
			x->c.error = k;
		if (x->c.error)
			return exec_failed(x);
		if (x->got_exit && x->pend.len == 0)
			return (int)((uint32_t)x->exit_code & 0xff);
		if (x->c.closed && x->pend.len == 0 && !agent_grpc_reader_partial(&x->c.rd)) {
			/* whole messages may still be buffered: take them first */
			k = take_messages(x);
			if (x->pend.len == 0 && !x->got_exit)
				return exec_failed(x);
			continue;
		}
		if (x->c.closed && x->pend.len == 0)
			return exec_failed(x);
		(void)call_flush(&x->c);
		struct pollfd p[4] = {
		    {.fd = x->sigfd, .events = POLLIN},
		    {.fd = x->c.closed ? -1 : x->c.fd, .events = call_events(&x->c)},
		    {.fd = (!x->stdin_done &&
			    agent_grpc_outq_pending(&x->c.out) < AGENT_GRPC_OUTQ_HIGH)
			       ? STDIN_FILENO
			       : -1,
		     .events = POLLIN},
		    {.fd = x->pend.len ? x->pend_fd : -1, .events = POLLOUT},
		};
		int timeout = -1;
		usec_t now = now_monotonic_usec();
		if (!x->c.got_settings) {
			if (now >= deadline) {
				snprintf(x->c.why, sizeof(x->c.why), "no answer within %d seconds",
					 AGENT_CONNECT_TIMEOUT_MS / 1000);
				return exec_failed(x);
			}
			timeout = (int)((deadline - now) / 1000) + 1;
		} else {
			usec_t next;
			switch (agent_keepalive_check(&x->c.ka, now, &next)) {
			case AGENT_KEEPALIVE_PING:
				(void)nghttp2_submit_ping(x->c.s, NGHTTP2_FLAG_NONE, NULL);
				(void)call_flush(&x->c);
				break;
			case AGENT_KEEPALIVE_DEAD:
				snprintf(
				    x->c.why, sizeof(x->c.why),
				    "the other end stopped answering (no reply to a PING within "
				    "%llu s)",
				    (unsigned long long)(x->c.ka.interval / 1000000));
				x->c.closed = true;
				return exec_failed(x);
			default:
				break;
			}
			timeout = (int)((next > now ? next - now : 0) / 1000) + 1;
		}
		if (poll(p, ARRAY_SIZE(p), timeout) < 0 && errno != EINTR)
			return log_error_errno(negerrno(), "poll failed");
		if (p[0].revents) {
			struct signalfd_siginfo si;
			if (read(x->sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGWINCH) {
					if (x->o->tty)
						queue_resize(x);
				} else {
					die_by_signal(x, (int)si.ssi_signo);
				}
			}
		}
		if (p[3].revents)
			write_pending(x);
		if (p[2].revents)
			queue_stdin(x);
		if (p[1].revents)
			(void)call_recv(&x->c);
	}
}

int agent_exec(const struct agent_exec_options *o)
{
	struct exec_state x = {.o = o, .sigfd = -1, .stdin_done = !o->interactive};
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	strbuf_init(&x.pend, 0);
	x.chunk[1] = safe_chunk(STDOUT_FILENO);
	x.chunk[2] = safe_chunk(STDERR_FILENO);
	sigset_t mask, old;
	sigemptyset(&mask);
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH};
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaddset(&mask, sigs[i]);
	sigprocmask(SIG_BLOCK, &mask, &old);
	int r;
	x.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (x.sigfd < 0) {
		r = log_error_errno(negerrno(), "cannot create a signalfd");
		goto out;
	}
	r = call_open(&x.c, o->vm_dir, AGENT_GRPC_PATH_EXEC);
	if (r < 0) {
		r = log_connect_failure(strerror(-r));
		goto out;
	}
	uint32_t rows = 0, cols = 0;
	if (o->tty)
		terminal_size(&rows, &cols);
	r = agent_grpc_pack_command(&sb, o->argv[0], (const char *const *)o->argv + 1, o->argc - 1,
				    o->interactive, o->tty, rows, cols);
	if (r < 0) {
		r = log_error_errno(r, "the command is too long to send");
		goto out;
	}
	(void)agent_grpc_outq_add(&x.c.out, sb.buf, sb.len);
	if (o->tty && isatty(STDIN_FILENO))
		(void)terminal_raw(STDIN_FILENO, !o->interactive);
	r = exec_loop(&x);
out:
	call_release(&x.c);
	terminal_restore();
	strbuf_release(&x.pend);
	if (x.sigfd >= 0)
		close(x.sigfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* ---- ResolveIP ---------------------------------------------------------------------------- */

int agent_resolve_ip(const char *vm_dir, int timeout_ms, char ret[16])
{
	struct call c;
	int r = call_open(&c, vm_dir, AGENT_GRPC_PATH_RESOLVE_IP);
	if (r < 0) {
		call_release(&c);
		return -ENOENT;
	}
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	(void)agent_grpc_pack_resolve_ip_request(&sb);
	(void)agent_grpc_outq_add(&c.out, sb.buf, sb.len);
	agent_grpc_outq_finish(&c.out, false, 0, NULL);
	usec_t deadline = now_monotonic_usec() + (usec_t)timeout_ms * 1000;
	r = -ENOENT;
	while (!c.closed && !c.error) {
		usec_t now = now_monotonic_usec();
		if (now >= deadline || !call_flush(&c))
			break;
		struct pollfd p = {.fd = c.fd, .events = call_events(&c)};
		int n = poll(&p, 1, (int)((deadline - now) / 1000) + 1);
		if (n < 0 && errno != EINTR)
			break;
		if (n > 0 && !call_recv(&c))
			break;
	}
	const uint8_t *msg;
	size_t len;
	ResolveIPResponse *resp = NULL;
	struct in_addr a;
	if (c.closed && c.meta.grpc_status == 0 && agent_grpc_reader_next(&c.rd, &msg, &len) > 0) {
		if (agent_grpc_unpack_resolve_ip_response(msg, len, &resp) == 0 && resp->ip &&
		    inet_pton(AF_INET, resp->ip, &a) == 1) {
			snprintf(ret, 16, "%s", resp->ip);
			r = 0;
		} else {
			r = -EBADMSG;
		}
		if (resp)
			resolve_ipresponse__free_unpacked(resp, NULL);
	}
	call_release(&c);
	return r;
}
