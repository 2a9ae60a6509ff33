// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qemu/argv.h"

/* Index of the argument after `flag` whose value starts with prefix, or -1. */
static int find_value(const struct strvec *v, const char *flag, const char *prefix)
{
	for (size_t i = 0; i + 1 < v->nr; i++)
		if (strcmp(v->v[i], flag) == 0 && strncmp(v->v[i + 1], prefix, strlen(prefix)) == 0)
			return (int)i + 1;
	return -1;
}

static bool has(const struct strvec *v, const char *flag, const char *value)
{
	int i = find_value(v, flag, value);
	return i >= 0 && strcmp(v->v[i], value) == 0;
}

static void base_spec(struct qemu_spec *s)
{
	qemu_spec_init(s);
	s->binary = "/usr/bin/qemu-system-x86_64";
	s->cpus = 2;
	s->memory_mib = 1024;
	s->firmware_code = "/usr/share/OVMF/OVMF_CODE_4M.fd";
	s->firmware_vars = "/vms/a,b/nvram.bin";
	s->root = (struct qemu_drive){.path = "/vms/a,b/disk.img",
				      .format = "raw",
				      .opts = {.cache = QEMU_CACHE_CACHED, .sync = QEMU_SYNC_FULL}};
	s->qmp_fd = 5;
	s->serial_fd = 6;
}

static void test_uefi_tcg(void **state)
{
	(void)state;
	struct qemu_spec s;
	base_spec(&s);
	struct strvec v = STRVEC_INIT;
	assert_int_equal(qemu_argv_build(&s, &v), 0);
	assert_string_equal(v.v[0], "/usr/bin/qemu-system-x86_64");
	assert_true(has(&v, "-machine", "q35"));
	assert_true(has(&v, "-accel", "tcg"));
	assert_true(has(&v, "-cpu", "max"));
	assert_true(has(&v, "-smp", "2"));
	assert_true(has(&v, "-m", "1024"));
	assert_int_equal(strcmp(v.v[1], "-nodefaults"), 0);
	/* Commas in paths are doubled, as QEMU's option syntax requires. */
	assert_true(has(&v, "-drive", "if=pflash,format=raw,unit=1,file=/vms/a,,b/nvram.bin"));
	assert_true(has(&v, "-drive",
			"if=pflash,format=raw,unit=0,readonly=on,"
			"file=/usr/share/OVMF/OVMF_CODE_4M.fd"));
	assert_true(has(&v, "-drive",
			"file=/vms/a,,b/disk.img,if=none,id=root,format=raw,"
			"cache.direct=off,cache.no-flush=off,discard=unmap"));
	assert_true(has(&v, "-device", "virtio-blk-pci,drive=root,bootindex=1"));
	assert_true(has(&v, "-chardev", "socket,id=qmp,fd=5"));
	assert_true(has(&v, "-mon", "chardev=qmp,mode=control"));
	assert_true(has(&v, "-chardev", "socket,id=ser0,fd=6"));
	assert_true(has(&v, "-serial", "chardev:ser0"));
	assert_true(has(&v, "-device", "virtio-rng-pci,rng=rng0"));
	assert_true(has(&v, "-display", "none"));
	assert_int_equal(find_value(&v, "-kernel", ""), -1);
	assert_int_equal(find_value(&v, "-incoming", ""), -1);
	assert_int_equal(find_value(&v, "-vnc", ""), -1);
	strvec_clear(&v);
}

/* The screen: none, a GTK window, VNC or both; the card and input devices come with either. */
static void test_display(void **state)
{
	(void)state;
	struct qemu_spec s;
	base_spec(&s);
	s.name = "my vm,1=a";
	struct strvec v = STRVEC_INIT;
	assert_int_equal(qemu_argv_build(&s, &v), 0);
	assert_true(has(&v, "-display", "none"));
	assert_int_equal(find_value(&v, "-name", ""), -1);
	assert_int_equal(find_value(&v, "-device", "VGA"), -1);
	assert_int_equal(find_value(&v, "-device", "usb-tablet"), -1);
	strvec_clear(&v);

	/* The window alone: titled by -name (commas doubled, guest= so '=' is no option). */
	s.window = true;
	s.display_width = 1920;
	s.display_height = 1200;
	assert_int_equal(qemu_argv_build(&s, &v), 0);
	assert_true(has(&v, "-name", "guest=my vm,,1=a"));
	assert_true(has(&v, "-display", "gtk,zoom-to-fit=off"));
	assert_int_equal(find_value(&v, "-vnc", ""), -1);
	/* 1920x1200x4 bytes fit QEMU's default 16 MiB of video memory; 4K below needs 32 */
	assert_true(has(&v, "-device", "VGA,xres=1920,yres=1200,edid=on,vgamem_mb=16"));
	assert_true(has(&v, "-device", "qemu-xhci,id=usb"));
	assert_true(has(&v, "-device", "usb-tablet"));
	/* x86: q35's PS/2 keyboard; a USB one would take the keys from it */
	assert_int_equal(find_value(&v, "-device", "usb-kbd"), -1);
	strvec_clear(&v);

	/* Both: one card serves the window and VNC. */
	s.vnc_display = 7;
	s.display_width = 3840;
	s.display_height = 2160;
	assert_int_equal(qemu_argv_build(&s, &v), 0);
	assert_true(has(&v, "-display", "gtk,zoom-to-fit=off"));
	assert_true(has(&v, "-vnc", "127.0.0.1:7,to=107,password=on"));
	assert_true(has(&v, "-device", "VGA,xres=3840,yres=2160,edid=on,vgamem_mb=32"));
	int cards = 0;
	for (size_t i = 0; i < v.nr; i++)
		cards += strncmp(v.v[i], "VGA,", 4) == 0;
	assert_int_equal(cards, 1);
	strvec_clear(&v);

	/* VNC alone keeps the headless display; arm64 has virtio-gpu instead of VGA. */
	s.window = false;
	s.arch = "arm64";
	s.display_width = 0;
	s.display_height = 0;
	assert_int_equal(qemu_argv_build(&s, &v), 0);
	assert_true(has(&v, "-display", "none"));
	assert_true(has(&v, "-name", "guest=my vm,,1=a"));
	assert_true(has(&v, "-device", "virtio-gpu-pci,xres=1024,yres=768"));
	assert_true(has(&v, "-device", "usb-kbd"));
	assert_int_equal(find_value(&v, "-device", "VGA"), -1);
	strvec_clear(&v);
}

static void test_direct_kvm_and_devices(void **state)
{
	(void)state;
	struct qemu_spec s;
	base_spec(&s);
	s.accel = "kvm";
	s.kernel = "/vm/kernel";
	s.initrd = "/vm/initramfs";
	s.cmdline = "console=ttyS0 quiet";
	struct qemu_drive disks[] = {
	    {.path = "/x.qcow2",
	     .format = "qcow2",
	     .opts = {.readonly = true, .cache = QEMU_CACHE_UNCACHED, .sync = QEMU_SYNC_NONE}},
	    {.path = "/inst.iso", .format = "raw", .cdrom = true},
	};
	s.disks = disks;
	s.n_disks = 2;
	struct qemu_share sh = {.tag = "com.apple.virtio-fs.automount",
				.socket_path = "tart-vfs-1"};
	s.shares = &sh;
	s.n_shares = 1;
	s.vnc_display = 123;
	s.incoming = true;
	s.qga_fd = 11;
	struct strvec net = STRVEC_INIT;
	strvec_pushl(&net, "-netdev", "user,id=n0", NULL);
	s.net_args = &net;
	struct strvec v = STRVEC_INIT;
	assert_int_equal(qemu_argv_build(&s, &v), 0);
	assert_true(has(&v, "-accel", "kvm"));
	assert_true(has(&v, "-cpu", "host,-vmx,-svm"));
	assert_true(has(&v, "-kernel", "/vm/kernel"));
	assert_true(has(&v, "-initrd", "/vm/initramfs"));
	assert_true(has(&v, "-append", "console=ttyS0 quiet"));
	assert_int_equal(find_value(&v, "-drive", "if=pflash"), -1);
	assert_true(has(&v, "-drive",
			"file=/x.qcow2,if=none,id=disk0,format=qcow2,"
			"cache.direct=on,cache.no-flush=on,readonly=on"));
	assert_true(has(&v, "-device", "virtio-scsi-pci,id=scsi0"));
	assert_true(has(&v, "-drive",
			"file=/inst.iso,if=none,id=disk1,format=raw,media=cdrom,"
			"readonly=on"));
	assert_true(has(&v, "-device", "scsi-cd,bus=scsi0.0,drive=disk1"));
	assert_true(has(&v, "-object", "memory-backend-memfd,id=mem,size=1024M,share=on"));
	assert_true(has(&v, "-numa", "node,memdev=mem"));
	assert_true(has(&v, "-chardev", "socket,id=vfs0,path=tart-vfs-1,abstract=on"));
	assert_true(
	    has(&v, "-device", "vhost-user-fs-pci,chardev=vfs0,tag=com.apple.virtio-fs.automount"));
	assert_true(has(&v, "-vnc", "127.0.0.1:123,to=223,password=on"));
	assert_true(has(&v, "-device", "VGA,xres=1024,yres=768,edid=on,vgamem_mb=16"));
	assert_true(has(&v, "-netdev", "user,id=n0"));
	assert_true(has(&v, "-incoming", "defer"));
	assert_true(find_value(&v, "-S", "") >= 0 || strcmp(v.v[v.nr - 3], "-S") == 0);
	assert_true(has(&v, "-device", "virtio-serial-pci,id=vser0"));
	assert_true(has(&v, "-chardev", "socket,id=qga0-chr,fd=11"));
	assert_true(has(&v, "-device",
			"virtserialport,bus=vser0.0,chardev=qga0-chr,id=qga0,"
			"name=org.qemu.guest_agent.0"));
	assert_true(has(&v, "-device", "vmgenid,guid=auto"));
	strvec_clear(&v);

	s.nested = true;
	assert_int_equal(qemu_argv_build(&s, &v), 0);
	assert_true(has(&v, "-cpu", "host"));
	strvec_clear(&v);
	strvec_clear(&net);
}

/* What a saved state depends on: the same for two clones, different for other devices. */
static void test_canonical(void **state)
{
	(void)state;
	struct qemu_spec a, b;
	base_spec(&a);
	base_spec(&b);
	a.incoming = true;
	a.qga_fd = 7;
	b.qga_fd = 9;
	b.qmp_fd = 12;
	b.serial = QEMU_SERIAL_PTY;
	b.firmware_vars = "/other/vm/nvram.bin";
	b.root.path = "/other/vm/disk.img";
	b.root.opts.sync = QEMU_SYNC_NONE;
	b.vnc_display = -1;
	struct strvec na = STRVEC_INIT, nb = STRVEC_INIT;
	strvec_pushl(&na, "-netdev", "tap,id=net0,fd=30", "-device",
		     "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01", NULL);
	strvec_pushl(&nb, "-netdev", "tap,id=net0,fd=31,vhost=off", "-device",
		     "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:02", NULL);
	a.net_args = &na;
	b.net_args = &nb;
	struct strvec va = STRVEC_INIT, vb = STRVEC_INIT;
	assert_int_equal(qemu_argv_build(&a, &va), 0);
	assert_int_equal(qemu_argv_build(&b, &vb), 0);
	struct strbuf ca = STRBUF_INIT, cb = STRBUF_INIT;
	qemu_argv_canonical(&va, &ca);
	qemu_argv_canonical(&vb, &cb);
	assert_string_equal(ca.buf, cb.buf);
	assert_non_null(strstr(ca.buf, "-m 1024\n"));
	assert_non_null(strstr(ca.buf, "-netdev tap,id=net0\n"));
	assert_non_null(strstr(ca.buf, "-device virtio-net-pci,netdev=net0\n"));
	assert_non_null(strstr(ca.buf, "-drive if=pflash,format=raw,unit=1\n"));
	assert_null(strstr(ca.buf, "incoming"));
	assert_null(strstr(ca.buf, "/vms/"));

	/* other memory, other network backend: different */
	struct strvec vc = STRVEC_INIT;
	struct strbuf cc = STRBUF_INIT;
	b.memory_mib = 2048;
	assert_int_equal(qemu_argv_build(&b, &vc), 0);
	qemu_argv_canonical(&vc, &cc);
	assert_string_not_equal(ca.buf, cc.buf);
	strvec_clear(&vc);
	strbuf_reset(&cc);
	b.memory_mib = 1024;
	strvec_clear(&nb);
	strvec_pushl(&nb, "-netdev", "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22",
		     "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:02", NULL);
	assert_int_equal(qemu_argv_build(&b, &vc), 0);
	qemu_argv_canonical(&vc, &cc);
	assert_string_not_equal(ca.buf, cc.buf);
	strvec_clear(&vc);
	strbuf_release(&cc);

	/*
	 * The window, its title and VNC are not part of a state; the screen devices are: a
	 * window and a headless run with QEMU_SCREEN_ON are one device set, VNC with
	 * QEMU_SCREEN_OFF and a plain headless run another.
	 */
	struct qemu_spec w = a, h = a, hv = a;
	w.window = true;
	w.name = "clone-1";
	w.vnc_display = 5;
	h.screen = QEMU_SCREEN_ON;
	h.name = "clone-2";
	hv.vnc_display = 9;
	hv.screen = QEMU_SCREEN_OFF;
	struct strvec vw = STRVEC_INIT, vh = STRVEC_INIT, vhv = STRVEC_INIT;
	struct strbuf cw = STRBUF_INIT, ch = STRBUF_INIT, chv = STRBUF_INIT;
	assert_int_equal(qemu_argv_build(&w, &vw), 0);
	assert_int_equal(qemu_argv_build(&h, &vh), 0);
	assert_int_equal(qemu_argv_build(&hv, &vhv), 0);
	assert_true(has(&vh, "-display", "none"));
	assert_true(has(&vh, "-device", "usb-tablet"));
	assert_int_equal(find_value(&vhv, "-device", "VGA"), -1);
	assert_true(has(&vhv, "-vnc", "127.0.0.1:9,to=109,password=on"));
	qemu_argv_canonical(&vw, &cw);
	qemu_argv_canonical(&vh, &ch);
	qemu_argv_canonical(&vhv, &chv);
	assert_string_equal(cw.buf, ch.buf);
	assert_non_null(strstr(cw.buf, "-device VGA,"));
	assert_null(strstr(cw.buf, "-display"));
	assert_null(strstr(cw.buf, "clone-"));
	assert_string_equal(chv.buf, ca.buf);
	assert_true(qemu_spec_has_screen(&h) && qemu_spec_has_screen(&w));
	assert_false(qemu_spec_has_screen(&hv) || qemu_spec_has_screen(&a));
	/* a window needs the screen devices */
	w.screen = QEMU_SCREEN_OFF;
	assert_int_equal(qemu_argv_build(&w, &vc), -EINVAL);
	strvec_clear(&vw);
	strvec_clear(&vh);
	strvec_clear(&vhv);
	strbuf_release(&cw);
	strbuf_release(&ch);
	strbuf_release(&chv);

	/* an escaped comma stays inside its value */
	struct strvec ve = STRVEC_INIT;
	struct strbuf ce = STRBUF_INIT;
	strvec_pushl(&ve, "qemu", "-device", "foo,tag=a,,b,mac=1", NULL);
	qemu_argv_canonical(&ve, &ce);
	assert_string_equal(ce.buf, "-device foo,tag=a,b\n");
	strvec_clear(&ve);
	strbuf_release(&ce);
	strbuf_release(&ca);
	strbuf_release(&cb);
	strvec_clear(&va);
	strvec_clear(&vb);
	strvec_clear(&na);
	strvec_clear(&nb);
}

static void test_arm64_and_invalid(void **state)
{
	(void)state;
	struct qemu_spec s;
	base_spec(&s);
	s.binary = "/usr/bin/qemu-system-aarch64";
	s.arch = "arm64";
	struct strvec v = STRVEC_INIT;
	assert_int_equal(qemu_argv_build(&s, &v), 0);
	assert_true(has(&v, "-machine", "virt,gic-version=max"));
	strvec_clear(&v);
	s.nested = true; /* nested needs KVM */
	assert_int_equal(qemu_argv_build(&s, &v), -EINVAL);
	s.nested = false;
	s.firmware_code = NULL; /* neither firmware nor kernel */
	assert_int_equal(qemu_argv_build(&s, &v), -EINVAL);
	assert_string_equal(qemu_binary_name("arm64"), "qemu-system-aarch64");
	assert_string_equal(qemu_binary_package("amd64"), "qemu-system-x86");
}

static void test_agent_channels(void **state)
{
	(void)state;
	struct qemu_spec s;
	base_spec(&s);
	struct strvec v = STRVEC_INIT;
	/* No channel asked for: no virtio-serial controller, no vsock. */
	assert_int_equal(qemu_argv_build(&s, &v), 0);
	assert_int_equal(find_value(&v, "-device", "virtio-serial-pci"), -1);
	assert_int_equal(find_value(&v, "-device", "vhost-vsock-pci"), -1);
	strvec_clear(&v);

	s.agent_fd = 7;
	s.qga_fd = 8;
	assert_int_equal(qemu_argv_build(&s, &v), 0);
	assert_true(has(&v, "-device", "virtio-serial-pci,id=vser0"));
	/* The agent's chardev listens: tart connects, and reconnects to reset the session. */
	assert_true(has(&v, "-chardev", "socket,id=tartagent-chr,fd=7,server=on,wait=off"));
	assert_true(has(&v, "-device",
			"virtserialport,bus=vser0.0,chardev=tartagent-chr,id=tartagent,"
			"name=org.tart.agent.0"));
	assert_true(has(&v, "-chardev", "socket,id=qga0-chr,fd=8"));
	assert_true(has(&v, "-device",
			"virtserialport,bus=vser0.0,chardev=qga0-chr,id=qga0,"
			"name=org.qemu.guest_agent.0"));
	/* The controller comes before its ports. */
	assert_true(find_value(&v, "-device", "virtio-serial-pci") <
		    find_value(&v, "-device", "virtserialport"));
	assert_int_equal(find_value(&v, "-device", "vhost-vsock-pci"), -1);
	strvec_clear(&v);

	/* Only QEMU's agent: one port, still on a controller. */
	s.agent_fd = -1;
	assert_int_equal(qemu_argv_build(&s, &v), 0);
	assert_true(has(&v, "-device", "virtio-serial-pci,id=vser0"));
	assert_int_equal(find_value(&v, "-chardev", "socket,id=tartagent-chr"), -1);
	strvec_clear(&v);

	/* vsock: the fd whose CID tart already claimed, and that CID. */
	s.vsock_fd = 9;
	s.vsock_cid = 1234;
	assert_int_equal(qemu_argv_build(&s, &v), 0);
	assert_true(has(&v, "-device", "vhost-vsock-pci,id=vsock0,guest-cid=1234,vhostfd=9"));
	strvec_clear(&v);
	/* Reserved CIDs are refused. */
	for (uint32_t cid = 0; cid < 3; cid++) {
		s.vsock_cid = cid;
		assert_int_equal(qemu_argv_build(&s, &v), -EINVAL);
	}
	s.vsock_cid = UINT32_MAX;
	assert_int_equal(qemu_argv_build(&s, &v), -EINVAL);
}

static void test_disk_spec(void **state)
{
	(void)state;
	char *path = NULL, *err = NULL;
	struct qemu_disk_opts o;
	assert_int_equal(qemu_disk_spec_parse("/a/b.img", &path, &o, NULL), 0);
	assert_string_equal(path, "/a/b.img");
	assert_false(o.readonly);
	assert_int_equal(o.sync, QEMU_SYNC_FULL);
	assert_int_equal(o.cache, QEMU_CACHE_AUTOMATIC);
	free(path);
	assert_int_equal(
	    qemu_disk_spec_parse("/a:b.img:ro,sync=none,caching=uncached", &path, &o, NULL), 0);
	assert_string_equal(path, "/a:b.img");
	assert_true(o.readonly);
	assert_int_equal(o.sync, QEMU_SYNC_NONE);
	assert_int_equal(o.cache, QEMU_CACHE_UNCACHED);
	free(path);
	/* A last piece that is not an option list belongs to the path. */
	assert_int_equal(qemu_disk_spec_parse("/a:b.img", &path, &o, NULL), 0);
	assert_string_equal(path, "/a:b.img");
	free(path);
	assert_int_equal(qemu_disk_spec_parse("/a.img:sync=bogus", &path, &o, &err), -EINVAL);
	assert_string_equal(err, "unsupported disk (image) synchronization mode: \"bogus\"");
	free(err);
	o = (struct qemu_disk_opts){0};
	assert_int_equal(qemu_disk_opts_parse("caching=sometimes", &o, &err), -EINVAL);
	assert_string_equal(err, "unsupported disk image caching mode: \"sometimes\"");
	free(err);
	assert_int_equal(qemu_disk_opts_parse("sync=fsync", &o, NULL), 0);
	assert_int_equal(o.sync, QEMU_SYNC_FSYNC);
}

static void test_dir_spec(void **state)
{
	(void)state;
	struct qemu_dir_spec d;
	assert_int_equal(qemu_dir_spec_parse("/home/me/src", &d, NULL), 0);
	assert_null(d.name);
	assert_string_equal(d.path, "/home/me/src");
	assert_string_equal(d.tag, QEMU_DEFAULT_SHARE_TAG);
	assert_false(d.readonly);
	qemu_dir_spec_release(&d);
	assert_int_equal(qemu_dir_spec_parse("src:/home/me/src:tag=build,ro", &d, NULL), 0);
	assert_string_equal(d.name, "src");
	assert_string_equal(d.path, "/home/me/src");
	assert_string_equal(d.tag, "build");
	assert_true(d.readonly);
	qemu_dir_spec_release(&d);
	assert_int_equal(qemu_dir_spec_parse("/p:ro", &d, NULL), 0);
	assert_null(d.name);
	assert_true(d.readonly);
	qemu_dir_spec_release(&d);
	assert_int_equal(qemu_dir_spec_parse("https://example.com/a.tar.gz", &d, NULL), 0);
	assert_null(d.name);
	assert_string_equal(d.path, "https://example.com/a.tar.gz");
	qemu_dir_spec_release(&d);
	char *err = NULL;
	assert_int_equal(qemu_dir_spec_parse("/p:tag=", &d, &err), -EINVAL);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uefi_tcg),  cmocka_unit_test(test_direct_kvm_and_devices),
	    cmocka_unit_test(test_canonical), cmocka_unit_test(test_arm64_and_invalid),
	    cmocka_unit_test(test_disk_spec), cmocka_unit_test(test_dir_spec),
	    cmocka_unit_test(test_display),   cmocka_unit_test(test_agent_channels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
