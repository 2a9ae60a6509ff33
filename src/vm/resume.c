// SPDX-License-Identifier: Apache-2.0
#include "vm/resume.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/qga.h"
#include "qemu/argv.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/time.h"

#define QMP_TIMEOUT_MS 10000
#define LOAD_TIMEOUT_MS 120000 /* after the last byte, QEMU has this long to finish loading */
#define AGENT_WAIT_MS 10000    /* the state says an agent answered at suspend */
#define LINK_DOWN_MS 1000      /* long enough for the guest to see the carrier go */

/*
 * The digest of the stream, computed from the moment the state is accepted, beside QEMU
 * starting and then reading the same file (which this also brings into the page cache).
 */
struct vm_resume_hasher {
	int fd;
	uint64_t len;
	atomic_bool cancel;
	char digest[OCI_DIGEST_STRLEN];
	int r;
	pthread_t tid;
};

static void *hash_stream(void *arg)
{
	struct vm_resume_hasher *h = arg;
	enum { PIECE = 4 << 20 };
	_cleanup_free_ char *buf = xmalloc(PIECE);
	struct oci_digest d;
	oci_digest_init(&d);
	uint64_t off = VM_STATE_HEADER_SIZE, end = off + h->len;
	h->r = 0;
	while (off < end && !atomic_load(&h->cancel)) {
		ssize_t n = pread(h->fd, buf, (size_t)MIN((uint64_t)PIECE, end - off), (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			h->r = n < 0 ? negerrno() : -EIO;
			break;
		}
		oci_digest_update(&d, buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (off < end && h->r == 0)
		h->r = -ECANCELED;
	oci_digest_final(&d, h->digest);
	return NULL;
}

static void hasher_start(struct vm_resume *rs, const char *path)
{
	struct vm_resume_hasher *h = xcalloc(1, sizeof(*h));
	h->len = rs->info.stream_size;
	h->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (h->fd < 0 || pthread_create(&h->tid, NULL, hash_stream, h) != 0) {
		if (h->fd >= 0)
			close(h->fd);
		free(h);
		return; /* no digest: vm_resume_load refuses the state */
	}
	rs->hasher = h;
}

/* Wait for the digest (or stop computing it); "" when there is none. */
static void hasher_finish(struct vm_resume *rs, bool cancel, char ret[OCI_DIGEST_STRLEN])
{
	struct vm_resume_hasher *h = rs->hasher;
	ret[0] = '\0';
	if (!h)
		return;
	atomic_store(&h->cancel, cancel);
	pthread_join(h->tid, NULL);
	close(h->fd);
	if (h->r == 0)
		memcpy(ret, h->digest, OCI_DIGEST_STRLEN);
	free(h);
	rs->hasher = NULL;
}

void vm_resume_release(struct vm_resume *rs)
{
	char ignored[OCI_DIGEST_STRLEN];
	hasher_finish(rs, true, ignored);
	vm_state_info_release(&rs->info);
	*rs = (struct vm_resume){0};
}

void vm_resume_discard(const struct vm_dir *d, const char *why)
{
	log_notice("the saved state of VM \"%s\" cannot be used: %s; booting it from its disk "
		   "instead",
		   d->name, why);
	_cleanup_free_ char *p = vm_dir_file(d, VM_STATE_FILE);
	if (unlink(p) < 0 && errno != ENOENT)
		log_warning_errno(negerrno(), "cannot delete '%s'", p);
	else
		(void)fs_fsync_parent(p);
}

static uint64_t cpus_of(const struct vm_config *c)
{
	return c->cpu_count ? c->cpu_count : 1;
}

int vm_resume_prepare(struct vm_resume *rs, const struct vm_dir *d, const struct vm_config *c)
{
	*rs = (struct vm_resume){0};
	_cleanup_free_ char *path = vm_dir_file(d, VM_STATE_FILE);
	if (!fs_exists(path))
		return 0;
	_cleanup_free_ char *why = NULL, *disk = vm_dir_file(d, VM_DISK_FILE);
	struct vm_state_info i;
	int r = vm_state_read(path, &i, &why);
	if (r == -EBADMSG) {
		vm_resume_discard(d, why);
		return 0;
	}
	if (r < 0)
		return log_error_errno(r, "cannot read '%s'", path);
	uint64_t dsize = 0;
	int64_t dmtime = 0;
	r = vm_state_disk_fingerprint(disk, &dsize, &dmtime);
	if (r < 0) {
		vm_state_info_release(&i);
		return log_error_errno(r, "cannot stat '%s'", disk);
	}
	if (!streq(i.arch, c->arch))
		why = xasprintf("it was saved on %s, the VM is %s", i.arch, c->arch);
	else if (i.memory_size / (1024 * 1024) != c->memory_size / (1024 * 1024))
		why = xasprintf("it holds %" PRIu64 " MiB of memory, the VM now has %" PRIu64
				" MiB ('tart set --memory %" PRIu64 "' would match it)",
				i.memory_size >> 20, c->memory_size >> 20, i.memory_size >> 20);
	else if (i.cpu_count != cpus_of(c))
		why = xasprintf("it has %" PRIu64 " CPUs, the VM now has %" PRIu64, i.cpu_count,
				cpus_of(c));
	else if (i.disk_size != dsize || i.disk_mtime_ns != dmtime)
		why = xstrdup("the disk has changed since the state was saved");
	if (why) {
		vm_state_info_release(&i);
		vm_resume_discard(d, why);
		return 0;
	}
	rs->info = i;
	rs->active = true;
	hasher_start(rs, path);
	return 0;
}

bool vm_resume_mac(struct vm_resume *rs, const struct vm_dir *d, const struct vm_config *c,
		   bool private_net)
{
	if (!rs->active)
		return false;
	rs->keep_mac = private_net;
	if (private_net || rs->info.agent || strcasecmp(rs->info.mac, c->mac) == 0)
		return true;
	_cleanup_free_ char *why = xasprintf("the VM's MAC address is now %s, and the saved guest "
					     "(MAC %s) has no guest agent to take it",
					     c->mac, rs->info.mac);
	vm_resume_discard(d, why);
	vm_resume_release(rs);
	return false;
}

/* The first line where two canonical device lists differ, for the notice. */
static char *first_difference(const char *a, const char *b)
{
	for (;;) {
		size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
		if (la != lb || strncmp(a, b, la) != 0) {
			if (!la)
				return xasprintf("this run adds `%.*s`", (int)lb, b);
			if (!lb)
				return xasprintf("this run lacks `%.*s`", (int)la, a);
			return xasprintf("the saved guest has `%.*s`, this run `%.*s`", (int)la, a,
					 (int)lb, b);
		}
		if (!a[la])
			return xstrdup("they differ");
		a += la + 1;
		b += lb + 1;
	}
}

/* The first processor's identity and features in /proc/cpuinfo, as one digest. */
static void host_cpu(struct strbuf *out)
{
	static const char *const keys[] = {"vendor_id",	      "cpu family", "model\t",	"flags",
					   "CPU implementer", "CPU part",   "Features", NULL};
	_cleanup_strbuf_ struct strbuf info = STRBUF_INIT, picked = STRBUF_INIT;
	if (fs_read_full("/proc/cpuinfo", 0, &info) < 0)
		return;
	char *end = strstr(info.buf, "\n\n");
	if (end)
		*end = '\0';
	for (char *save = NULL, *l = strtok_r(info.buf, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save))
		for (size_t k = 0; keys[k]; k++)
			if (strneq(l, keys[k], strlen(keys[k])))
				strbuf_putf(&picked, "%s\n", l);
	char dg[OCI_DIGEST_STRLEN];
	oci_digest_buf(picked.buf, picked.len, dg);
	strbuf_putf(out, "host CPU %s\n", dg);
}

char *vm_resume_describe(const struct strvec *argv, const char *accel)
{
	struct strbuf sb = STRBUF_INIT;
	qemu_argv_canonical(argv, &sb);
	if (streq(accel, "kvm"))
		host_cpu(&sb);
	return strbuf_detach(&sb, NULL);
}

bool vm_resume_devices_match(const struct vm_resume *rs, const char *devices)
{
	return rs->active && streq(devices, rs->info.devices);
}

bool vm_resume_devices(struct vm_resume *rs, const struct vm_dir *d, const char *devices)
{
	if (!rs->active)
		return false;
	if (streq(devices, rs->info.devices))
		return true;
	_cleanup_free_ char *diff = first_difference(rs->info.devices, devices);
	_cleanup_free_ char *why =
	    xasprintf("its machine or devices differ from this run's (%s)", diff);
	vm_resume_discard(d, why);
	vm_resume_release(rs);
	return false;
}

/*
 * The device sets tried for a state: this run's, then the same with the screen devices the
 * other way (the window and VNC are not part of a state; the card and tablet are).
 */
int vm_resume_argv(struct vm_resume *rs, const struct vm_dir *d, const char *accel,
		   struct qemu_spec *s, struct strvec *argv, char **ret_devices)
{
	int k = qemu_argv_build(s, argv);
	if (k < 0)
		return k;
	*ret_devices = vm_resume_describe(argv, accel);
	if (!s->incoming || vm_resume_devices_match(rs, *ret_devices))
		return 0;
	bool screen = qemu_spec_has_screen(s);
	struct qemu_spec alt = *s;
	alt.screen = screen ? QEMU_SCREEN_OFF : QEMU_SCREEN_ON;
	alt.window = false;
	_cleanup_strvec_ struct strvec alt_argv = STRVEC_INIT;
	_cleanup_free_ char *alt_devices = NULL;
	if (qemu_argv_build(&alt, &alt_argv) >= 0)
		alt_devices = vm_resume_describe(&alt_argv, accel);
	if (alt_devices && vm_resume_devices_match(rs, alt_devices)) {
		if (screen)
			log_notice(
			    "VM \"%s\" was suspended without a screen: it resumes headless%s "
			    "(a screen comes back when it boots cold)",
			    d->name,
			    s->window		  ? ", without its window"
			    : s->vnc_display >= 0 ? " and its VNC server shows nothing"
						  : "");
		else
			log_debug("VM \"%s\" was suspended with a screen: its devices are kept",
				  d->name);
		*s = alt;
		strvec_clear(argv);
		*argv = alt_argv;
		alt_argv = (struct strvec)STRVEC_INIT;
		free(*ret_devices);
		*ret_devices = TAKE_PTR(alt_devices);
		return 0;
	}
	(void)vm_resume_devices(rs, d, *ret_devices); /* they differ: refused */
	strvec_clear(argv);
	s->incoming = false;
	return qemu_argv_build(s, argv);
}

static int qemu_version(struct qemu_qmp *qmp, char *ver, size_t vsize, char *pkg, size_t psize)
{
	_cleanup_json_ json_t *ret = NULL;
	int r = qemu_qmp_call(qmp, "query-version", NULL, QMP_TIMEOUT_MS, &ret, NULL);
	if (r < 0)
		return r;
	json_t *q = json_object_get(ret, "qemu");
	snprintf(ver, vsize,
		 "%" JSON_INTEGER_FORMAT ".%" JSON_INTEGER_FORMAT ".%" JSON_INTEGER_FORMAT,
		 json_integer_value(json_object_get(q, "major")),
		 json_integer_value(json_object_get(q, "minor")),
		 json_integer_value(json_object_get(q, "micro")));
	const char *p = json_string_value(json_object_get(ret, "package"));
	while (p && *p == ' ')
		p++;
	snprintf(pkg, psize, "%s", p ? p : "");
	return 0;
}

/* Wait until QEMU has loaded the whole state (it stays paused: -S). */
static int wait_loaded(struct qemu_qmp *qmp)
{
	usec_t deadline = now_monotonic_usec() + (usec_t)LOAD_TIMEOUT_MS * 1000;
	for (;;) {
		_cleanup_json_ json_t *ret = NULL;
		int r = qemu_qmp_call(qmp, "query-status", NULL, QMP_TIMEOUT_MS, &ret, NULL);
		if (r < 0)
			return -EIO;
		const char *st = json_string_value(json_object_get(ret, "status"));
		if (st && !streq(st, "inmigrate"))
			return 0;
		if (now_monotonic_usec() > deadline) {
			log_error("QEMU did not finish loading the saved state in %d s",
				  LOAD_TIMEOUT_MS / 1000);
			return -ETIMEDOUT;
		}
		sleep_usec(2000);
	}
}

int vm_resume_load(struct vm_resume *rs, const struct vm_dir *d, struct qemu_qmp *qmp)
{
	usec_t t0 = now_monotonic_usec();
	char ver[64], pkg[96];
	int r = qemu_version(qmp, ver, sizeof(ver), pkg, sizeof(pkg));
	if (r < 0)
		return -EIO;
	if (!streq(ver, rs->info.qemu_version)) {
		_cleanup_free_ char *why = xasprintf("it was saved by QEMU %s, this is QEMU %s",
						     rs->info.qemu_version, ver);
		vm_resume_discard(d, why);
		return -ESTALE;
	}
	/* QEMU reads the state file itself, while the thread started by prepare hashes it. */
	_cleanup_free_ char *path = vm_dir_file(d, VM_STATE_FILE);
	_cleanup_close_ int qfd = open(path, O_RDONLY | O_CLOEXEC);
	if (qfd < 0 || lseek(qfd, VM_STATE_HEADER_SIZE, SEEK_SET) < 0)
		return log_error_errno(negerrno(), "cannot open '%s'", path);
	(void)posix_fadvise(qfd, 0, 0, POSIX_FADV_SEQUENTIAL);
	_cleanup_free_ char *err = NULL;
	r = qemu_qmp_send_fd(qmp, "tart-incoming", qfd, QMP_TIMEOUT_MS, &err);
	if (r >= 0)
		r = qemu_qmp_call(qmp, "migrate-incoming",
				  json_pack("{s:s}", "uri", "fd:tart-incoming"), QMP_TIMEOUT_MS,
				  NULL, &err);
	usec_t t1 = now_monotonic_usec();
	if (r < 0)
		log_debug("QEMU does not take the saved state: %s", err ? err : strerror(-r));
	else
		r = wait_loaded(qmp);
	usec_t t2 = now_monotonic_usec();
	char got[OCI_DIGEST_STRLEN];
	hasher_finish(rs, r < 0, got);
	if (r < 0)
		return r == -ETIMEDOUT ? r : -EIO;
	log_debug("state loaded in %llu ms, hashed %llu ms later",
		  (unsigned long long)(t2 - t1) / 1000,
		  (unsigned long long)(now_monotonic_usec() - t2) / 1000);
	if (!streq(got, rs->info.stream_digest)) {
		vm_resume_discard(d, "it is corrupt (its content does not match its digest)");
		return -ESTALE;
	}
	r = qemu_qmp_call(qmp, "cont", NULL, QMP_TIMEOUT_MS, NULL, &err);
	if (r < 0) {
		log_error("cannot resume the VM: %s", err ? err : strerror(-r));
		return -EIO;
	}
	rs->resumed = true;
	log_debug("resumed %llu ms after QMP was up, at realtime %llu us",
		  (unsigned long long)(now_monotonic_usec() - t0) / 1000,
		  (unsigned long long)now_realtime_usec());
	/* It is used up: the guest's disk moves on from here. */
	_cleanup_free_ char *p = vm_dir_file(d, VM_STATE_FILE);
	(void)unlink(p);
	fprintf(stderr, "resuming VM...\n");
	return 0;
}

/*
 * Runs in the guest as root (through the agent): mix host randomness into the kernel's pool and
 * force a reseed of its generator (RNDRESEEDCRNG, by perl, which every Debian has), then give
 * the NIC that has MAC $2 the MAC $3 and, with $4 = renew, take its link down and up so that
 * the DHCP client starts over.
 */
static const char individualize_script[] =
    "if command -v perl >/dev/null 2>&1; then\n"
    "  perl -e 'open(my $f, \"+<\", \"/dev/urandom\") or exit 1; syswrite($f, pack(\"H*\", "
    "$ARGV[0])); ioctl($f, 0x5207, 0) or exit 1' \"$1\" || echo 'no reseed of the RNG'\n"
    "else\n"
    "  printf '%s' \"$1\" > /dev/urandom; echo 'no perl: RNG mixed, not reseeded'\n"
    "fi\n"
    "for d in /sys/class/net/*; do\n"
    "  [ \"$(cat \"$d/address\" 2>/dev/null)\" = \"$2\" ] || continue\n"
    "  i=${d##*/}\n"
    "  [ \"$4\" = renew ] && ip link set dev \"$i\" down\n"
    "  if [ \"$2\" != \"$3\" ]; then ip link set dev \"$i\" address \"$3\" || exit 3; fi\n"
    "  [ \"$4\" = renew ] && ip link set dev \"$i\" up\n"
    "  exit 0\n"
    "done\n"
    "echo \"no network interface has MAC $2\"; exit 4\n";

static void hex(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* The guest's own view: lower-case MACs as /sys/class/net/.../address has them. */
static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'F')
			*s = (char)(*s - 'A' + 'a');
}

/*
 * Through QEMU's guest agent: the host's time, a reseeded random generator, config.json's MAC
 * (and a new lease). False when the agent did not do it (warned).
 */
static bool agent_individualize(const struct vm_resume *rs, const struct vm_dir *d,
				const struct vm_config *c, struct agent_qga *qga, bool renew_lease)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	json_int_t ns = (json_int_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	_cleanup_free_ char *err = NULL;
	_cleanup_json_ json_t *time_args = json_pack("{s:I}", "time", ns);
	/* The first call waits for the agent to answer the sync at all. */
	usec_t deadline = now_monotonic_usec() + (usec_t)AGENT_WAIT_MS * 1000;
	int r = agent_qga_call_wait(qga, "guest-set-time", time_args, deadline, NULL, &err);
	if (r == -ETIMEDOUT || r == -ENOTCONN) {
		log_warning("the guest agent of VM \"%s\" does not answer (%s): its clock and "
			    "random generator are as they were saved",
			    d->name, strerror(-r));
		return false;
	}
	/* Debian's agent sets the clock, then fails on a missing hwclock: the clock is set. */
	if (r < 0 && (!err || !strstr(err, "hwclock")))
		log_warning("cannot set the clock of the resumed guest: %s",
			    err ? err : strerror(-r));
	unsigned char seed[64];
	char seed_hex[2 * sizeof(seed) + 1];
	(void)fs_random_bytes(seed, sizeof(seed));
	hex(seed, sizeof(seed), seed_hex);
	char old_mac[18], new_mac[18];
	snprintf(old_mac, sizeof(old_mac), "%s", rs->info.mac);
	/* user networking: a private network each, where the saved MAC keeps its lease */
	snprintf(new_mac, sizeof(new_mac), "%s", rs->keep_mac ? rs->info.mac : c->mac);
	lower(old_mac);
	lower(new_mac);
	char opt[] = "-c", arg0[] = "tart", renew[] = "renew", keep[] = "keep";
	char *args[] = {opt,	 (char *)individualize_script, arg0, seed_hex, old_mac,
			new_mac, renew_lease ? renew : keep};
	struct agent_qga_exec_status st;
	_cleanup_free_ char *err2 = NULL;
	deadline = now_monotonic_usec() + (usec_t)QMP_TIMEOUT_MS * 1000;
	r = agent_qga_exec_wait(qga, "/bin/sh", args, ARRAY_SIZE(args), deadline, &st, &err2);
	if (r < 0) {
		log_warning("the guest agent could not individualize the resumed VM: %s",
			    err2 ? err2 : strerror(-r));
		return false;
	}
	bool ok = st.code == 0;
	if (!ok)
		log_warning("the guest agent could not individualize the resumed VM (exit %d): "
			    "%.*s%.*s",
			    st.code, (int)st.out_len, st.out ? st.out : "", (int)st.err_len,
			    st.err ? st.err : "");
	else if (st.out_len)
		log_debug("guest agent: %.*s", (int)st.out_len, st.out);
	agent_qga_exec_status_release(&st);
	return ok;
}

void vm_resume_individualize(struct vm_resume *rs, const struct vm_dir *d,
			     const struct vm_config *c, struct qemu_qmp *qmp, int qga_fd,
			     const char *renew_netdev)
{
	bool renew_lease = renew_netdev != NULL;
	if (!rs->resumed)
		return;
	bool done = false;
	if (rs->info.agent && qga_fd >= 0) {
		usec_t t0 = now_monotonic_usec();
		struct agent_qga qga;
		agent_qga_open_wait(&qga, qga_fd);
		done = agent_individualize(rs, d, c, &qga, renew_lease);
		agent_qga_release(&qga);
		log_debug("guest agent done in %llu ms",
			  (unsigned long long)((now_monotonic_usec() - t0) / 1000));
	}
	if (!done && !rs->keep_mac && strcasecmp(rs->info.mac, c->mac) != 0)
		log_warning("VM \"%s\" still uses the MAC address %s of its saved state", d->name,
			    rs->info.mac);
	if (!done && renew_lease) {
		/* No agent: a link that goes down and up makes any DHCP client start over. */
		_cleanup_free_ char *err = NULL;
		int r = qemu_qmp_call(qmp, "set_link",
				      json_pack("{s:s,s:b}", "name", renew_netdev, "up", 0),
				      QMP_TIMEOUT_MS, NULL, &err);
		if (r >= 0) {
			sleep_usec((usec_t)LINK_DOWN_MS * 1000);
			r = qemu_qmp_call(qmp, "set_link",
					  json_pack("{s:s,s:b}", "name", renew_netdev, "up", 1),
					  QMP_TIMEOUT_MS, NULL, &err);
		}
		if (r < 0)
			log_warning("cannot renew the network link of VM \"%s\": %s", d->name,
				    err ? err : strerror(-r));
	}
}

int vm_resume_seal(int fd, const struct vm_dir *d, const struct vm_config *c, const char *devices,
		   bool agent, struct qemu_qmp *qmp, char **ret_err)
{
	struct vm_state_info i = {0};
	struct stat st;
	int r = qemu_version(qmp, i.qemu_version, sizeof(i.qemu_version), i.qemu_package,
			     sizeof(i.qemu_package));
	if (r < 0) {
		*ret_err = xstrdup("cannot ask QEMU for its version");
		return r;
	}
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size <= VM_STATE_HEADER_SIZE) {
		*ret_err = xstrdup("QEMU wrote no state");
		return -EIO;
	}
	r = vm_state_stream_machine(fd, VM_STATE_HEADER_SIZE, i.machine, sizeof(i.machine));
	if (r < 0) {
		*ret_err = xstrdup("the state QEMU wrote does not start like a migration stream");
		return r;
	}
	snprintf(i.arch, sizeof(i.arch), "%s", c->arch);
	i.devices = (char *)devices;
	oci_digest_buf(devices, strlen(devices), i.devices_digest);
	i.memory_size = c->memory_size;
	i.cpu_count = cpus_of(c);
	snprintf(i.mac, sizeof(i.mac), "%s", c->mac);
	i.agent = agent;
	i.stream_size = (uint64_t)st.st_size - VM_STATE_HEADER_SIZE;
	r = oci_digest_fd_range(fd, VM_STATE_HEADER_SIZE, i.stream_size, i.stream_digest);
	_cleanup_free_ char *disk = vm_dir_file(d, VM_DISK_FILE);
	if (r >= 0)
		r = vm_state_disk_fingerprint(disk, &i.disk_size, &i.disk_mtime_ns);
	if (r >= 0) {
		time_t t = time(NULL);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(i.created, sizeof(i.created), "%Y-%m-%dT%H:%M:%SZ", &tm);
		r = vm_state_write_header(fd, &i);
	}
	if (r < 0)
		*ret_err = xasprintf("cannot write the state's header: %s", strerror(-r));
	return r;
}
