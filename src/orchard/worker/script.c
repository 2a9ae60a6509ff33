// SPDX-License-Identifier: Apache-2.0
/*
 * Startup scripts as Orchard runs them (vmmanager/base.Shell): SSH to the VM's port 22 with the
 * VM's username and password (admin/admin when both are empty), any host key, a login shell
 * fed "set -e", `export K="V"` lines, the script and "exit" on its standard input; every output
 * line becomes a log_line event; a non-zero exit fails the VM. Connection attempts are retried
 * (for 5 minutes at least, with growing delays), each failure reported as an event as Orchard does.
 *
 * The SSH client is the system's ssh (openssh-client) started without a shell in between;
 * sshpass (-e: the password travels in the environment, never in argv) answers the password
 * prompt. `--ssh-key` of the worker adds an identity tried first (our addition: test guests
 * that take keys only).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orchard/api.h"
#include "orchard/worker/worker.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/run.h"
#include "util/strvec.h"

extern char **environ;

#define LINE_MAX_BYTES (64u * 1024)
/* Orchard retries 10 times, each after a `tart ip --wait 60`; a guest slow to boot (a loaded
 * host, TCG) gets at least that long here: attempts go on for 5 minutes. */
#define ATTEMPTS_MIN 10
#define ATTEMPTS_USEC (300 * 1000 * 1000ULL)

int worker_post_log_lines(struct worker *w, const char *name, const char *const *lines, size_t n)
{
	if (!n)
		return 0;
	json_t *arr = json_array();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr,
				      json_pack("{s:s,s:I,s:s}", "kind", "log_line", "timestamp",
						(json_int_t)ts.tv_sec, "payload", lines[i]));
	_cleanup_free_ char *esc = orchard_escape(name);
	_cleanup_free_ char *path = xasprintf("vms/%s/events", esc);
	_cleanup_free_ char *err = NULL;
	int r = orchard_send(w->client, "POST", path, arr, NULL, &err);
	json_decref(arr);
	if (r < 0 && r != -ENOENT)
		log_warning("worker: errored during streaming events for startup script: %s", err);
	return r;
}

static void post_line(struct wvm *vm, const char *line)
{
	worker_post_log_lines(vm->w, vm->name, &line, 1);
}

/*
 * Split buffered output into lines (a trailing \r dropped, as Go's ScanLines) and post them.
 * The first line equal to marker (when given) is not posted: it sets *seen instead.
 */
static void flush_lines(struct wvm *vm, struct strbuf *pending, bool eof, const char *marker,
			bool *seen)
{
	_cleanup_strvec_ struct strvec lines = STRVEC_INIT;
	size_t start = 0;
	for (size_t i = 0; i < pending->len; i++) {
		if (pending->buf[i] != '\n' && i - start < LINE_MAX_BYTES)
			continue;
		size_t end = i;
		if (end > start && pending->buf[end - 1] == '\r')
			end--;
		char *l = xstrndup(pending->buf + start, end - start);
		if (marker && !*seen && streq(l, marker))
			*seen = true;
		else
			strvec_push(&lines, l);
		free(l);
		start = pending->buf[i] == '\n' ? i + 1 : i;
	}
	if (eof && start < pending->len) {
		char *l = xstrndup(pending->buf + start, pending->len - start);
		strvec_push(&lines, l);
		free(l);
		start = pending->len;
	}
	memmove(pending->buf, pending->buf + start, pending->len - start);
	pending->len -= start;
	pending->buf[pending->len] = 0;
	worker_post_log_lines(vm->w, vm->name, (const char *const *)lines.v, lines.nr);
}

static char *script_text(const json_t *script, const char *marker)
{
	struct strbuf sb = STRBUF_INIT;
	/* the marker tells a session that ran from an SSH connection that failed */
	strbuf_putf(&sb, "echo %s\nset -e\n", marker);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)json_object_get(script, "env"), k, v)
	    strbuf_putf(&sb, "export %s=\"%s\"\n", k, json_string_value(v) ?: "");
	strbuf_puts(&sb, orchard_str(script, "script_content"));
	strbuf_puts(&sb, "\nexit\n");
	return strbuf_detach(&sb, NULL);
}

struct ssh_result {
	int status;
	bool connected; /* the shell printed the marker */
};

static void set_script_child(struct wvm *vm, pid_t pid)
{
	pthread_mutex_lock(&vm->lock);
	vm->script_child = pid;
	bool kill_now = pid > 0 && vm->cancelled;
	pthread_mutex_unlock(&vm->lock);
	if (kill_now)
		kill(pid, SIGKILL);
}

static int run_ssh(struct wvm *vm, const char *host, int port, const char *user,
		   const char *password, const char *text, const char *marker,
		   struct ssh_result *res)
{
	struct worker *w = vm->w;
	_cleanup_strvec_ struct strvec argv = STRVEC_INIT, env = STRVEC_INIT;
	_cleanup_free_ char *sshpass = NULL, *ssh = NULL;
	if (find_program("ssh", &ssh) < 0) {
		post_line(vm, "ssh is not installed on the worker (openssh-client)");
		return -ENOENT;
	}
	if (*password) {
		if (find_program("sshpass", &sshpass) < 0) {
			post_line(vm, "sshpass is not installed on the worker (password login)");
			return -ENOENT;
		}
		strvec_pushl(&argv, sshpass, "-e", NULL);
	}
	strvec_pushl(&argv, ssh, "-T", "-o", "StrictHostKeyChecking=no", "-o",
		     "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null", "-o",
		     "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-o", "ServerAliveInterval=15",
		     "-o", *password ? "BatchMode=no" : "BatchMode=yes", NULL);
	if (w->ssh_key)
		strvec_pushl(&argv, "-i", w->ssh_key, NULL);
	strvec_pushf(&argv, "-p%d", port);
	strvec_pushf(&argv, "%s@%s", user, host);
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "SSHPASS=", 8) != 0)
			strvec_push(&env, *e);
	if (*password)
		strvec_pushf(&env, "SSHPASS=%s", password);

	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return negerrno();
	if (pipe2(out, O_CLOEXEC) < 0) {
		int r = negerrno();
		close(in[0]);
		close(in[1]);
		return r;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, out[1], 2);
	pid_t pid;
	int r = -posix_spawn(&pid, argv.v[0], &fa, NULL, argv.v, env.v);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	/* explicit_bzero the password copy in env */
	for (size_t i = 0; i < env.nr; i++)
		if (strncmp(env.v[i], "SSHPASS=", 8) == 0)
			explicit_bzero(env.v[i], strlen(env.v[i]));
	if (r < 0) {
		close(in[1]);
		close(out[0]);
		return r;
	}
	set_script_child(vm, pid);
	/* the script is small (a controller caps bodies): a blocking write before reading is fine
	 * only if it fits the pipe, so write from here only what fits and the rest as we go */
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	size_t pos = 0, len = strlen(text);
	struct strbuf pending = STRBUF_INIT;
	char buf[8192];
	for (;;) {
		struct pollfd p[2] = {{.fd = out[0], .events = POLLIN},
				      {.fd = in[1] >= 0 ? in[1] : -1, .events = POLLOUT}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (in[1] >= 0 && p[1].revents) {
			ssize_t n = write(in[1], text + pos, len - pos);
			if (n > 0)
				pos += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || pos == len) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (p[0].revents) {
			ssize_t n = read(out[0], buf, sizeof(buf));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0)
				break;
			strbuf_putn(&pending, buf, (size_t)n);
			flush_lines(vm, &pending, false, marker, &res->connected);
		}
	}
	flush_lines(vm, &pending, true, marker, &res->connected);
	strbuf_release(&pending);
	if (in[1] >= 0)
		close(in[1]);
	close(out[0]);
	siginfo_t si;
	while (waitid(P_PID, pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
		;
	set_script_child(vm, 0);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	res->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
}

static bool stopped(struct wvm *vm)
{
	pthread_mutex_lock(&vm->lock);
	bool c = vm->cancelled || (vm->conds & (COND_STOPPING | COND_SUSPENDING));
	pthread_mutex_unlock(&vm->lock);
	return c;
}

static void *script_main(void *p)
{
	struct wvm *vm = p;
	char *text = NULL, *last = NULL;
	pthread_mutex_lock(&vm->lock);
	json_t *res = json_deep_copy(vm->res);
	pthread_mutex_unlock(&vm->lock);
	json_t *script = json_object_get(res, "startup_script");

	if (vm->w->synthetic) {
		/* Orchard's synthetic VMs echo the script's lines as the log */
		_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
		strbuf_puts(&sb, orchard_str(script, "script_content"));
		flush_lines(vm, &sb, true, NULL, NULL);
		goto out;
	}

	const char *user = orchard_str(res, "username"), *password = orchard_str(res, "password");
	if (!*user && !*password)
		user = password = "admin";
	unsigned char rnd[8];
	char marker[64];
	(void)fs_random_bytes(rnd, sizeof(rnd));
	snprintf(marker, sizeof(marker), "orchard-startup-script-%02x%02x%02x%02x%02x%02x%02x%02x",
		 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	text = script_text(script, marker);
	usec_t delay = 100 * 1000;
	usec_t deadline = now_monotonic_usec() + ATTEMPTS_USEC;
	for (int attempt = 1; attempt <= ATTEMPTS_MIN || now_monotonic_usec() < deadline;
	     attempt++) {
		if (stopped(vm))
			goto out;
		_cleanup_free_ char *host = NULL, *err = NULL;
		int port = 0;
		int r = wvm_endpoint(vm, 22, &host, &port, &err);
		if (r >= 0) {
			struct ssh_result sr = {0};
			r = run_ssh(vm, host, port, user, password, text, marker, &sr);
			if (r < 0)
				break;
			if (stopped(vm))
				goto out;
			/* no marker: the connection failed, not the script */
			if (!sr.connected) {
				free(err);
				err = xasprintf("SSH connection to %s:%d failed", host, port);
			} else if (sr.status != 0) {
				wvm_set_error(
				    vm,
				    "VM failed: failed to run startup script: Process exited "
				    "with status %d",
				    sr.status);
				goto out;
			} else {
				goto out;
			}
		} else {
			char *e = xasprintf("failed to get VM's IP: %s", err ? err : strerror(-r));
			free(err);
			err = e;
		}
		_cleanup_free_ char *line =
		    xasprintf("attempt %d to establish SSH connection failed: %s", attempt, err);
		log_debug("worker: VM %s: %s", vm->odn, line);
		post_line(vm, line);
		free(last);
		last = TAKE_PTR(err);
		for (usec_t t = 0; t < delay && !stopped(vm); t += 100 * 1000)
			sleep_usec(100 * 1000);
		delay = MIN(delay * 2, 5 * 1000 * 1000);
	}
	if (!stopped(vm))
		wvm_set_error(vm,
			      "VM failed: failed to run startup script: failed to establish SSH "
			      "connection: %s",
			      last ? last : "ssh is missing");
out:
	free(text);
	free(last);
	json_decref(res);
	wvm_unref(vm);
	return NULL;
}

void wvm_script_start(struct wvm *vm)
{
	wvm_ref(vm);
	if (worker_thread(script_main, vm) < 0) {
		wvm_set_error(vm, "VM failed: failed to run startup script: cannot start a thread");
		wvm_unref(vm);
	}
}
