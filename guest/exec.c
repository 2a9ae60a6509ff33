// SPDX-License-Identifier: Apache-2.0
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent/grpc.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/parse.h"
#include "util/strvec.h"

/* systemd's default PATH plus /sbin and /bin for guests without the /usr merge. */
#define LOGIN_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* Stdin bytes queued per command: the stream window plus one whole message. */
#define STDIN_CAP (AGENT_GRPC_STREAM_WINDOW + AGENT_GRPC_MAX_MESSAGE + 64)

extern char **environ;

struct exec {
	struct exec *next;
	pid_t pid;
	bool tty, interactive;
	int in_fd, out_fd, err_fd;
	struct loop_watch win, wout, werr;
	struct strbuf inq;
	size_t inpos;
	bool in_eof_pending, in_closed;
	bool exited, out_eof, err_eof, done_sent, detached;
	int code;
	size_t reads; /* successful reads of output, to see when a pipe ran dry */
	struct exec_sink sink;
};

static struct loop *exec_loop;
static struct exec *execs;
static struct strvec login_env = STRVEC_INIT;
static char *login_home;
static pid_t agent_pid;

/* The agent user's passwd entry, read from /etc/passwd directly: a static binary must not
 * depend on NSS modules. Falls back to the process environment, then to "/". */
static void load_user(void)
{
	uid_t uid = getuid();
	char *line = NULL, *user = NULL, *home = NULL, *shell = NULL;
	size_t cap = 0;
	FILE *f = fopen("/etc/passwd", "re");

	while (f && getline(&line, &cap, f) > 0) {
		char *fields[7], *p = line, *s;
		uint64_t id;
		size_t n = 0;
		line[strcspn(line, "\n")] = 0;
		while (n < 7 && (s = strsep(&p, ":")))
			fields[n++] = s;
		if (n < 7 || parse_u64(fields[2], UINT32_MAX, &id) < 0 || id != uid)
			continue;
		user = xstrdup(fields[0]);
		home = xstrdup(fields[5]);
		shell = xstrdup(fields[6]);
		break;
	}
	free(line);
	if (f)
		fclose(f);
	if (!user)
		user = xstrdup(getenv("USER") ? getenv("USER") : uid == 0 ? "root" : "nobody");
	if (!home || !*home) {
		free(home);
		home = xstrdup(getenv("HOME") ? getenv("HOME") : "/");
	}
	if (!shell || !*shell) {
		free(shell);
		shell = xstrdup("/bin/sh");
	}

	/* The agent's environment minus what only concerns the service manager, then the login
	 * variables on top (as systemd's User= gives tart-guest-agent's unit). */
	static const char *const drop[] = {"HOME=",
					   "USER=",
					   "LOGNAME=",
					   "SHELL=",
					   "PATH=",
					   "INVOCATION_ID=",
					   "JOURNAL_STREAM=",
					   "NOTIFY_SOCKET=",
					   "LISTEN_PID=",
					   "LISTEN_FDS=",
					   "LISTEN_FDNAMES=",
					   "MANAGERPID=",
					   "SYSTEMD_EXEC_PID=",
					   "WATCHDOG_PID=",
					   "WATCHDOG_USEC=",
					   "TERM="};
	for (char **e = environ; e && *e; e++) {
		bool skip = false;
		for (size_t i = 0; i < ARRAY_SIZE(drop) && !skip; i++)
			skip = strncmp(*e, drop[i], strlen(drop[i])) == 0;
		if (!skip)
			strvec_push(&login_env, *e);
	}
	strvec_pushf(&login_env, "HOME=%s", home);
	strvec_pushf(&login_env, "USER=%s", user);
	strvec_pushf(&login_env, "LOGNAME=%s", user);
	strvec_pushf(&login_env, "SHELL=%s", shell);
	strvec_push(&login_env, "PATH=" LOGIN_PATH);
	login_home = home;
	free(user);
	free(shell);
}

static void prepare(void *data);

void exec_setup(struct loop *l)
{
	exec_loop = l;
	agent_pid = getpid();
	load_user();
	loop_add_prepare(l, prepare, NULL);
}

static void close_fd(struct loop_watch *w, int *fd)
{
	loop_remove(exec_loop, w);
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void exec_free(struct exec *e)
{
	for (struct exec **p = &execs; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			break;
		}
	close_fd(&e->win, &e->in_fd);
	close_fd(&e->wout, &e->out_fd);
	close_fd(&e->werr, &e->err_fd);
	strbuf_release(&e->inq);
	free(e);
}

/* Read one chunk from fd (1 = stdout, 2 = stderr) into the sink. */
static void read_output(struct exec *e, int which)
{
	int *fd = which == 1 ? &e->out_fd : &e->err_fd;
	bool *eof = which == 1 ? &e->out_eof : &e->err_eof;
	char buf[AGENT_GRPC_CHUNK];
	ssize_t n;

	if (*fd < 0 || *eof)
		return;
	n = read(*fd, buf, sizeof(buf));
	if (n > 0) {
		e->reads++;
		if (e->sink.write(e->sink.ctx, which, buf, (size_t)n) < 0)
			*eof = true;
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		/* A pty whose process has exited: what was there has been read. */
		if (e->tty && e->exited)
			*eof = true;
		return;
	}
	/* 0 = EOF; EIO = the pty's last slave closed. */
	*eof = true;
	close_fd(which == 1 ? &e->wout : &e->werr, fd);
}

static void write_input(struct exec *e)
{
	while (e->in_fd >= 0 && e->inpos < e->inq.len) {
		ssize_t n = write(e->in_fd, e->inq.buf + e->inpos, e->inq.len - e->inpos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			/* EPIPE: the command closed its stdin; drop what it will never read. */
			e->in_closed = true;
			if (!e->tty)
				close_fd(&e->win, &e->in_fd);
			e->inpos = e->inq.len;
			break;
		}
		e->inpos += (size_t)n;
	}
	if (e->inpos == e->inq.len) {
		strbuf_reset(&e->inq);
		e->inpos = 0;
		if (e->inq.alloc > (256u << 10))
			strbuf_release(&e->inq);
		if (e->in_eof_pending && !e->in_closed) {
			e->in_eof_pending = false;
			e->in_closed = true;
			if (e->tty) {
				/* The pty is also stdout: send the EOF character instead of
				 * closing. */
				if (write(e->in_fd, "\x04", 1) < 0)
					log_debug("cannot write EOF to the pty: %m");
			} else {
				close_fd(&e->win, &e->in_fd);
			}
		}
		if (!e->detached)
			e->sink.stdin_drained(e->sink.ctx);
	}
}

static void on_out(struct loop_watch *w, short revents)
{
	struct exec *e = w->data;
	int which = w == &e->wout ? 1 : 2;
	(void)revents;
	/* A few chunks per wakeup while there is room: fewer trips through poll under load. */
	for (int i = 0; i < 8 && e->sink.can_write(e->sink.ctx); i++) {
		size_t before = e->reads;
		read_output(e, which);
		if (e->reads == before)
			break;
	}
}

static void on_in(struct loop_watch *w, short revents)
{
	struct exec *e = w->data;
	(void)revents;
	write_input(e);
}

static void prepare(void *data)
{
	struct exec *next;
	(void)data;
	/* Callbacks never free an exec, except `done`, which may free its own. */
	for (struct exec *e = execs; e; e = next) {
		next = e->next;
		if (e->detached)
			continue;
		bool room = e->sink.can_write(e->sink.ctx);
		if (e->tty && e->exited && room && !e->out_eof)
			read_output(e, 1);
		e->wout.events = e->out_fd >= 0 && !e->out_eof && room ? POLLIN : 0;
		e->werr.events = e->err_fd >= 0 && !e->err_eof && room ? POLLIN : 0;
		e->win.events = e->in_fd >= 0 && e->inpos < e->inq.len ? POLLOUT : 0;
		if (e->in_fd >= 0 && e->in_eof_pending && e->inpos == e->inq.len)
			write_input(e);
		if (e->exited && e->out_eof && e->err_eof && !e->done_sent) {
			e->done_sent = true;
			e->sink.done(e->sink.ctx, e->code);
		}
	}
}

static int set_nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

/* In the child: never returns. Reports exec's errno through errfd. */
static _noreturn_ void child(const struct exec_params *p, int in, int out, int err,
			     const char *slave, int errfd)
{
	sigset_t none;
	int e;
	char **argv = xcalloc(p->nargs + 2, sizeof(char *));

	argv[0] = (char *)p->name;
	for (size_t i = 0; i < p->nargs; i++)
		argv[i + 1] = p->args[i];
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	if (setsid() < 0)
		goto fail;
	/* An agent that dies takes its commands along (systemd's KillMode does the rest of the
	 * group; the tiny guest has no systemd). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != agent_pid)
		goto fail;
	if (slave) {
		int fd = open(slave, O_RDWR);
		if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) < 0)
			goto fail;
		in = out = err = fd;
	}
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		goto fail;
	for (int fd = 3; fd < 1024; fd++)
		if (fd != errfd)
			close(fd);
	if (chdir(login_home) < 0 && chdir("/") < 0)
		goto fail;
	environ = login_env.v;
	if (p->tty)
		putenv((char *)"TERM=xterm-256color");
	execvp(p->name, argv);
fail:
	e = errno;
	if (write(errfd, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

static int open_pty(const struct exec_params *p, int *ret_master, char *slave, size_t slavelen)
{
	struct winsize ws = {.ws_row = (unsigned short)(p->rows ? p->rows : 24),
			     .ws_col = (unsigned short)(p->cols ? p->cols : 80)};
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (m < 0)
		return -errno;
	if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, slavelen) != 0 ||
	    ioctl(m, TIOCSWINSZ, &ws) < 0) {
		int r = -errno;
		close(m);
		return r;
	}
	*ret_master = m;
	return 0;
}

static void close_all(int *const *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
}

int exec_start(const struct exec_params *p, const struct exec_sink *sink, struct exec **ret,
	       struct strbuf *err)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1}, ep[2] = {-1, -1};
	int master = -1, r, child_errno = 0;
	int *const all[] = {&in[0], &in[1], &out[0], &out[1], &er[0],
			    &er[1], &ep[0], &ep[1],  &master};
	char slave[128];
	struct exec *e;
	pid_t pid;
	ssize_t n;

	if (p->tty) {
		r = open_pty(p, &master, slave, sizeof(slave));
		if (r < 0) {
			strbuf_putf(err, "cannot allocate a pty: %s", strerror(-r));
			return r;
		}
	} else {
		if (p->interactive)
			r = pipe2(in, O_CLOEXEC);
		else
			r = in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (r < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(er, O_CLOEXEC) < 0)
			goto fail_errno;
	}
	if (pipe2(ep, O_CLOEXEC) < 0)
		goto fail_errno;
	pid = fork();
	if (pid < 0)
		goto fail_errno;
	if (pid == 0)
		child(p, in[0], out[1], er[1], p->tty ? slave : NULL, ep[1]);
	close_all((int *const[]){&ep[1], &in[0], &out[1], &er[1]}, 4);
	do
		n = read(ep[0], &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	if (n == sizeof(child_errno)) {
		/* exec failed: the child exits 127 at once; reap it here. */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close_all(all, ARRAY_SIZE(all));
		strbuf_putf(err, "cannot run '%s': %s", p->name, strerror(child_errno));
		return child_errno > 0 ? -child_errno : -EIO;
	}
	close_all((int *const[]){&ep[0]}, 1);

	e = xcalloc(1, sizeof(*e));
	e->pid = pid;
	e->tty = p->tty;
	e->interactive = p->interactive;
	e->sink = *sink;
	strbuf_init(&e->inq, STDIN_CAP);
	if (p->tty) {
		e->out_fd = master;
		e->in_fd = p->interactive ? fcntl(master, F_DUPFD_CLOEXEC, 3) : -1;
		e->err_fd = -1;
		e->err_eof = true;
	} else {
		e->in_fd = in[1];
		e->out_fd = out[0];
		e->err_fd = er[0];
	}
	e->in_closed = !p->interactive;
	loop_watch_init(&e->win, e->in_fd, on_in, e);
	loop_watch_init(&e->wout, e->out_fd, on_out, e);
	loop_watch_init(&e->werr, e->err_fd, on_out, e);
	struct loop_watch *ws[] = {&e->win, &e->wout, &e->werr};
	for (size_t i = 0; i < ARRAY_SIZE(ws); i++)
		if (ws[i]->fd >= 0) {
			set_nonblock_cloexec(ws[i]->fd);
			loop_add(exec_loop, ws[i]);
		}
	e->next = execs;
	execs = e;
	*ret = e;
	log_debug("started '%s' as pid %d%s%s", p->name, (int)pid, p->tty ? " on a pty" : "",
		  p->interactive ? " with stdin" : "");
	return 0;

fail_errno:
	r = negerrno();
	close_all(all, ARRAY_SIZE(all));
	strbuf_putf(err, "cannot start '%s': %s", p->name, strerror(-r));
	return r;
}

int exec_stdin(struct exec *e, const void *data, size_t len)
{
	if (e->in_closed || e->in_eof_pending || e->in_fd < 0)
		return 0;
	int r = strbuf_add(&e->inq, data, len);
	if (r < 0)
		return r;
	write_input(e);
	return 0;
}

void exec_stdin_eof(struct exec *e)
{
	if (e->in_closed || e->in_eof_pending)
		return;
	e->in_eof_pending = true;
	write_input(e);
}

size_t exec_stdin_pending(const struct exec *e)
{
	return e->inq.len - e->inpos;
}

int exec_resize(struct exec *e, uint32_t rows, uint32_t cols)
{
	struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
	if (!e->tty || e->out_fd < 0)
		return 0;
	return ioctl(e->out_fd, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
}

void exec_detach(struct exec *e, bool kill_group)
{
	e->detached = true;
	/* The whole group, also when the leader is gone: its children may still hold on. */
	if (kill_group && kill(-e->pid, SIGKILL) == 0)
		log_debug("killed the process group of pid %d", (int)e->pid);
	close_fd(&e->win, &e->in_fd);
	close_fd(&e->wout, &e->out_fd);
	close_fd(&e->werr, &e->err_fd);
	if (e->exited)
		exec_free(e);
}

static int exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return AGENT_EXIT_SIGNALED;
}

void exec_reap(void)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct exec *e;
		for (e = execs; e && e->pid != pid; e = e->next)
			;
		if (!e)
			continue;
		e->exited = true;
		e->code = exit_code(status);
		log_debug("pid %d exited, code %d", (int)pid, e->code);
		if (e->detached)
			exec_free(e);
	}
}

void exec_kill_all(void)
{
	for (struct exec *e = execs; e; e = e->next)
		kill(-e->pid, SIGKILL);
}
