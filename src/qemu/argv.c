// SPDX-License-Identifier: Apache-2.0
#include "qemu/argv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qemu/accel.h"
#include "util/alloc.h"
#include "util/strbuf.h"

void qemu_spec_init(struct qemu_spec *s)
{
	*s = (struct qemu_spec){
	    .arch = "amd64",
	    .accel = "tcg",
	    .cpus = 1,
	    .memory_mib = 512,
	    .qmp_fd = -1,
	    .serial = QEMU_SERIAL_FD,
	    .serial_fd = -1,
	    .vnc_display = -1,
	    .agent_fd = -1,
	    .qga_fd = -1,
	    .vsock_fd = -1,
	};
}

const char *qemu_binary_name(const char *arch)
{
	return streq(arch, "arm64") ? "qemu-system-aarch64" : "qemu-system-x86_64";
}

const char *qemu_binary_package(const char *arch)
{
	return streq(arch, "arm64") ? "qemu-system-arm" : "qemu-system-x86";
}

/* QEMU option values escape ',' by doubling it. */
static char *esc(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	for (; *s; s++) {
		strbuf_putc(&sb, *s);
		if (*s == ',')
			strbuf_putc(&sb, ',');
	}
	return strbuf_detach(&sb, NULL);
}

static void push_opt(struct strvec *v, const char *flag, const char *fmt_prefix, const char *path,
		     const char *suffix)
{
	_cleanup_free_ char *e = esc(path);
	strvec_push(v, flag);
	strvec_pushf(v, "%s%s%s", fmt_prefix, e, suffix ? suffix : "");
}

static void push_cache(struct strbuf *sb, const struct qemu_disk_opts *o)
{
	/*
	 * Tart's "cached"/"automatic" = host page cache; "uncached" = O_DIRECT. sync=none drops
	 * the guest's flushes; fsync and full both flush (Linux has no F_FULLFSYNC distinction).
	 */
	strbuf_putf(sb, ",cache.direct=%s,cache.no-flush=%s",
		    o->cache == QEMU_CACHE_UNCACHED ? "on" : "off",
		    o->sync == QEMU_SYNC_NONE ? "on" : "off");
	if (o->readonly)
		strbuf_puts(sb, ",readonly=on");
	else
		strbuf_puts(sb, ",discard=unmap");
}

static void push_drive(struct strvec *v, const struct qemu_drive *d, const char *id, bool bootindex)
{
	_cleanup_free_ char *e = esc(d->path);
	struct strbuf sb = STRBUF_INIT;
	strbuf_putf(&sb, "file=%s,if=none,id=%s,format=%s", e, id, d->format ? d->format : "raw");
	if (d->cdrom) {
		strbuf_puts(&sb, ",media=cdrom,readonly=on");
	} else {
		push_cache(&sb, &d->opts);
	}
	strvec_push(v, "-drive");
	strvec_push(v, sb.buf);
	strbuf_release(&sb);
	strvec_push(v, "-device");
	if (d->cdrom)
		strvec_pushf(v, "scsi-cd,bus=scsi0.0,drive=%s", id);
	else
		strvec_pushf(v, "virtio-blk-pci,drive=%s%s", id, bootindex ? ",bootindex=1" : "");
}

/* Video memory (MiB, a power of two, QEMU's default 16) for a 32-bit framebuffer of w x h. */
static unsigned vga_mem_mib(uint64_t w, uint64_t h)
{
	unsigned mib = 16;
	while ((uint64_t)mib << 20 < w * h * 4 && mib < 256)
		mib *= 2;
	return mib;
}

bool qemu_spec_has_screen(const struct qemu_spec *s)
{
	if (s->screen != QEMU_SCREEN_AUTO)
		return s->screen == QEMU_SCREEN_ON;
	return s->window || s->vnc_display >= 0;
}

static void push_display(struct strvec *v, const struct qemu_spec *s)
{
	if (!s->window && s->vnc_display < 0 && !qemu_spec_has_screen(s)) {
		strvec_pushl(v, "-display", "none", NULL);
		return;
	}
	if (s->name) {
		/* guest=: a name holding '=' would otherwise be read as an option */
		_cleanup_free_ char *e = esc(s->name);
		strvec_push(v, "-name");
		strvec_pushf(v, "guest=%s", e);
	}
	/*
	 * zoom-to-fit=off: the window takes the size of the guest's screen instead of scaling
	 * it into QEMU's initial 640x480 (the default for cards that can follow the window).
	 * Closing the window quits QEMU (QEMU 7.2 offers no way to intercept it).
	 */
	strvec_pushl(v, "-display", s->window ? "gtk,zoom-to-fit=off" : "none", NULL);
	if (s->vnc_display >= 0) {
		/* to=: if that display is taken, QEMU tries the next ones (query-vnc tells which)
		 */
		strvec_push(v, "-vnc");
		strvec_pushf(v, "127.0.0.1:%d,to=%d,password=on", s->vnc_display,
			     s->vnc_display + 100);
	}
	if (!qemu_spec_has_screen(s))
		return;
	unsigned long long w = s->display_width ? s->display_width : 1024;
	unsigned long long h = s->display_height ? s->display_height : 768;
	bool arm = streq(s->arch, "arm64");
	strvec_push(v, "-device");
	if (arm)
		strvec_pushf(v, "virtio-gpu-pci,xres=%llu,yres=%llu", w, h);
	else
		/*
		 * The standard VGA, not virtio-vga: OVMF takes its screen mode from this card's
		 * EDID (virtio-vga has none, so OVMF stays at 1280x800) and guests without a DRM
		 * driver keep the firmware's framebuffer; with one (bochs-drm) the EDID's
		 * preferred mode is the same size.
		 */
		strvec_pushf(v, "VGA,xres=%llu,yres=%llu,edid=on,vgamem_mb=%u", w, h,
			     vga_mem_mib(w, h));
	/* Absolute pointing: the pointer follows the host's, never grabbed. */
	strvec_pushl(v, "-device", "qemu-xhci,id=usb", "-device", "usb-tablet", NULL);
	/*
	 * The keyboard: q35 has a PS/2 one that every x86 guest drives. A USB keyboard would
	 * take all keys from it (QEMU routes them to the newest keyboard), and guests without
	 * USB drivers, like Debian's cloud kernel, would get none. virt has no PS/2.
	 */
	if (arm)
		strvec_pushl(v, "-device", "usb-kbd", NULL);
}

static void push_serial(struct strvec *v, const struct qemu_spec *s)
{
	strvec_push(v, "-chardev");
	switch (s->serial) {
	case QEMU_SERIAL_FD:
		strvec_pushf(v, "socket,id=ser0,fd=%d", s->serial_fd);
		break;
	case QEMU_SERIAL_PTY:
		strvec_push(v, "pty,id=ser0");
		break;
	case QEMU_SERIAL_TTY: {
		_cleanup_free_ char *e = esc(s->serial_path);
		strvec_pushf(v, "serial,id=ser0,path=%s", e);
		break;
	}
	case QEMU_SERIAL_FILE: {
		_cleanup_free_ char *e = esc(s->serial_path);
		strvec_pushf(v, "file,id=ser0,path=%s,append=on", e);
		break;
	}
	}
	strvec_pushl(v, "-serial", "chardev:ser0", NULL);
}

/*
 * One virtio-serial controller carries both agent ports; each port's chardev is a socket QEMU
 * received from us, so the host end never has a path. The port id names it in QMP's
 * VSERPORT_CHANGE events (the guest opened or closed it).
 */
static void push_agent_channels(struct strvec *v, const struct qemu_spec *s)
{
	if (s->agent_fd >= 0 || s->qga_fd >= 0)
		strvec_pushl(v, "-device", "virtio-serial-pci,id=vser0", NULL);
	const struct {
		int fd;
		const char *id, *name, *server;
	} ports[] = {
	    {s->agent_fd, QEMU_AGENT_PORT_ID, QEMU_AGENT_PORT_NAME, ",server=on,wait=off"},
	    {s->qga_fd, QEMU_QGA_PORT_ID, QEMU_QGA_PORT_NAME, ""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ports); i++) {
		if (ports[i].fd < 0)
			continue;
		strvec_push(v, "-chardev");
		strvec_pushf(v, "socket,id=%s-chr,fd=%d%s", ports[i].id, ports[i].fd,
			     ports[i].server);
		strvec_push(v, "-device");
		strvec_pushf(v, "virtserialport,bus=vser0.0,chardev=%s-chr,id=%s,name=%s",
			     ports[i].id, ports[i].id, ports[i].name);
	}
	if (s->vsock_fd >= 0) {
		strvec_push(v, "-device");
		strvec_pushf(v, "vhost-vsock-pci,id=vsock0,guest-cid=%u,vhostfd=%d",
			     (unsigned)s->vsock_cid, s->vsock_fd);
	}
}

int qemu_argv_build(const struct qemu_spec *s, struct strvec *ret)
{
	bool arm = streq(s->arch, "arm64");
	bool kvm = streq(s->accel, "kvm");
	if (!s->binary || !s->root.path || s->qmp_fd < 0 || s->cpus == 0 || s->memory_mib == 0)
		return -EINVAL;
	if (!s->kernel && (!s->firmware_code || !s->firmware_vars))
		return -EINVAL;
	if (s->nested && !kvm)
		return -EINVAL;
	if (s->window && !qemu_spec_has_screen(s))
		return -EINVAL;
	/* CIDs 0-2 are the hypervisor, local and host; 0xffffffff is VMADDR_CID_ANY. */
	if (s->vsock_fd >= 0 && (s->vsock_cid < 3 || s->vsock_cid == UINT32_MAX))
		return -EINVAL;
	if (s->serial == QEMU_SERIAL_FD ? s->serial_fd < 0
					: (s->serial != QEMU_SERIAL_PTY && !s->serial_path))
		return -EINVAL;

	struct strvec v = STRVEC_INIT;
	strvec_push(&v, s->binary);
	strvec_pushl(&v, "-nodefaults", "-no-user-config", NULL);
	strvec_push(&v, "-machine");
	strvec_push(&v, arm ? "virt,gic-version=max" : "q35");
	strvec_pushl(&v, "-accel", kvm ? "kvm" : "tcg", NULL);
	strvec_push(&v, "-cpu");
	if (!kvm)
		strvec_push(&v, "max");
	else if (s->nested || arm)
		strvec_push(&v, "host");
	else
		strvec_push(&v, QEMU_ACCEL_KVM_CPU);
	strvec_push(&v, "-smp");
	strvec_pushf(&v, "%llu", (unsigned long long)s->cpus);
	strvec_push(&v, "-m");
	strvec_pushf(&v, "%llu", (unsigned long long)s->memory_mib);
	if (s->n_shares > 0) {
		/* vhost-user needs guest RAM that virtiofsd can map: a shared memfd. */
		strvec_push(&v, "-object");
		strvec_pushf(&v, "memory-backend-memfd,id=mem,size=%lluM,share=on",
			     (unsigned long long)s->memory_mib);
		strvec_pushl(&v, "-numa", "node,memdev=mem", NULL);
	}

	if (s->kernel) {
		push_opt(&v, "-kernel", "", s->kernel, NULL);
		if (s->initrd)
			push_opt(&v, "-initrd", "", s->initrd, NULL);
		strvec_pushl(&v, "-append", s->cmdline ? s->cmdline : "", NULL);
	} else {
		push_opt(&v, "-drive",
			 "if=pflash,format=raw,unit=0,readonly=on,file=", s->firmware_code, NULL);
		push_opt(&v, "-drive", "if=pflash,format=raw,unit=1,file=", s->firmware_vars, NULL);
	}

	strvec_pushl(&v, "-chardev", NULL);
	strvec_pushf(&v, "socket,id=qmp,fd=%d", s->qmp_fd);
	strvec_pushl(&v, "-mon", "chardev=qmp,mode=control", NULL);
	push_serial(&v, s);

	push_display(&v, s);

	push_drive(&v, &s->root, "root", true);
	bool scsi = false;
	for (size_t i = 0; i < s->n_disks; i++) {
		if (s->disks[i].cdrom && !scsi) {
			strvec_pushl(&v, "-device", "virtio-scsi-pci,id=scsi0", NULL);
			scsi = true;
		}
		char id[32];
		snprintf(id, sizeof(id), "disk%zu", i);
		push_drive(&v, &s->disks[i], id, false);
	}
	for (size_t i = 0; i < s->n_shares; i++) {
		_cleanup_free_ char *p = esc(s->shares[i].socket_path);
		_cleanup_free_ char *t = esc(s->shares[i].tag);
		strvec_push(&v, "-chardev");
		strvec_pushf(&v, "socket,id=vfs%zu,path=%s,abstract=on", i, p);
		strvec_push(&v, "-device");
		strvec_pushf(&v, "vhost-user-fs-pci,chardev=vfs%zu,tag=%s", i, t);
	}

	push_agent_channels(&v, s);
	strvec_pushl(&v, "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device",
		     "virtio-rng-pci,rng=rng0", NULL);
	if (s->net_args)
		for (size_t i = 0; i < s->net_args->nr; i++)
			strvec_push(&v, s->net_args->v[i]);
	/*
	 * A new VM generation ID at every start: a guest resumed from a saved state (or a clone of
	 * it) learns that it was copied and reseeds its random generator. x86 only (ACPI device).
	 */
	if (!arm)
		strvec_pushl(&v, "-device", "vmgenid,guid=auto", NULL);
	if (s->incoming)
		strvec_pushl(&v, "-S", "-incoming", "defer", NULL);
	*ret = v;
	return 0;
}

static int opts_error(char **ret_err, char *msg)
{
	if (ret_err)
		*ret_err = msg;
	else
		free(msg);
	return -EINVAL;
}

static int parse_one_opt(const char *o, struct qemu_disk_opts *d, char **ret_err)
{
	if (streq(o, "ro")) {
		d->readonly = true;
	} else if (strneq(o, "sync=", 5)) {
		const char *m = o + 5;
		if (streq(m, "none"))
			d->sync = QEMU_SYNC_NONE;
		else if (streq(m, "fsync"))
			d->sync = QEMU_SYNC_FSYNC;
		else if (streq(m, "full") || !*m)
			d->sync = QEMU_SYNC_FULL;
		else
			return opts_error(
			    ret_err,
			    xasprintf("unsupported disk (image) synchronization mode: \"%s\"", m));
	} else if (strneq(o, "caching=", 8)) {
		const char *m = o + 8;
		if (streq(m, "automatic"))
			d->cache = QEMU_CACHE_AUTOMATIC;
		else if (streq(m, "cached"))
			d->cache = QEMU_CACHE_CACHED;
		else if (streq(m, "uncached"))
			d->cache = QEMU_CACHE_UNCACHED;
		else
			return opts_error(
			    ret_err, xasprintf("unsupported disk image caching mode: \"%s\"", m));
	} else {
		return opts_error(ret_err, xasprintf("unsupported disk option: \"%s\"", o));
	}
	return 0;
}

int qemu_disk_opts_parse(const char *s, struct qemu_disk_opts *ret, char **ret_err)
{
	struct qemu_disk_opts d = *ret;
	_cleanup_free_ char *copy = xstrdup(s);
	char *save = NULL;
	for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		int r = parse_one_opt(o, &d, ret_err);
		if (r < 0)
			return r;
	}
	*ret = d;
	return 0;
}

bool qemu_disk_opts_is_options(const char *s)
{
	if (!*s)
		return false;
	_cleanup_free_ char *copy = xstrdup(s);
	char *save = NULL;
	for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save))
		if (!streq(o, "ro") && !strneq(o, "sync=", 5) && !strneq(o, "caching=", 8))
			return false;
	return true;
}

int qemu_disk_spec_parse(const char *spec, char **ret_path, struct qemu_disk_opts *ret_opts,
			 char **ret_err)
{
	struct qemu_disk_opts o = {.cache = QEMU_CACHE_AUTOMATIC, .sync = QEMU_SYNC_FULL};
	_cleanup_free_ char *path = xstrdup(spec);
	char *colon = strrchr(path, ':');
	if (colon && qemu_disk_opts_is_options(colon + 1)) {
		int r = qemu_disk_opts_parse(colon + 1, &o, ret_err);
		if (r < 0)
			return r;
		*colon = '\0';
	}
	if (!*path)
		return opts_error(ret_err,
				  xasprintf("invalid --disk \"%s\": the path is empty", spec));
	/* Tilde expansion as Tart does for image paths. */
	if (path[0] == '~' && (path[1] == '/' || !path[1]) && getenv("HOME")) {
		char *x = xasprintf("%s%s", getenv("HOME"), path + 1);
		free(path);
		path = x;
	}
	*ret_path = TAKE_PTR(path);
	*ret_opts = o;
	return 0;
}

static bool dir_opts_piece(const char *s)
{
	if (!*s)
		return false;
	_cleanup_free_ char *copy = xstrdup(s);
	char *save = NULL;
	for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save))
		if (!streq(o, "ro") && !strneq(o, "tag=", 4))
			return false;
	return true;
}

void qemu_dir_spec_release(struct qemu_dir_spec *d)
{
	free(d->name);
	free(d->path);
	free(d->tag);
	*d = (struct qemu_dir_spec){0};
}

int qemu_dir_spec_parse(const char *spec, struct qemu_dir_spec *ret, char **ret_err)
{
	struct qemu_dir_spec d = {0};
	_cleanup_free_ char *s = xstrdup(spec);
	char *colon = strrchr(s, ':');
	if (colon && dir_opts_piece(colon + 1)) {
		char *save = NULL;
		for (char *o = strtok_r(colon + 1, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
			if (streq(o, "ro")) {
				d.readonly = true;
			} else {
				free(d.tag);
				d.tag = xstrdup(o + 4);
			}
		}
		*colon = '\0';
		if (d.tag && !*d.tag) {
			qemu_dir_spec_release(&d);
			return opts_error(ret_err,
					  xasprintf("invalid --dir \"%s\": empty tag", spec));
		}
	}
	/* "name:path", unless the value is a URL (its "://" is not a name separator). */
	char *sep = strchr(s, ':');
	if (sep && !strneq(sep, "://", 3)) {
		*sep = '\0';
		d.name = xstrdup(s);
		d.path = xstrdup(sep + 1);
	} else {
		d.path = xstrdup(s);
	}
	if (!*d.path || (d.name && !*d.name)) {
		qemu_dir_spec_release(&d);
		return opts_error(ret_err, xasprintf("invalid --dir syntax: \"%s\"", spec));
	}
	if (!d.tag)
		d.tag = xstrdup(QEMU_DEFAULT_SHARE_TAG);
	*ret = d;
	return 0;
}

/* Split a QEMU option value at single commas (",," is an escaped comma inside a value). */
static void split_opts(const char *s, struct strvec *ret)
{
	struct strbuf cur = STRBUF_INIT;
	for (; *s; s++) {
		if (*s == ',' && s[1] == ',') {
			strbuf_putc(&cur, ',');
			s++;
		} else if (*s == ',') {
			strvec_push(ret, cur.buf);
			strbuf_reset(&cur);
		} else {
			strbuf_putc(&cur, *s);
		}
	}
	strvec_push(ret, cur.buf);
	strbuf_release(&cur);
}

static bool key_in(const char *opt, const char *const *keys)
{
	for (; *keys; keys++) {
		size_t n = strlen(*keys);
		if (strneq(opt, *keys, n) && (opt[n] == '=' || opt[n] == '\0'))
			return true;
	}
	return false;
}

/*
 * Keep the options of a value that the guest or the migration stream sees. keep_only: only
 * these keys (plus the first, positional piece when keep_first); else drop: these keys.
 */
static void filter_opts(const char *value, bool keep_first, const char *const *keep_only,
			const char *const *drop, struct strbuf *out)
{
	struct strvec parts = STRVEC_INIT;
	split_opts(value, &parts);
	bool first = true;
	for (size_t i = 0; i < parts.nr; i++) {
		const char *p = parts.v[i];
		bool positional = i == 0 && !strchr(p, '=');
		bool keep = positional	? keep_first
			    : keep_only ? key_in(p, keep_only)
					: !(drop && key_in(p, drop));
		if (!keep)
			continue;
		strbuf_puts(out, first ? " " : ",");
		strbuf_puts(out, p);
		first = false;
	}
	strvec_clear(&parts);
}

void qemu_argv_canonical(const struct strvec *argv, struct strbuf *out)
{
	static const char *const no_value[] = {"-nodefaults", "-no-user-config", "-S",
					       "-nographic",  "-no-reboot",	 "-no-shutdown",
					       "-enable-kvm", "-snapshot",	 NULL};
	static const char *const id_only[] = {"id", NULL};
	static const char *const drive_drop[] = {
	    "file", "cache.direct", "cache.no-flush", "discard", "aio", "detect-zeroes", NULL};
	static const char *const device_drop[] = {"mac", "guid", NULL};
	static const char *const object_drop[] = {"filename", NULL};
	static const char *const fwcfg_keep[] = {"name", NULL};
	for (size_t i = 1; i < argv->nr; i++) {
		const char *f = argv->v[i];
		bool flag_only = false;
		for (size_t k = 0; no_value[k]; k++)
			flag_only = flag_only || streq(f, no_value[k]);
		const char *val = !flag_only && i + 1 < argv->nr ? argv->v[++i] : NULL;
		/*
		 * run-time only: how the state arrives, the window or none, its title, the VNC
		 * port and password, the cmdline (the screen devices stay: the state holds them)
		 */
		if (streq(f, "-S") || streq(f, "-incoming") || streq(f, "-display") ||
		    streq(f, "-name") || streq(f, "-vnc") || streq(f, "-append"))
			continue;
		strbuf_puts(out, f);
		if (!val || streq(f, "-kernel") || streq(f, "-initrd"))
			; /* a file: what matters is that there is one */
		else if (streq(f, "-chardev"))
			filter_opts(val, false, id_only, NULL, out);
		else if (streq(f, "-netdev"))
			filter_opts(val, true, id_only, NULL, out);
		else if (streq(f, "-drive"))
			filter_opts(val, true, NULL, drive_drop, out);
		else if (streq(f, "-device"))
			filter_opts(val, true, NULL, device_drop, out);
		else if (streq(f, "-object"))
			filter_opts(val, true, NULL, object_drop, out);
		else if (streq(f, "-fw_cfg"))
			filter_opts(val, false, fwcfg_keep, NULL, out);
		else
			strbuf_putf(out, " %s", val);
		strbuf_putc(out, '\n');
	}
}
