// SPDX-License-Identifier: Apache-2.0
#include "qemu/accel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qemu/process.h"
#include "util/alloc.h"
#include "util/macro.h"

int qemu_accel_validate(const char *requested)
{
	if (!requested || streq(requested, "auto") || streq(requested, "kvm") ||
	    streq(requested, "tcg"))
		return 0;
	return -EINVAL;
}

/* The cheap necessary conditions: the device, the API version, a VM can be created. */
static int kvm_ioctls(char **ret_why)
{
	_cleanup_close_ int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int r = negerrno();
		*ret_why = xasprintf("cannot open /dev/kvm: %s", strerror(-r));
		return r;
	}
	if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		*ret_why = xstrdup("/dev/kvm has an unexpected API version");
		return -ENODEV;
	}
	int vm = ioctl(fd, KVM_CREATE_VM, 0);
	if (vm < 0) {
		int r = negerrno();
		*ret_why = xasprintf("KVM_CREATE_VM failed: %s", strerror(-r));
		return r;
	}
	close(vm);
	return 0;
}

#define ROM_SIZE 0x10000
#define EXIT_VALUE 0x2a
/* isa-debug-exit makes QEMU exit with (value << 1) | 1. */
#define EXPECTED_STATUS ((EXIT_VALUE << 1) | 1)

/* Real-mode code at the reset vector: loop 2^20 times, then out 0xf4 <- 0x2a. */
static int make_rom(void)
{
	static const unsigned char code[] = {
	    0x66, 0xb9,	      0x00, 0x00, 0x10, 0x00, /* mov ecx, 0x100000 */
	    0x66, 0x49,				      /* dec ecx */
	    0x75, 0xfc,				      /* jnz dec */
	    0xb0, EXIT_VALUE,			      /* mov al, EXIT_VALUE */
	    0xe6, 0xf4,				      /* out 0xf4, al */
	    0xf4,				      /* hlt */
	    0xeb, 0xfd,				      /* jmp hlt */
	};
	/* At 0xfff0 (CS base 0xffff0000, IP 0xfff0): jmp near to IP 0. */
	static const unsigned char reset[] = {0xe9, 0x0d, 0x00};
	_cleanup_free_ unsigned char *rom = xmalloc(ROM_SIZE);
	memset(rom, 0xf4, ROM_SIZE);
	memcpy(rom, code, sizeof(code));
	memcpy(rom + 0xfff0, reset, sizeof(reset));
	int fd = memfd_create("tart-kvm-probe", MFD_CLOEXEC);
	if (fd < 0)
		return negerrno();
	if (write(fd, rom, ROM_SIZE) != ROM_SIZE) {
		close(fd);
		return -EIO;
	}
	return fd;
}

int qemu_accel_probe_guest(const char *binary, const char *accel, char **ret_why)
{
	bool kvm = streq(accel, "kvm");
	_cleanup_close_ int rom = make_rom();
	if (rom < 0) {
		*ret_why = xasprintf("cannot create the probe firmware: %s", strerror(-rom));
		return rom;
	}
	struct strvec argv = STRVEC_INIT;
	strvec_pushl(&argv, binary, "-nodefaults", "-no-user-config", "-machine", "q35", "-accel",
		     kvm ? "kvm" : "tcg", "-cpu", kvm ? "host,-vmx,-svm" : "max", "-m", "16",
		     "-display", "none", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x01", NULL);
	strvec_push(&argv, "-bios");
	strvec_pushf(&argv, "/proc/self/fd/%d", rom);
	struct qemu_process p;
	int r = qemu_process_spawn(&argv, &rom, 1, &p);
	strvec_clear(&argv);
	if (r < 0) {
		*ret_why = xasprintf("cannot start %s: %s", binary, strerror(-r));
		return r;
	}
	qemu_process_wait_or_kill(&p, QEMU_ACCEL_PROBE_MS);
	if (p.status == EXPECTED_STATUS) {
		qemu_process_release(&p);
		return 0;
	}
	const char *tail = qemu_process_tail(&p);
	const char *last = strrchr(tail, '\n');
	last = last ? last + 1 : tail;
	if (p.status == 128 + 9)
		*ret_why = xasprintf("the %s test guest did not finish within %d s",
				     kvm ? "KVM" : "TCG", QEMU_ACCEL_PROBE_MS / 1000);
	else
		*ret_why = xasprintf("the %s test guest failed (exit status %d%s%s)",
				     kvm ? "KVM" : "TCG", p.status, *last ? ": " : "", last);
	qemu_process_release(&p);
	return -ENODEV;
}

int qemu_accel_probe_kvm(const char *binary, const char *arch, char **ret_why)
{
	int r = kvm_ioctls(ret_why);
	if (r < 0)
		return r;
	/* The guest probe speaks x86 real mode; on arm64 the ioctl checks are what we have. */
	if (streq(arch, "arm64"))
		return 0;
	return qemu_accel_probe_guest(binary, "kvm", ret_why);
}
