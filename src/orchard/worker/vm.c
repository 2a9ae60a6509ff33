// SPDX-License-Identifier: Apache-2.0
/*
 * One local VM, driven as Orchard's Tart driver drives Tart (internal/worker/vmmanager/tart):
 *   [tart pull IMAGE]  (imagePullPolicy Always)
 *   tart clone IMAGE orchard-<name>-<uid>-<restartCount>
 *   tart fqn IMAGE     (best effort, reported as image_fqn)
 *   tart set --memory M / --cpu C / --disk-size D (each when non-zero), set --random-mac,
 *   [set --random-serial]
 *   tart run [--net-softnet] [--net-softnet-allow ..] [--net-softnet-block ..]
 *            [--net-bridged=IF] [--no-graphics] [--nested] [--suspendable] [--dir=..] NAME
 * with the startup script over SSH in parallel, `tart stop --timeout 5` then the end of every
 * tart process of the VM for a stop, `tart suspend`, `tart delete`.
 *
 * `tart run` runs in a process group of its own with its output in a log file (never a pipe),
 * so a worker killed with SIGKILL leaves it running: the next worker process adopts it
 * (wvm_adopt) and watches its pid through a pidfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orchard/api.h"
#include "orchard/worker/fsm.h"
#include "orchard/worker/worker.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/run.h"
#include "util/strvec.h"
#include "vm/dir.h"
#include "vm/home.h"
#include "vm/run-state.h"

extern char **environ;

#define OUT_CAP (1u << 20)

struct wvm *wvm_new(struct worker *w, const json_t *res)
{
	struct wvm *vm = xcalloc(1, sizeof(*vm));
	vm->w = w;
	vm->res = json_deep_copy(res);
	vm->odn = orchard_odn_of(res);
	vm->name = xstrdup(orchard_str(res, "name"));
	vm->uid = xstrdup(orchard_str(res, "uid"));
	vm->refs = 1;
	vm->conds = COND_CLONING;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	return vm;
}

void wvm_ref(struct wvm *vm)
{
	pthread_mutex_lock(&vm->w->lock);
	vm->refs++;
	pthread_mutex_unlock(&vm->w->lock);
}

void wvm_unref(struct wvm *vm)
{
	if (!vm)
		return;
	pthread_mutex_lock(&vm->w->lock);
	bool last = --vm->refs == 0;
	pthread_mutex_unlock(&vm->w->lock);
	if (!last)
		return;
	json_decref(vm->res);
	free(vm->odn);
	free(vm->name);
	free(vm->uid);
	free(vm->status_message);
	free(vm->err);
	free(vm->image_fqn);
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->cond);
	free(vm);
}

void wvm_set_message(struct wvm *vm, const char *msg)
{
	pthread_mutex_lock(&vm->lock);
	free(vm->status_message);
	vm->status_message = xstrdup(msg);
	pthread_mutex_unlock(&vm->lock);
	log_debug("worker: VM %s: %s", vm->odn, msg);
}

void wvm_set_error(struct wvm *vm, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = xvasprintf(fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&vm->lock);
	bool first = !vm->err;
	if (first)
		vm->err = m;
	pthread_mutex_unlock(&vm->lock);
	if (first) {
		log_error("worker: VM %s: %s", vm->odn, m);
		worker_request_sync(vm->w);
	} else {
		free(m);
	}
}

static bool cancelled(struct wvm *vm)
{
	pthread_mutex_lock(&vm->lock);
	bool c = vm->cancelled;
	pthread_mutex_unlock(&vm->lock);
	return c;
}

static void set_conds(struct wvm *vm, unsigned add, unsigned remove)
{
	pthread_mutex_lock(&vm->lock);
	vm->conds = (vm->conds | add) & ~remove;
	pthread_mutex_unlock(&vm->lock);
}

/* ---- running tart -------------------------------------------------------------------------- */

/* Orchard's firstNonEmptyLine over stderr, then stdout. */
static char *first_line(const struct strbuf *a, const struct strbuf *b)
{
	const struct strbuf *bufs[] = {a, b};
	for (size_t i = 0; i < 2; i++) {
		const char *p = bufs[i] ? bufs[i]->buf : "";
		while (*p) {
			size_t n = strcspn(p, "\n");
			if (n)
				return xstrndup(p, n);
			p += n + (p[n] == '\n');
		}
	}
	return xstrdup("");
}

static void track_child(pid_t pid, void *ud)
{
	struct wvm *vm = ud;
	pthread_mutex_lock(&vm->lock);
	vm->child = pid;
	bool kill_now = pid > 0 && vm->cancelled;
	pthread_mutex_unlock(&vm->lock);
	if (kill_now)
		kill(pid, SIGKILL);
}

static int tart_run_cmd(struct worker *w, struct wvm *vm, const struct strvec *args,
			struct strbuf *out, char **ret_error)
{
	_cleanup_strvec_ struct strvec argv = STRVEC_INIT;
	strvec_push(&argv, w->tart);
	for (size_t i = 0; i < args->nr; i++)
		strvec_push(&argv, args->v[i]);
	_cleanup_strbuf_ struct strbuf o = STRBUF_INIT, e = STRBUF_INIT;
	strbuf_init(&o, OUT_CAP);
	strbuf_init(&e, OUT_CAP);
	int st = 0;
	_cleanup_free_ char *cmdline = strvec_join(args, " ");
	log_debug("worker: running 'tart %s'", cmdline);
	int r = run_argv_hooked(&argv, NULL, 0, &o, &e, vm ? track_child : NULL, vm, &st);
	if (r < 0) {
		if (ret_error)
			*ret_error =
			    xasprintf("tart command not found, make sure Tart is installed "
				      "(%s: %s)",
				      w->tart, strerror(-r));
		return r;
	}
	if (vm && cancelled(vm))
		return -ECANCELED;
	if (st != 0) {
		_cleanup_free_ char *l = first_line(&e, &o);
		log_warning("worker: 'tart %s' failed with exit code %d: %s", cmdline, st, l);
		if (ret_error)
			*ret_error = xasprintf("tart command failed: \"%s\"", l);
		return -EIO;
	}
	if (out)
		strbuf_putn(out, o.buf, o.len);
	return 0;
}

int wvm_tart(struct wvm *vm, const struct strvec *args, struct strbuf *out, char **ret_error)
{
	return tart_run_cmd(vm->w, vm, args, out, ret_error);
}

int worker_tart(struct worker *w, const struct strvec *args, struct strbuf *out, char **ret_error)
{
	return tart_run_cmd(w, NULL, args, out, ret_error);
}

static int tart1(struct wvm *vm, char **ret_error, ...)
{
	_cleanup_strvec_ struct strvec args = STRVEC_INIT;
	va_list ap;
	va_start(ap, ret_error);
	for (const char *a = va_arg(ap, const char *); a; a = va_arg(ap, const char *))
		strvec_push(&args, a);
	va_end(ap);
	return wvm_tart(vm, &args, NULL, ret_error);
}

/* ---- the driver ---------------------------------------------------------------------------- */

static char *log_path(struct wvm *vm)
{
	_cleanup_free_ char *f = xasprintf("%s.log", vm->odn);
	return path_join(vm->w->log_dir, f);
}

/* `tart run`: own process group, output to the VM's log file; returns the exit status. */
static int spawn_run(struct wvm *vm, const struct strvec *argv, pid_t *ret_pid)
{
	_cleanup_free_ char *lp = log_path(vm);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, lp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					  POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	int r = posix_spawn(ret_pid, argv->v[0], &fa, &at, argv->v, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return -r;
}

static void run_args(struct wvm *vm, struct strvec *a)
{
	pthread_mutex_lock(&vm->lock);
	json_t *res = json_incref(vm->res);
	pthread_mutex_unlock(&vm->lock);
	strvec_push(a, vm->w->tart);
	strvec_push(a, "run");
	if (orchard_bool(res, "net-softnet") || orchard_bool(res, "netSoftnet"))
		strvec_push(a, "--net-softnet");
	const char *lists[] = {"netSoftnetAllow", "--net-softnet-allow", "netSoftnetBlock",
			       "--net-softnet-block"};
	for (size_t k = 0; k < 4; k += 2) {
		json_t *arr = json_object_get(res, lists[k]), *v;
		size_t i;
		if (!json_array_size(arr))
			continue;
		_cleanup_strvec_ struct strvec cidrs = STRVEC_INIT;
		json_array_foreach(arr, i, v) strvec_push(&cidrs, json_string_value(v) ?: "");
		_cleanup_free_ char *joined = strvec_join(&cidrs, ",");
		strvec_pushl(a, lists[k + 1], joined, NULL);
	}
	if (*orchard_str(res, "net-bridged"))
		strvec_pushf(a, "--net-bridged=%s", orchard_str(res, "net-bridged"));
	if (orchard_bool(res, "headless"))
		strvec_push(a, "--no-graphics");
	if (orchard_bool(res, "nested"))
		strvec_push(a, "--nested");
	if (orchard_bool(res, "suspendable"))
		strvec_push(a, "--suspendable");
	json_t *d;
	size_t i;
	json_array_foreach(json_object_get(res, "hostDirs"), i, d)
	{
		/* HostDir.String(): name:path[:ro] */
		strvec_pushf(a, "--dir=%s:%s%s", orchard_str(d, "name"), orchard_str(d, "path"),
			     orchard_bool(d, "ro") ? ":ro" : "");
	}
	strvec_push(a, vm->odn);
	json_decref(res);
}

/* Wait for a process that is not our child (adopted): through a pidfd. */
static void wait_foreign(struct wvm *vm, pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return; /* already gone */
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, 1000);
		if (n > 0 || (n < 0 && errno != EINTR))
			break;
		pthread_mutex_lock(&vm->lock);
		bool c = vm->cancelled;
		pthread_mutex_unlock(&vm->lock);
		/* through the pidfd: never another process that got the pid meanwhile */
		if (c)
			(void)syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
	}
	close(fd);
}

/* Orchard's VM.run(): the startup script alongside a blocking `tart run`. */
static void run_vm(struct wvm *vm)
{
	pthread_mutex_lock(&vm->lock);
	bool script = json_is_object(json_object_get(vm->res, "startup_script"));
	pid_t adopted = vm->adopted_pid;
	vm->adopted_pid = 0;
	pthread_mutex_unlock(&vm->lock);

	if (script && !adopted) { /* an adopted VM ran its script before */
		wvm_set_message(vm, "VM started, running startup script...");
		wvm_script_start(vm);
	} else {
		wvm_set_message(vm, adopted ? "VM adopted" : "VM started");
	}

	int status = 0;
	bool spawned = false;
	if (adopted) {
		wait_foreign(vm, adopted);
		status = 0; /* its exit status belongs to its dead parent */
	} else if (vm->w->synthetic) {
		pthread_mutex_lock(&vm->lock);
		while (!vm->cancelled && !(vm->conds & (COND_STOPPING | COND_SUSPENDING)))
			pthread_cond_wait(&vm->cond, &vm->lock);
		pthread_mutex_unlock(&vm->lock);
	} else {
		_cleanup_strvec_ struct strvec argv = STRVEC_INIT;
		run_args(vm, &argv);
		pid_t pid;
		int r = spawn_run(vm, &argv, &pid);
		if (r < 0) {
			wvm_set_error(vm, "VM failed: cannot start %s: %s", vm->w->tart,
				      strerror(-r));
		} else {
			spawned = true;
			track_child(pid, vm);
			siginfo_t si;
			while (waitid(P_PID, pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
				;
			track_child(0, vm);
			int st;
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
	}

	pthread_mutex_lock(&vm->lock);
	bool c = vm->cancelled, stopping = vm->conds & (COND_STOPPING | COND_SUSPENDING);
	pthread_mutex_unlock(&vm->lock);
	if (!c && (spawned || adopted) && status != 0 && !stopping) {
		_cleanup_strbuf_ struct strbuf logsb = STRBUF_INIT;
		_cleanup_free_ char *lp = log_path(vm);
		strbuf_init(&logsb, 64 * 1024);
		(void)fs_read_full(lp, 0, &logsb);
		_cleanup_free_ char *l = first_line(&logsb, NULL);
		wvm_set_error(vm, "VM failed: tart command failed: \"%s\"", l);
	} else if (!c && !stopping && (spawned || adopted || vm->w->synthetic)) {
		wvm_set_error(vm, "VM failed: VM exited unexpectedly");
	}
	set_conds(vm, 0, COND_RUNNING | COND_STOPPING | COND_SUSPENDING);
}

static int clone_and_configure(struct wvm *vm, char **err)
{
	pthread_mutex_lock(&vm->lock);
	json_t *res = json_incref(vm->res);
	pthread_mutex_unlock(&vm->lock);
	const char *image = orchard_str(res, "image");
	int r;

	wvm_set_message(vm, "cloning VM...");
	if ((r = tart1(vm, err, "clone", image, vm->odn, NULL)) < 0)
		goto out;
	set_conds(vm, 0, COND_CLONING);

	_cleanup_strbuf_ struct strbuf fqn = STRBUF_INIT;
	_cleanup_strvec_ struct strvec fa = STRVEC_INIT;
	strvec_pushl(&fa, "fqn", image, NULL);
	if (wvm_tart(vm, &fa, &fqn, NULL) == 0) {
		strbuf_rtrim(&fqn);
		pthread_mutex_lock(&vm->lock);
		free(vm->image_fqn);
		vm->image_fqn = xstrdup(fqn.buf);
		pthread_mutex_unlock(&vm->lock);
	}

	wvm_set_message(vm, "configuring VM...");
	uint64_t mem = orchard_u64(res, "assignedMemory") ?: orchard_u64(res, "memory");
	uint64_t cpu = orchard_u64(res, "assignedCPU") ?: orchard_u64(res, "cpu");
	uint64_t disk = orchard_u64(res, "diskSize");
	char num[32];
	if (mem) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)mem);
		if ((r = tart1(vm, err, "set", "--memory", num, vm->odn, NULL)) < 0)
			goto out;
	}
	if (cpu) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)cpu);
		if ((r = tart1(vm, err, "set", "--cpu", num, vm->odn, NULL)) < 0)
			goto out;
	}
	if (disk) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)disk);
		if ((r = tart1(vm, err, "set", "--disk-size", num, vm->odn, NULL)) < 0)
			goto out;
	}
	/* always: clones of one image must not share a MAC address (DHCP leases) */
	if ((r = tart1(vm, err, "set", "--random-mac", vm->odn, NULL)) < 0)
		goto out;
	if (orchard_bool(res, "randomSerial"))
		r = tart1(vm, err, "set", "--random-serial", vm->odn, NULL);
out:
	json_decref(res);
	return r;
}

/* The end of a driver thread: "the context is done". */
static void *driver_done(struct wvm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->busy = false;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	wvm_unref(vm);
	return NULL;
}

/* The driver thread of a new VM: Orchard's tart.NewVM goroutine. */
static void *create_main(void *p)
{
	struct wvm *vm = p;
	struct worker *w = vm->w;
	if (w->synthetic) {
		/* Orchard's synthetic VMs: a random delay standing in for clone and configure */
		unsigned char rnd;
		(void)fs_random_bytes(&rnd, 1);
		usec_t delay = (usec_t)rnd * 2500000ULL / 256;
		pthread_mutex_lock(&vm->lock);
		usec_t until = now_monotonic_usec() + delay;
		while (!vm->cancelled && now_monotonic_usec() < until) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
		}
		pthread_mutex_unlock(&vm->lock);
	} else {
		char *err = NULL;
		int r = 0;
		pthread_mutex_lock(&vm->lock);
		bool pull = streq(orchard_str(vm->res, "imagePullPolicy"), "Always");
		_cleanup_free_ char *image = xstrdup(orchard_str(vm->res, "image"));
		pthread_mutex_unlock(&vm->lock);
		if (pull) {
			wvm_set_message(vm, "pulling VM image...");
			r = tart1(vm, &err, "pull", image, NULL);
			if (r < 0 && r != -ECANCELED)
				wvm_set_error(vm, "failed to pull the VM: %s", err);
		}
		if (r >= 0) {
			r = clone_and_configure(vm, &err);
			if (r < 0 && r != -ECANCELED)
				wvm_set_error(vm, "failed to clone the VM: %s", err);
		}
		free(err);
		if (r < 0)
			goto done;
	}
	if (cancelled(vm))
		goto done;
	pthread_mutex_lock(&vm->lock);
	vm->started = true;
	vm->conds = (vm->conds | COND_RUNNING) & ~COND_CLONING;
	pthread_mutex_unlock(&vm->lock);
	worker_request_sync(vm->w); /* report it now, not at the next poll */
	run_vm(vm);
done:
	return driver_done(vm);
}

static void *start_main(void *p)
{
	run_vm(p);
	return driver_done(p);
}

static void spawn_thread(struct wvm *vm, void *(*fn)(void *))
{
	wvm_ref(vm);
	pthread_mutex_lock(&vm->lock);
	vm->busy = true;
	vm->cancelled = false;
	pthread_mutex_unlock(&vm->lock);
	if (worker_thread(fn, vm) < 0) {
		wvm_set_error(vm, "VM failed: cannot start a thread");
		pthread_mutex_lock(&vm->lock);
		vm->busy = false;
		pthread_mutex_unlock(&vm->lock);
		wvm_unref(vm);
	}
}

void wvm_create(struct wvm *vm)
{
	spawn_thread(vm, create_main);
}

void wvm_adopt(struct wvm *vm, pid_t run_pid)
{
	pthread_mutex_lock(&vm->lock);
	vm->started = true;
	vm->conds = COND_RUNNING;
	vm->adopted_pid = run_pid;
	pthread_mutex_unlock(&vm->lock);
	log_info("worker: adopting VM %s (%s)", vm->odn,
		 run_pid ? "still running" : "on disk, running it again");
	spawn_thread(vm, start_main);
}

void wvm_start(struct wvm *vm)
{
	wvm_set_message(vm, "Starting VM");
	set_conds(vm, COND_RUNNING, 0);
	spawn_thread(vm, start_main);
}

void wvm_set_resource(struct wvm *vm, const json_t *res)
{
	pthread_mutex_lock(&vm->lock);
	json_decref(vm->res);
	vm->res = json_deep_copy(res);
	json_object_set_new(vm->res, "observedGeneration",
			    json_integer((json_int_t)orchard_u64(res, "generation")));
	pthread_mutex_unlock(&vm->lock);
}

/* End every process of the VM and wait until its driver thread is done. */
static void cancel_and_wait(struct wvm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->cancelled = true;
	if (vm->child > 0)
		kill(vm->child, SIGKILL);
	if (vm->script_child > 0)
		kill(vm->script_child, SIGKILL);
	pthread_cond_broadcast(&vm->cond);
	while (vm->busy)
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
}

static void stop_now(struct wvm *vm)
{
	if (!vm->w->synthetic) {
		/* a graceful stop first; errors do not matter, the end is forced below */
		_cleanup_strvec_ struct strvec a = STRVEC_INIT;
		strvec_pushl(&a, "stop", "--timeout", "5", vm->odn, NULL);
		(void)worker_tart(vm->w, &a, NULL, NULL);
		/* `tart run` tidies up (network, run.json) as it ends: a few seconds for that
		 * before its end is forced (Orchard kills at once) */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		pthread_mutex_lock(&vm->lock);
		while (vm->busy && vm->started && vm->child > 0)
			if (pthread_cond_timedwait(&vm->cond, &vm->lock, &ts) == ETIMEDOUT)
				break;
		pthread_mutex_unlock(&vm->lock);
	}
	cancel_and_wait(vm);
}

static void *stop_main(void *p)
{
	struct wvm *vm = p;
	stop_now(vm);
	wvm_unref(vm);
	return NULL;
}

/* Orchard's Stop(): nothing when the driver is done; else "Stopping VM" and the stop. */
static bool begin_stop(struct wvm *vm, unsigned cond, const char *msg)
{
	pthread_mutex_lock(&vm->lock);
	bool busy = vm->busy;
	if (busy)
		vm->conds |= cond;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	if (busy)
		wvm_set_message(vm, msg);
	return busy;
}

void wvm_stop(struct wvm *vm)
{
	if (!begin_stop(vm, COND_STOPPING, "Stopping VM"))
		return;
	wvm_ref(vm);
	if (worker_thread(stop_main, vm) < 0) {
		stop_now(vm);
		wvm_unref(vm);
	}
}

void wvm_stop_wait(struct wvm *vm)
{
	if (begin_stop(vm, COND_STOPPING, "Stopping VM"))
		stop_now(vm);
	else
		cancel_and_wait(vm);
}

static void *suspend_main(void *p)
{
	struct wvm *vm = p;
	if (!vm->w->synthetic) {
		_cleanup_strvec_ struct strvec a = STRVEC_INIT;
		_cleanup_free_ char *err = NULL;
		strvec_pushl(&a, "suspend", vm->odn, NULL);
		if (worker_tart(vm->w, &a, NULL, &err) < 0)
			wvm_set_error(vm, "failed to suspend VM: %s", err);
	}
	wvm_unref(vm);
	return NULL;
}

void wvm_suspend(struct wvm *vm)
{
	if (!begin_stop(vm, COND_SUSPENDING, "Suspending VM"))
		return;
	wvm_ref(vm);
	if (worker_thread(suspend_main, vm) < 0)
		wvm_unref(vm);
}

int wvm_delete(struct wvm *vm, char **ret_error)
{
	cancel_and_wait(vm);
	pthread_mutex_lock(&vm->lock);
	bool cloning = vm->conds & COND_CLONING;
	pthread_mutex_unlock(&vm->lock);
	_cleanup_free_ char *lp = log_path(vm);
	(void)unlink(lp);
	if (cloning || vm->w->synthetic)
		return 0; /* not cloned yet: nothing on disk */
	_cleanup_strvec_ struct strvec a = STRVEC_INIT;
	_cleanup_free_ char *err = NULL;
	strvec_pushl(&a, "delete", vm->odn, NULL);
	int r = worker_tart(vm->w, &a, NULL, &err);
	if (r < 0 && ret_error)
		*ret_error = xasprintf("VM failed: failed to delete VM: %s", err);
	return r;
}

void wvm_snapshot(struct wvm *vm, struct wvm_state *ret)
{
	pthread_mutex_lock(&vm->lock);
	bool synthetic_running = vm->started;
	*ret = (struct wvm_state){
	    .status = vm->err		  ? VM_STATUS_FAILED
		      : synthetic_running ? VM_STATUS_RUNNING
					  : VM_STATUS_PENDING,
	    .status_message = xstrdup(vm->status_message ? vm->status_message : ""),
	    .err = vm->err ? xstrdup(vm->err) : NULL,
	    .image_fqn = vm->image_fqn ? xstrdup(vm->image_fqn) : NULL,
	    .conds = vm->conds,
	    .res = json_deep_copy(vm->res),
	};
	pthread_mutex_unlock(&vm->lock);
}

void wvm_state_release(struct wvm_state *s)
{
	free(s->status_message);
	free(s->err);
	free(s->image_fqn);
	json_decref(s->res);
	*s = (struct wvm_state){0};
}

/* ---- addresses ----------------------------------------------------------------------------- */

/*
 * A VM on QEMU user networking has no address the host can reach; its `tart run` records the
 * forwarded SSH port in run.json ("ssh-port=N"). 1 when that applies (port set), 0 when the VM
 * has another network mode, -errno when it does not run.
 */
static int user_mode_ssh_port(struct wvm *vm, int *ret_port)
{
	_cleanup_free_ char *vms = home_path("vms");
	_cleanup_free_ char *p = path_join(vms, vm->odn);
	struct vm_dir d;
	struct vm_run_state s;
	vm_dir_init(&d, p, vm->odn);
	int r = vm_run_state_read(&d, &s);
	vm_dir_release(&d);
	if (r < 0)
		return r;
	if (!streq(s.net_mode, "user"))
		return 0;
	const char *k = strstr(s.net_info, "ssh-port=");
	if (!k)
		return -ENOENT;
	*ret_port = atoi(k + 9);
	return *ret_port > 0 ? 1 : -ENOENT;
}

int wvm_ip(struct wvm *vm, char **ret_ip, char **ret_error)
{
	if (vm->w->synthetic) {
		*ret_ip = xstrdup("127.0.0.1");
		return 0;
	}
	pthread_mutex_lock(&vm->lock);
	_cleanup_free_ char *bridged = xstrdup(orchard_str(vm->res, "net-bridged"));
	pthread_mutex_unlock(&vm->lock);
	_cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
	_cleanup_strvec_ struct strvec a = STRVEC_INIT;
	if (*bridged) {
		/* bridged: the agent first with a short wait, as Orchard */
		strvec_pushl(&a, "ip", "--wait", "5", "--resolver", "agent", vm->odn, NULL);
		if (worker_tart(vm->w, &a, &out, NULL) == 0) {
			strbuf_rtrim(&out);
			*ret_ip = strbuf_detach(&out, NULL);
			return 0;
		}
		strvec_clear(&a);
		strbuf_reset(&out);
	}
	strvec_pushl(&a, "ip", "--wait", "60", NULL);
	if (*bridged)
		strvec_pushl(&a, "--resolver", "arp", NULL);
	strvec_push(&a, vm->odn);
	int r = worker_tart(vm->w, &a, &out, ret_error);
	if (r < 0)
		return r;
	strbuf_rtrim(&out);
	*ret_ip = strbuf_detach(&out, NULL);
	return 0;
}

int wvm_endpoint(struct wvm *vm, int port, char **ret_host, int *ret_port, char **ret_error)
{
	if (vm->w->synthetic) {
		*ret_host = xstrdup("127.0.0.1");
		*ret_port = vm->w->echo_port;
		return 0;
	}
	/* run.json appears once QEMU is up: wait for it while the VM is starting */
	int fwd = 0, um;
	for (int i = 0; (um = user_mode_ssh_port(vm, &fwd)) < 0 && i < 300; i++) {
		pthread_mutex_lock(&vm->lock);
		bool live = vm->busy && !vm->cancelled;
		pthread_mutex_unlock(&vm->lock);
		if (!live)
			break;
		sleep_usec(200 * 1000);
	}
	if (um > 0) {
		if (port != 22) {
			*ret_error = xasprintf("VM \"%s\" uses user-mode networking: only its SSH "
					       "port 22 is reachable from the host",
					       vm->odn);
			return -EHOSTUNREACH;
		}
		*ret_host = xstrdup("127.0.0.1");
		*ret_port = fwd;
		return 0;
	}
	int r = wvm_ip(vm, ret_host, ret_error);
	if (r < 0)
		return r;
	*ret_port = port;
	return 0;
}
