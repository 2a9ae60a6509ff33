// SPDX-License-Identifier: Apache-2.0
#include "vm/run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/host.h"
#include "qemu/accel.h"
#include "qemu/bootwatch.h"
#include "qemu/firmware.h"
#include "qemu/img.h"
#include "qemu/process.h"
#include "qemu/qmp.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/run.h"
#include "util/time.h"
#include "vm/config.h"
#include "vm/dir.h"
#include "vm/home.h"
#include "vm/resume.h"
#include "vm/run-state.h"
#include "vm/shares.h"
#include "vm/storage.h"

#define QMP_TIMEOUT_MS 10000
#define QUIT_WAIT_MS 3000

void vm_run_options_init(struct vm_run_options *o)
{
	*o = (struct vm_run_options){
	    .root_opts = {.cache = QEMU_CACHE_CACHED, .sync = QEMU_SYNC_FULL},
	};
	net_options_init(&o->net);
}

/* Everything one run owns; released by run_release() whatever happened. */
struct run {
	struct vm_dir dir;
	struct vm_config cfg;
	int lock_fd;
	int dir_use_fd; /* shared flock on the VM directory: "in use" for delete/prune */
	char *qemu_bin;
	struct qemu_firmware fw;
	const char *accel;
	struct qemu_drive *disks;
	size_t n_disks;
	char **disk_paths;
	struct vm_shares shares;
	struct net_attachment net;
	bool net_attached;
	int qmp_fds[2];
	int serial_fds[2];
	int serial_log_fd;
	uint64_t serial_log_size;
	int vnc_display;
	char vnc_password[9];
	bool want_window; /* this run's choice (vm_window_decide); a resumed state may differ */
	struct vm_window win;
	struct qemu_process qemu;
	bool qemu_started;
	struct qemu_qmp qmp;
	bool qmp_open;
	struct vm_run_state state;
	bool state_written;
	struct vm_resume resume;
	char *devices;		  /* the canonical QEMU argv: what a saved state depends on */
	uint64_t boot_watchdog_s; /* the boot watchdog (qemu/bootwatch.h); 0: off */
	usec_t boot_deadline;	  /* 0 when not watching (any more) */
	usec_t boot_next_check;
	struct agent_host *agent; /* control.sock and the guest agent channels */
};

static void close_pair(int fds[2])
{
	for (int i = 0; i < 2; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* Everything start_qemu() set up, so that a run can also start over (a refused state). */
static void release_qemu(struct run *r)
{
	agent_host_free(r->agent);
	r->agent = NULL;
	r->qmp.on_event = NULL;
	if (r->qmp_open)
		qemu_qmp_release(&r->qmp);
	r->qmp_open = false;
	if (r->qemu_started) {
		qemu_process_wait_or_kill(&r->qemu, 0);
		qemu_process_release(&r->qemu);
	}
	r->qemu_started = false;
	vm_shares_stop(&r->shares);
	for (size_t i = 0; i < r->n_disks; i++)
		free(r->disk_paths[i]);
	free(r->disk_paths);
	free(r->disks);
	r->disk_paths = NULL;
	r->disks = NULL;
	r->n_disks = 0;
	if (r->net_attached)
		net_detach(&r->net);
	r->net_attached = false;
	close_pair(r->qmp_fds);
	close_pair(r->serial_fds);
	if (r->serial_log_fd >= 0)
		close(r->serial_log_fd);
	r->serial_log_fd = -1;
	free(r->devices);
	r->devices = NULL;
}

static void run_release(struct run *r)
{
	release_qemu(r);
	vm_resume_release(&r->resume);
	if (r->state_written)
		vm_run_state_remove(&r->dir);
	qemu_firmware_release(&r->fw);
	free(r->qemu_bin);
	vm_config_release(&r->cfg);
	vm_dir_release(&r->dir);
	/* Last: the lock says "running" until everything above is gone. */
	if (r->dir_use_fd >= 0)
		close(r->dir_use_fd);
	if (r->lock_fd >= 0)
		close(r->lock_fd);
}

/* Tart regenerates the MAC when another running VM already uses it (under the global lock). */
static int check_mac_collision(struct run *r)
{
	_cleanup_vm_entry_list_ struct vm_entry_list l = {0};
	int k = vm_storage_list_local(&l);
	if (k < 0)
		return 0;
	for (size_t i = 0; i < l.nr; i++) {
		if (streq(l.v[i].name, r->dir.name))
			continue;
		struct vm_dir o;
		vm_dir_init(&o, l.v[i].path, l.v[i].name);
		struct vm_config oc = {0};
		_cleanup_free_ char *cp = vm_dir_file(&o, VM_CONFIG_FILE);
		bool clash = vm_dir_running_pid(&o) > 0 && vm_config_load(cp, &oc, NULL) == 0 &&
			     streq(oc.mac, r->cfg.mac);
		vm_config_release(&oc);
		vm_dir_release(&o);
		if (!clash)
			continue;
		fprintf(stderr, "There is already a running VM with the same MAC address!\n"
				"Resetting VM to assign a new MAC address...\n");
		vm_mac_random(r->cfg.mac);
		_cleanup_free_ char *p = vm_dir_file(&r->dir, VM_CONFIG_FILE);
		k = vm_config_save(&r->cfg, p);
		if (k < 0)
			return log_error_errno(k, "cannot save '%s'", p);
		/* A saved state survives only if its guest agent can take the new MAC (resume.h).
		 */
		break;
	}
	return 0;
}

/* Open the VM, check it is not running, fix MAC clashes, read the config, take the lock. */
static int open_and_lock(struct run *r, const char *name)
{
	int k = vm_dir_open_local(name, &r->dir);
	if (k < 0)
		return k;
	if (vm_dir_running_pid(&r->dir) > 0) {
		log_error("VM \"%s\" is already running!", name);
		return -EALREADY;
	}
	_cleanup_close_ int global = home_lock_global();
	if (global < 0)
		return global;
	k = vm_dir_load_config(&r->dir, &r->cfg);
	if (k < 0)
		return k;
	k = check_mac_collision(r);
	if (k < 0)
		return k;
	/* After the last read of config.json: closing any fd of it would drop the lock. */
	r->lock_fd = vm_dir_lock_run(&r->dir);
	if (r->lock_fd == -EALREADY) {
		log_error("VM \"%s\" is already running!", name);
		return -EALREADY;
	}
	if (r->lock_fd < 0)
		return log_error_errno(r->lock_fd, "cannot lock the config of VM \"%s\"", name);
	/*
	 * The "in use" protocol of delete and prune (vm/prune.h): a shared flock on the directory
	 * itself, so nobody deletes the VM under QEMU's feet.
	 */
	r->dir_use_fd = open(r->dir.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dir_use_fd < 0 || fs_flock(r->dir_use_fd, false, false) < 0)
		return log_error_errno(negerrno(), "cannot mark VM \"%s\" as in use", name);
	return 0;
}

static int check_platform(struct run *r)
{
	if (streq(r->cfg.os, "darwin")) {
		log_error("VM \"%s\" is a macOS VM: macOS guests need Apple hardware and "
			  "Virtualization.framework",
			  r->dir.name);
		return -ENOTSUP;
	}
	if (!streq(r->cfg.arch, vm_host_arch())) {
		log_error("VM \"%s\" has architecture %s, but this host is %s: only VMs of the "
			  "host's architecture can run",
			  r->dir.name, r->cfg.arch, vm_host_arch());
		return -ENOTSUP;
	}
	int k = find_program(qemu_binary_name(r->cfg.arch), &r->qemu_bin);
	if (k < 0) {
		log_error("cannot find '%s': install the Debian package '%s'",
			  qemu_binary_name(r->cfg.arch), qemu_binary_package(r->cfg.arch));
		return -ENOPKG;
	}
	return 0;
}

/* OVMF/AAVMF variable stores are firmware volumes: "_FVH" at offset 40, the template's size. */
static int check_nvram(struct run *r, const char *nvram)
{
	struct stat a, b;
	if (stat(nvram, &a) < 0 || stat(r->fw.vars, &b) < 0)
		return log_error_errno(negerrno(), "cannot stat '%s'", nvram);
	bool ok = vm_nvram_is_firmware_volume(nvram) && a.st_size == b.st_size;
	if (!ok) {
		log_error(
		    "the UEFI variable store 'nvram.bin' of VM \"%s\" is not usable (corrupt, "
		    "or not a %s variable store of %lld bytes): replace it with a copy of '%s'",
		    r->dir.name, streq(r->cfg.arch, "arm64") ? "AAVMF" : "OVMF",
		    (long long)b.st_size, r->fw.vars);
		return -EBADMSG;
	}
	return 0;
}

static int choose_accel(struct run *r, const struct vm_run_options *o)
{
	const char *want = o->accel ? o->accel : getenv("TART_ACCEL");
	if (!want || !*want)
		want = "auto";
	if (qemu_accel_validate(want) < 0) {
		log_error("unsupported accelerator \"%s\" (expected auto, kvm or tcg)", want);
		return -EINVAL;
	}
	if (streq(want, "tcg")) {
		r->accel = "tcg";
	} else {
		_cleanup_free_ char *why = NULL;
		usec_t t0 = now_monotonic_usec();
		int k = qemu_accel_probe_kvm(r->qemu_bin, r->cfg.arch, &why);
		log_debug("KVM probe: %s after %llu ms", k < 0 ? why : "works",
			  (unsigned long long)((now_monotonic_usec() - t0) / 1000));
		if (k < 0 && streq(want, "kvm")) {
			log_error("KVM does not work on this host: %s", why);
			return -ENODEV;
		}
		if (k < 0)
			log_notice("KVM is not usable: %s; using TCG software emulation", why);
		r->accel = k < 0 ? "tcg" : "kvm";
	}
	if (o->nested && !streq(r->accel, "kvm")) {
		log_error("--nested needs KVM, but this VM would run with TCG");
		return -ENOTSUP;
	}
	uint64_t watchdog;
	if (qemu_boot_watchdog_seconds(streq(r->accel, "kvm"), &watchdog) < 0) {
		log_error("TART_BOOT_WATCHDOG must be a number of seconds (0 turns it off)");
		return -EINVAL;
	}
	/* x86 guests only: arm64 ones start in 64-bit mode. Armed once QEMU runs. */
	if (!streq(r->cfg.arch, "arm64"))
		r->boot_watchdog_s = watchdog;
	return 0;
}

static int setup_disks(struct run *r, const struct vm_run_options *o)
{
	r->disks = xcalloc(o->n_disks + 1, sizeof(*r->disks));
	r->disk_paths = xcalloc(o->n_disks + 1, sizeof(char *));
	for (size_t i = 0; i < o->n_disks; i++) {
		struct qemu_drive *d = &r->disks[i];
		_cleanup_free_ char *err = NULL;
		int k = qemu_disk_spec_parse(o->disks[i], &r->disk_paths[i], &d->opts, &err);
		if (k < 0) {
			log_error("%s", err);
			return k;
		}
		r->n_disks = i + 1;
		d->path = r->disk_paths[i];
		struct stat st;
		if (stat(d->path, &st) < 0) {
			log_error_errno(negerrno(), "cannot use disk '%s'", d->path);
			return -EINVAL; /* not -ENOENT: that would say the VM does not exist */
		}
		enum qemu_img_format f = QEMU_IMG_RAW;
		if (S_ISREG(st.st_mode)) {
			k = qemu_img_detect(d->path, &f);
			if (k < 0)
				return k;
		}
		d->format = f == QEMU_IMG_QCOW2 ? "qcow2" : "raw";
		d->cdrom = f == QEMU_IMG_ISO;
	}
	return 0;
}

static int setup_serial(struct run *r, const struct vm_run_options *o, struct qemu_spec *s)
{
	if (o->serial_pty) {
		s->serial = QEMU_SERIAL_PTY;
		return 0;
	}
	if (o->serial_path) {
		struct stat st;
		if (stat(o->serial_path, &st) < 0) {
			log_error("Failed to open PTY '%s': %s", o->serial_path, strerror(errno));
			return -EINVAL;
		}
		s->serial = S_ISCHR(st.st_mode) ? QEMU_SERIAL_TTY : QEMU_SERIAL_FILE;
		s->serial_path = o->serial_path;
		return 0;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->serial_fds) < 0)
		return log_error_errno(negerrno(), "cannot create the serial console socket");
	(void)fcntl(r->serial_fds[0], F_SETFL, O_NONBLOCK);
	/* Keep the previous boot's log as serial.log.1: the first thing to read after a failure. */
	_cleanup_free_ char *log = vm_dir_file(&r->dir, VM_SERIAL_LOG_FILE);
	_cleanup_free_ char *old = xasprintf("%s.1", log);
	(void)rename(log, old);
	r->serial_log_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (r->serial_log_fd < 0)
		return log_error_errno(negerrno(), "cannot create '%s'", log);
	s->serial = QEMU_SERIAL_FD;
	s->serial_fd = r->serial_fds[1];
	return 0;
}

/* Copy guest console output into serial.log, rotating to serial.log.1 past the cap. */
static void pump_serial(struct run *r)
{
	char buf[8192];
	for (;;) {
		ssize_t k = read(r->serial_fds[0], buf, sizeof(buf));
		if (k <= 0) {
			if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
				close(r->serial_fds[0]);
				r->serial_fds[0] = -1;
			}
			return;
		}
		if (r->serial_log_size + (uint64_t)k > VM_SERIAL_LOG_MAX) {
			_cleanup_free_ char *log = vm_dir_file(&r->dir, VM_SERIAL_LOG_FILE);
			_cleanup_free_ char *old = xasprintf("%s.1", log);
			(void)rename(log, old);
			close(r->serial_log_fd);
			r->serial_log_fd =
			    open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			r->serial_log_size = 0;
		}
		if (r->serial_log_fd >= 0 && write(r->serial_log_fd, buf, (size_t)k) == k)
			r->serial_log_size += (uint64_t)k;
	}
}

static void random_password(char ret[9])
{
	static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789";
	unsigned char b[8];
	(void)fs_random_bytes(b, sizeof(b));
	for (size_t i = 0; i < 8; i++)
		ret[i] = alphabet[b[i] % (sizeof(alphabet) - 1)];
	ret[8] = '\0';
}

static int start_qemu(struct run *r, const struct vm_run_options *o)
{
	struct qemu_spec s;
	qemu_spec_init(&s);
	s.binary = r->qemu_bin;
	s.arch = r->cfg.arch;
	s.accel = r->accel;
	s.nested = o->nested;
	s.cpus = r->cfg.cpu_count ? r->cfg.cpu_count : 1;
	s.memory_mib = r->cfg.memory_size / (1024 * 1024);
	r->win.open = r->want_window;
	s.window = r->win.open;
	s.name = r->dir.name;
	s.display_width = r->cfg.display_width;
	s.display_height = r->cfg.display_height;

	_cleanup_free_ char *kernel = vm_dir_file(&r->dir, VM_KERNEL_FILE);
	_cleanup_free_ char *initrd = vm_dir_file(&r->dir, VM_INITRAMFS_FILE);
	_cleanup_free_ char *nvram = vm_dir_file(&r->dir, VM_NVRAM_FILE);
	_cleanup_free_ char *disk = vm_dir_file(&r->dir, VM_DISK_FILE);
	int k;
	if (fs_exists(kernel)) {
		s.kernel = kernel;
		s.initrd = fs_exists(initrd) ? initrd : NULL;
		s.cmdline = r->cfg.cmdline		  ? r->cfg.cmdline
			    : streq(r->cfg.arch, "arm64") ? "console=ttyAMA0"
							  : "console=ttyS0";
	} else {
		k = qemu_firmware_find(r->cfg.arch, &r->fw);
		if (k < 0) {
			log_error(
			    "cannot find the UEFI firmware for %s: install the Debian package "
			    "'%s'",
			    r->cfg.arch, qemu_firmware_package(r->cfg.arch));
			return k;
		}
		k = check_nvram(r, nvram);
		if (k < 0)
			return k;
		s.firmware_code = r->fw.code;
		s.firmware_vars = nvram;
	}
	s.root = (struct qemu_drive){.path = disk, .format = "raw", .opts = o->root_opts};
	/* Tart parses "ro" for the root disk but does not apply it. */
	s.root.opts.readonly = false;
	k = setup_disks(r, o);
	if (k < 0)
		return k;
	s.disks = r->disks;
	s.n_disks = r->n_disks;
	k = vm_shares_start(o->dirs, o->n_dirs, &r->shares);
	if (k < 0)
		return k;
	s.shares = r->shares.shares;
	s.n_shares = r->shares.n;
	k = setup_serial(r, o, &s);
	if (k < 0)
		return k;
	if (o->vnc) {
		unsigned char b[2];
		(void)fs_random_bytes(b, sizeof(b));
		r->vnc_display = 100 + (int)(((unsigned)b[0] << 8 | b[1]) % 50000);
		random_password(r->vnc_password);
		s.vnc_display = r->vnc_display;
	}

	struct net_options no = o->net;
	no.vm_name = r->dir.name;
	no.vm_dir = r->dir.path;
	no.mac = r->cfg.mac;
	net_cleanup_stale(&no);
	k = net_attach(&no, &r->net);
	if (k < 0)
		return k;
	r->net_attached = true;
	s.net_args = &r->net.qemu_args;
	s.incoming = vm_resume_mac(&r->resume, &r->dir, &r->cfg, r->net.mode == NET_MODE_USER);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->qmp_fds) < 0)
		return log_error_errno(negerrno(), "cannot create the QMP socket");
	s.qmp_fd = r->qmp_fds[1];
	k = agent_host_prepare(r->dir.path, &s, &r->agent);
	if (k < 0)
		return k;

	_cleanup_strvec_ struct strvec argv = STRVEC_INIT;
	k = vm_resume_argv(&r->resume, &r->dir, r->accel, &s, &argv, &r->devices);
	r->win.open = s.window; /* a state saved headless keeps the window shut */
	if (k < 0)
		return log_error_errno(k, "inconsistent QEMU configuration");
	if (s.incoming)
		fprintf(stderr, "restoring VM state from a snapshot...\n");
	_cleanup_free_ char *line = strvec_join(&argv, " ");
	log_debug("starting %s", line);

	int keep[16];
	size_t n = 0;
	keep[n++] = r->qmp_fds[1];
	if (r->serial_fds[1] >= 0)
		keep[n++] = r->serial_fds[1];
	for (size_t i = 0; i < r->net.n_pass_fds && n < ARRAY_SIZE(keep); i++)
		keep[n++] = r->net.pass_fds[i];
	n += agent_host_qemu_fds(r->agent, keep + n, ARRAY_SIZE(keep) - n);
	/* Wall clock of the spawn, for bench/boot.sh (tart's own cost before QEMU runs). */
	log_debug("spawning QEMU at realtime %llu us", (unsigned long long)now_realtime_usec());
	k = qemu_process_spawn(&argv, keep, n, &r->qemu);
	if (k < 0)
		return log_error_errno(k, "cannot start '%s'", r->qemu_bin);
	r->qemu_started = true;
	close(r->qmp_fds[1]);
	r->qmp_fds[1] = -1;
	if (r->serial_fds[1] >= 0) {
		close(r->serial_fds[1]);
		r->serial_fds[1] = -1;
	}
	return 0;
}

/* QEMU ended or failed: report like Tart (exit 1) with the tail of its stderr. */
static int qemu_failed(struct run *r, const char *what)
{
	qemu_process_wait_or_kill(&r->qemu, QUIT_WAIT_MS);
	const char *tail = qemu_process_tail(&r->qemu);
	if (r->qemu.status > 128)
		log_error("%s: QEMU was terminated by signal %d%s%s", what, r->qemu.status - 128,
			  *tail ? "\n" : "", tail);
	else
		log_error("%s: QEMU exited with status %d%s%s", what, r->qemu.status,
			  *tail ? "\n" : "", tail);
	if (strstr(tail, "Failed to get \"write\" lock"))
		log_error("a disk image of VM \"%s\" is in use by another process", r->dir.name);
	vm_window_explain_failure(&r->win, tail);
	return 1;
}

static int connect_qmp(struct run *r)
{
	r->qmp.on_event = agent_host_qmp_event; /* the guest opening/closing the agent ports */
	r->qmp.userdata = r->agent;
	int k = qemu_qmp_open(&r->qmp, r->qmp_fds[0], QMP_TIMEOUT_MS);
	if (k < 0)
		return qemu_failed(r, "the VM failed to start");
	r->qmp_open = true;
	/* Saving state at full speed: the VM is paused anyway. */
	(void)qemu_qmp_call(&r->qmp, "migrate-set-parameters",
			    json_pack("{s:I}", "max-bandwidth", (json_int_t)(16LL << 30)),
			    QMP_TIMEOUT_MS, NULL, NULL);
	return 0;
}

/*
 * Start QEMU and, with a saved state, restore it. A state that turns out not to apply is
 * refused with a notice (resume.h) and QEMU is started again to boot the VM cold.
 */
static int start_and_restore(struct run *r, const struct vm_run_options *o)
{
	for (;;) {
		int k = start_qemu(r, o);
		if (k < 0)
			return k;
		k = connect_qmp(r);
		log_debug("QMP connected at realtime %llu us",
			  (unsigned long long)now_realtime_usec());
		if (k != 0 || !r->resume.active)
			return k;
		k = vm_resume_load(&r->resume, &r->dir, &r->qmp);
		if (k == 0)
			return 0;
		if (k != -ESTALE) {
			qemu_process_wait_or_kill(&r->qemu, QUIT_WAIT_MS);
			const char *tail = qemu_process_tail(&r->qemu);
			const char *last = strrchr(tail, '\n');
			_cleanup_free_ char *why =
			    xasprintf("QEMU could not load it (%s)",
				      *tail ? (last ? last + 1 : tail) : strerror(-k));
			vm_resume_discard(&r->dir, why);
		}
		vm_resume_release(&r->resume);
		release_qemu(r);
	}
}

/* The QEMU netdev of tap networking, whose DHCP lease a resumed guest must renew; or NULL. */
static char *tap_netdev(const struct run *r)
{
	if (r->net.mode == NET_MODE_USER)
		return NULL;
	const struct strvec *a = &r->net.qemu_args;
	for (size_t i = 0; i + 1 < a->nr; i++) {
		const char *id = streq(a->v[i], "-netdev") ? strstr(a->v[i + 1], ",id=") : NULL;
		if (id)
			return xstrndup(id + 4, strcspn(id + 4, ","));
	}
	return NULL;
}

static int announce(struct run *r, const struct vm_run_options *o)
{
	struct vm_run_state *s = &r->state;
	s->pid = getpid();
	s->qemu_pid = r->qemu.pid;
	snprintf(s->accel, sizeof(s->accel), "%s", r->accel);
	snprintf(s->net_mode, sizeof(s->net_mode), "%s", net_mode_to_string(r->net.mode));
	snprintf(s->net_info, sizeof(s->net_info), "%s", r->net.info);
	if (o->serial_pty) {
		_cleanup_json_ json_t *ret = NULL;
		if (qemu_qmp_call(&r->qmp, "query-chardev", NULL, QMP_TIMEOUT_MS, &ret, NULL) ==
		    0) {
			size_t i;
			json_t *c;
			json_array_foreach(ret, i, c)
			{
				const char *label = json_string_value(json_object_get(c, "label"));
				const char *fn = json_string_value(json_object_get(c, "filename"));
				if (label && fn && streq(label, "ser0") && strneq(fn, "pty:", 4))
					snprintf(s->serial, sizeof(s->serial), "%s", fn + 4);
			}
		}
		if (!*s->serial) {
			log_error("Failed to open PTY");
			return -EIO;
		}
		printf("Successfully open pty %s\n", s->serial);
	} else if (!o->serial_path) {
		_cleanup_free_ char *p = vm_dir_file(&r->dir, VM_SERIAL_LOG_FILE);
		snprintf(s->serial, sizeof(s->serial), "%s", p);
	}
	if (o->vnc) {
		_cleanup_free_ char *err = NULL;
		_cleanup_json_ json_t *ret = NULL;
		int k = qemu_qmp_call(&r->qmp, "change-vnc-password",
				      json_pack("{s:s}", "password", r->vnc_password),
				      QMP_TIMEOUT_MS, NULL, &err);
		if (k >= 0)
			k = qemu_qmp_call(&r->qmp, "query-vnc", NULL, QMP_TIMEOUT_MS, &ret, &err);
		const char *port = json_string_value(json_object_get(ret, "service"));
		if (k < 0 || !port) {
			log_error("cannot set up the VNC server: %s", err ? err : strerror(-k));
			return -EIO;
		}
		snprintf(s->vnc_url, sizeof(s->vnc_url), "vnc://:%s@127.0.0.1:%s", r->vnc_password,
			 port);
		printf("VNC server is running at %s\n", s->vnc_url);
	}
	fflush(stdout);
	int k = vm_run_state_write(&r->dir, s);
	if (k < 0)
		log_warning_errno(k, "cannot write the run state of VM \"%s\"", r->dir.name);
	else
		r->state_written = true;
	return 0;
}

/* SIGUSR1: pause, stream the whole VM state into state.vzvmsave, quit. */
static int suspend_vm(struct run *r)
{
	_cleanup_free_ char *st = vm_dir_file(&r->dir, VM_STATE_FILE);
	_cleanup_free_ char *tmp = xasprintf("%s.tmp", st);
	_cleanup_free_ char *err = NULL;
	_cleanup_close_ int fd = -1;
	/* Before the pause: with an agent, a resumed clone can take a new MAC (resume.h). */
	bool agent = agent_host_qga_ready(r->agent);
	fprintf(stderr, "pausing VM to take a snapshot...\n");
	int k = qemu_qmp_call(&r->qmp, "stop", NULL, QMP_TIMEOUT_MS, NULL, &err);
	if (k < 0)
		goto fail;
	fprintf(stderr, "creating a snapshot...\n");
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	/* QEMU writes from the current offset: the header comes in front once the stream is in. */
	if (fd < 0 || lseek(fd, VM_STATE_HEADER_SIZE, SEEK_SET) < 0) {
		k = negerrno();
		goto fail;
	}
	k = qemu_qmp_send_fd(&r->qmp, "tart-state", fd, QMP_TIMEOUT_MS, &err);
	if (k < 0)
		goto fail;
	k = qemu_qmp_call(&r->qmp, "migrate", json_pack("{s:s}", "uri", "fd:tart-state"),
			  QMP_TIMEOUT_MS, NULL, &err);
	if (k < 0)
		goto fail;
	for (;;) {
		_cleanup_json_ json_t *ret = NULL;
		k = qemu_qmp_call(&r->qmp, "query-migrate", NULL, QMP_TIMEOUT_MS, &ret, &err);
		if (k < 0)
			goto fail;
		const char *s = json_string_value(json_object_get(ret, "status"));
		if (s && streq(s, "completed"))
			break;
		if (s && (streq(s, "failed") || streq(s, "cancelled"))) {
			const char *d = json_string_value(json_object_get(ret, "error-desc"));
			err = xstrdup(d ? d : "migration failed");
			k = -EIO;
			goto fail;
		}
		sleep_usec(50000);
	}
	k = vm_resume_seal(fd, &r->dir, &r->cfg, r->devices, agent, &r->qmp, &err);
	if (k < 0)
		goto fail;
	if (rename(tmp, st) < 0) {
		k = negerrno();
		goto fail;
	}
	(void)fs_fsync_parent(st);
	fprintf(stderr, "snapshot created successfully! shutting down the VM...\n");
	(void)qemu_qmp_call(&r->qmp, "quit", NULL, QMP_TIMEOUT_MS, NULL, NULL);
	qemu_process_wait_or_kill(&r->qemu, QUIT_WAIT_MS);
	return 0;
fail:
	(void)unlink(tmp);
	log_error("Failed to suspend the VM: %s", err ? err : strerror(-k));
	r->state.suspend_failures++;
	snprintf(r->state.suspend_error, sizeof(r->state.suspend_error), "%s",
		 err ? err : strerror(-k));
	if (r->state_written)
		(void)vm_run_state_write(&r->dir, &r->state);
	/* Nothing was lost: let the guest carry on. */
	(void)qemu_qmp_call(&r->qmp, "cont", NULL, QMP_TIMEOUT_MS, NULL, NULL);
	return -1;
}

static void request_powerdown(struct run *r)
{
	if (r->qmp_open)
		(void)qemu_qmp_call(&r->qmp, "system_powerdown", NULL, QMP_TIMEOUT_MS, NULL, NULL);
}

static void hard_quit(struct run *r)
{
	if (r->qmp_open && qemu_qmp_call(&r->qmp, "quit", NULL, QUIT_WAIT_MS, NULL, NULL) == 0)
		qemu_process_wait_or_kill(&r->qemu, QUIT_WAIT_MS);
	else
		qemu_process_wait_or_kill(&r->qemu, 0);
}

#define BOOT_CHECK_USEC 250000ULL

/*
 * One tick of the boot watchdog: until vCPU 0 is seen in long mode, ask QEMU every
 * BOOT_CHECK_USEC; past the deadline the accelerator cannot run this guest, and the run ends
 * with exit 1 rather than a guest that spins forever. Returns 1 when it ended the run.
 */
static int watch_boot(struct run *r)
{
	usec_t now = now_monotonic_usec();
	if (!r->boot_deadline || !r->qmp_open || now < r->boot_next_check)
		return 0;
	r->boot_next_check = now + BOOT_CHECK_USEC;
	int k = qemu_boot_long_mode(&r->qmp, QMP_TIMEOUT_MS);
	/* In long mode, or a QEMU whose registers we cannot read: nothing to watch. */
	if (k == 1 || k == -EBADMSG || k == -EREMOTEIO) {
		r->boot_deadline = 0;
		return 0;
	}
	if (now < r->boot_deadline)
		return 0;
	if (streq(r->accel, "kvm"))
		log_error(
		    "the guest of VM \"%s\" did not reach 64-bit mode within %llu s under KVM: "
		    "this host's KVM cannot run it (run it with --accel tcg)",
		    r->dir.name, (unsigned long long)r->boot_watchdog_s);
	else
		log_error("the guest of VM \"%s\" did not reach 64-bit mode within %llu s: its "
			  "kernel or firmware is stuck (TART_BOOT_WATCHDOG sets this limit)",
			  r->dir.name, (unsigned long long)r->boot_watchdog_s);
	hard_quit(r);
	return 1;
}

static int supervise(struct run *r, int sigfd)
{
	usec_t deadline = 0; /* when a requested stop turns into a hard quit */
	bool stopping = false;
	for (;;) {
		struct pollfd p[5] = {
		    {.fd = sigfd, .events = POLLIN},
		    {.fd = r->qemu.pidfd, .events = POLLIN},
		    {.fd = r->qemu.stderr_fd, .events = POLLIN},
		    {.fd = r->qmp_open ? r->qmp.fd : -1, .events = POLLIN},
		    {.fd = r->serial_fds[0], .events = POLLIN},
		};
		int timeout = -1;
		if (deadline) {
			usec_t now = now_monotonic_usec();
			timeout = now >= deadline ? 0 : (int)((deadline - now) / 1000) + 1;
		} else if (r->qemu.pidfd < 0) {
			timeout = 200;
		}
		if (r->boot_deadline) {
			usec_t now = now_monotonic_usec();
			int t = now >= r->boot_next_check
				    ? 0
				    : (int)((r->boot_next_check - now) / 1000) + 1;
			timeout = timeout < 0 ? t : MIN(timeout, t);
		}
		int n = poll(p, ARRAY_SIZE(p), timeout);
		if (n < 0 && errno != EINTR)
			return log_error_errno(negerrno(), "poll failed");
		if (p[4].revents)
			pump_serial(r);
		if (p[2].revents && qemu_process_read_stderr(&r->qemu) == -EPIPE)
			r->qemu.stderr_fd = -1;
		if (p[3].revents && qemu_qmp_poll_events(&r->qmp) < 0) {
			qemu_qmp_release(&r->qmp);
			r->qmp_open = false;
		}
		if (qemu_process_reap(&r->qemu)) {
			if (r->serial_fds[0] >= 0)
				pump_serial(r);
			if (stopping || r->qemu.status == 0) {
				qemu_process_wait_or_kill(&r->qemu, 0);
				return 0;
			}
			return qemu_failed(r, "the VM stopped unexpectedly");
		}
		if (!stopping && watch_boot(r))
			return 1;
		if (deadline && now_monotonic_usec() >= deadline) {
			fprintf(stderr, "the guest did not power off in time: stopping the VM\n");
			hard_quit(r);
			return 0;
		}
		if (!p[0].revents)
			continue;
		struct signalfd_siginfo si;
		if (read(sigfd, &si, sizeof(si)) != sizeof(si))
			continue;
		switch (si.ssi_signo) {
		case SIGINT:
		case SIGTERM:
		case SIGHUP: {
			if (stopping) {
				hard_quit(r);
				return 0;
			}
			stopping = true;
			fprintf(stderr, "Stopping VM...\n");
			request_powerdown(r);
			/* `tart stop` sends its own timeout along (sigqueue); keep a margin for us.
			 */
			int grace = VM_RUN_DEFAULT_GRACE_MS;
			if (si.ssi_code == SI_QUEUE && si.ssi_int > 0)
				grace = si.ssi_int > 1500 ? si.ssi_int - 1000 : si.ssi_int / 2;
			deadline = now_monotonic_usec() + (usec_t)grace * 1000;
			break;
		}
		case SIGUSR1:
			if (suspend_vm(r) == 0)
				return 0;
			break;
		case SIGUSR2:
			fprintf(stderr, "Requesting guest OS to stop...\n");
			request_powerdown(r);
			break;
		default:
			break;
		}
	}
}

int vm_run(const char *name, const struct vm_run_options *o)
{
	struct run r = {.lock_fd = -1,
			.dir_use_fd = -1,
			.qmp_fds = {-1, -1},
			.serial_fds = {-1, -1},
			.serial_log_fd = -1,
			.vnc_display = -1,
			.shares = {.staging_fd = -1}};
	sigset_t mask, old;
	sigemptyset(&mask);
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaddset(&mask, sigs[i]);
	/* Blocked before any child exists, so no signal slips through to a default action. */
	sigprocmask(SIG_BLOCK, &mask, &old);
	int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	int k;
	if (sigfd < 0) {
		k = log_error_errno(negerrno(), "cannot create a signalfd");
		goto out;
	}
	k = open_and_lock(&r, name);
	if (k < 0)
		goto out;
	k = check_platform(&r);
	if (k < 0)
		goto out;
	k = vm_window_decide(o->graphics, o->vnc, r.qemu_bin, &r.want_window);
	if (k < 0)
		goto out;
	vm_window_watch(&r.win, &r.qmp);
	k = choose_accel(&r, o);
	if (k < 0)
		goto out;
	k = vm_resume_prepare(&r.resume, &r.dir, &r.cfg);
	if (k < 0)
		goto out;
	k = start_and_restore(&r, o);
	if (k != 0)
		goto out;
	/* Before anyone else talks to the guest agent: a resumed clone is made its own first. */
	if (r.resume.resumed) {
		_cleanup_free_ char *netdev = tap_netdev(&r);
		vm_resume_individualize(&r.resume, &r.dir, &r.cfg, &r.qmp,
					agent_host_qga_fd(r.agent), netdev);
	}
	k = agent_host_start(r.agent, r.resume.resumed);
	if (k < 0) {
		hard_quit(&r);
		goto out;
	}
	k = announce(&r, o);
	if (k < 0) {
		hard_quit(&r);
		goto out;
	}
	/* A resumed guest runs in 64-bit mode already: nothing to watch. */
	if (r.boot_watchdog_s && !r.resume.resumed)
		r.boot_deadline = now_monotonic_usec() + r.boot_watchdog_s * 1000000ULL;
	k = supervise(&r, sigfd);
out:
	run_release(&r);
	if (sigfd >= 0)
		close(sigfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return k;
}
