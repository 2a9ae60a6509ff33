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
#include "util/fs.h"
#include "util/macro.h"
#include "util/strbuf.h"

int qemu_accel_validate(const char *requested)
{
	if (!requested || streq(requested, "auto") || streq(requested, "kvm") ||
	    streq(requested, "tcg"))
		return 0;
	return -EINVAL;
}

/* Does the first "flags" line of /proc/cpuinfo list flag as a whole word? */
static bool cpuinfo_has_flag(const char *cpuinfo, const char *flag)
{
	const char *line = cpuinfo;
	while (line && !strneq(line, "flags", 5)) {
		line = strchr(line, '\n');
		line = line ? line + 1 : NULL;
	}
	if (!line)
		return false;
	const char *end = strchrnul(line, '\n');
	const char *p = memchr(line, ':', (size_t)(end - line));
	size_t n = strlen(flag);
	while (p && p < end) {
		p += strspn(p, ": \t");
		size_t len = strcspn(p, " \t\n");
		if (len == n && strneq(p, flag, n))
			return true;
		p += len;
	}
	return false;
}

bool qemu_accel_cpuinfo_has_hw_virt(const char *cpuinfo)
{
	return cpuinfo_has_flag(cpuinfo, "vmx") || cpuinfo_has_flag(cpuinfo, "svm");
}

int qemu_accel_host_check(const char *root, char **ret_why)
{
	_cleanup_free_ char *pvm = xasprintf("%s/sys/module/kvm_pvm", root);
	if (!fs_is_dir(pvm))
		return 0;
	_cleanup_free_ char *path = xasprintf("%s/proc/cpuinfo", root);
	_cleanup_strbuf_ struct strbuf cpuinfo = STRBUF_INIT;
	if (fs_read_full(path, 16 << 20, &cpuinfo) < 0 || strbuf_addch(&cpuinfo, '\0') < 0)
		return 0; /* unknown: the guest probe decides */
	if (qemu_accel_cpuinfo_has_hw_virt(cpuinfo.buf))
		return 0;
	*ret_why =
	    xstrdup("/dev/kvm is PVM, a nested KVM without hardware virtualization "
		    "(kvm_pvm is loaded, the CPU has neither vmx nor svm), which cannot boot "
		    "an unmodified guest kernel");
	return -ENODEV;
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

/*
 * The test firmware walks the path every x86-64 kernel walks (real mode, protected mode,
 * PAE paging, long mode), then proves it got there: it reads a value written at physical
 * 0x5000 through a second mapping at virtual 0x205000 (only paging can translate that) and
 * passes it through 64-bit shifts by 36 (REX.W instructions, which outside long mode decode
 * as something else) before writing it to isa-debug-exit. A KVM that fails any step (a PVM
 * host hangs at the far jump into protected mode) never produces EXIT_VALUE. Then it loops
 * 2^20 times in long mode, so a KVM that emulates every instruction runs out of time.
 *
 * The 64 KiB image is mapped below 1 MiB at 0xf0000 (and at 4 GiB - 64 KiB): the reset
 * vector jumps to F000:0000, so every address below is 0xf0000 + offset.
 * Assembled from this source (GNU as, `ld -Ttext=0 --oformat binary`) and checked with
 * objdump; the bytes are the program, not a build step.
 */
static const unsigned char probe_code[] = {
    /* 0x00 .code16 */
    0xfa,					    /* cli */
    0x2e, 0x66, 0x0f, 0x01, 0x16, 0xd8, 0x00,	    /* lgdtl %cs:0xd8 (gdtr) */
    0x0f, 0x20, 0xc0,				    /* mov %cr0,%eax */
    0x0c, 0x01,					    /* or $1,%al (PE) */
    0x0f, 0x22, 0xc0,				    /* mov %eax,%cr0 */
    0x66, 0xea, 0x18, 0x00, 0x0f, 0x00, 0x08, 0x00, /* ljmpl $0x08,$0xf0018 */
    /* 0x18 .code32 */
    0x66, 0xb8, 0x10, 0x00,					/* mov $0x10,%ax (flat data) */
    0x8e, 0xd8,							/* mov %eax,%ds */
    0x8e, 0xc0,							/* mov %eax,%es */
    0x8e, 0xd0,							/* mov %eax,%ss */
    0xbf, 0x00, 0x10, 0x00, 0x00,				/* mov $0x1000,%edi */
    0x31, 0xc0,							/* xor %eax,%eax */
    0xb9, 0x00, 0x0c, 0x00, 0x00,				/* mov $0xc00,%ecx */
    0xf3, 0xab,							/* rep stos: zero 0x1000-0x3fff */
    0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00, 0x00, /* PML4[0] = 0x2000|3 */
    0xc7, 0x05, 0x00, 0x20, 0x00, 0x00, 0x03, 0x30, 0x00, 0x00, /* PDPT[0] = 0x3000|3 */
    0xc7, 0x05, 0x00, 0x30, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00, /* PD[0] = 2 MiB page at 0 */
    0xc7, 0x05, 0x08, 0x30, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00, /* PD[1] = the same page */
    0xc7, 0x05, 0x00, 0x50, 0x00, 0x00, EXIT_VALUE, 0x00, 0x00, 0x00, /* [0x5000] = value */
    0xb8, 0x00, 0x10, 0x00, 0x00,				      /* mov $0x1000,%eax */
    0x0f, 0x22, 0xd8,						      /* mov %eax,%cr3 */
    0x0f, 0x20, 0xe0,						      /* mov %cr4,%eax */
    0x83, 0xc8, 0x20,						      /* or $0x20,%eax (PAE) */
    0x0f, 0x22, 0xe0,						      /* mov %eax,%cr4 */
    0xb9, 0x80, 0x00, 0x00, 0xc0,	      /* mov $0xc0000080,%ecx (EFER) */
    0x0f, 0x32,				      /* rdmsr */
    0x0d, 0x00, 0x01, 0x00, 0x00,	      /* or $0x100,%eax (LME) */
    0x0f, 0x30,				      /* wrmsr */
    0x0f, 0x20, 0xc0,			      /* mov %cr0,%eax */
    0x0d, 0x00, 0x00, 0x00, 0x80,	      /* or $0x80000000,%eax (PG) */
    0x0f, 0x22, 0xc0,			      /* mov %eax,%cr0 */
    0xea, 0x93, 0x00, 0x0f, 0x00, 0x18, 0x00, /* ljmp $0x18,$0xf0093 */
    /* 0x93 .code64 */
    0xb9, 0x00, 0x00, 0x10, 0x00,		    /* mov $0x100000,%ecx */
    0xff, 0xc9,					    /* 1: dec %ecx */
    0x75, 0xfc,					    /* jnz 1b */
    0x48, 0x8b, 0x04, 0x25, 0x00, 0x50, 0x20, 0x00, /* mov 0x205000,%rax */
    0x48, 0xc1, 0xe0, 0x24,			    /* shl $36,%rax */
    0x48, 0xc1, 0xe8, 0x24,			    /* shr $36,%rax */
    0xe6, 0xf4,					    /* out %al,$0xf4 */
    0xf4,					    /* 2: hlt */
    0xeb, 0xfd,					    /* jmp 2b */
};
#define PROBE_GDT 0xb8
static const unsigned char probe_gdt[] = {
    0,	  0,	0,    0,    0,	  0,	0,    0,    /* null */
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00, /* 0x08: 32-bit flat code */
    0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00, /* 0x10: flat data */
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xaf, 0x00, /* 0x18: 64-bit code (L=1) */
    0x1f, 0x00, 0xb8, 0x00, 0x0f, 0x00,		    /* 0xd8 gdtr: limit 0x1f, base 0xf00b8 */
};
_Static_assert(sizeof(probe_code) <= PROBE_GDT, "the probe's code runs into its GDT");
/* At 0xfff0 (the reset vector): ljmp $0xf000,$0 (CS base 0xf0000 from then on). */
static const unsigned char probe_reset[] = {0xea, 0x00, 0x00, 0x00, 0xf0};

static int make_rom(void)
{
	_cleanup_free_ unsigned char *rom = xmalloc(ROM_SIZE);
	memset(rom, 0xf4, ROM_SIZE); /* hlt everywhere else */
	memcpy(rom, probe_code, sizeof(probe_code));
	memcpy(rom + PROBE_GDT, probe_gdt, sizeof(probe_gdt));
	memcpy(rom + 0xfff0, probe_reset, sizeof(probe_reset));
	int fd = memfd_create("tart-kvm-probe", MFD_CLOEXEC);
	if (fd < 0)
		return negerrno();
	if (fs_write_all(fd, rom, ROM_SIZE) < 0) {
		close(fd);
		return -EIO;
	}
	return fd;
}

int qemu_accel_probe_guest(const char *binary, const char *accel, const char *cpu, char **ret_why)
{
	bool kvm = streq(accel, "kvm");
	_cleanup_close_ int rom = make_rom();
	if (rom < 0) {
		*ret_why = xasprintf("cannot create the probe firmware: %s", strerror(-rom));
		return rom;
	}
	if (!cpu)
		cpu = kvm ? QEMU_ACCEL_KVM_CPU : "max";
	struct strvec argv = STRVEC_INIT;
	strvec_pushl(&argv, binary, "-nodefaults", "-no-user-config", "-machine", "q35", "-accel",
		     kvm ? "kvm" : "tcg", "-cpu", cpu, "-m", "16", "-display", "none", "-device",
		     "isa-debug-exit,iobase=0xf4,iosize=0x01", NULL);
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
		*ret_why = xasprintf("its test guest did not reach 64-bit long mode and finish "
				     "within %d s",
				     QEMU_ACCEL_PROBE_MS / 1000);
	else
		*ret_why = xasprintf("its test guest failed (exit status %d%s%s)", p.status,
				     *last ? ": " : "", last);
	qemu_process_release(&p);
	return -ENODEV;
}

int qemu_accel_probe_kvm(const char *binary, const char *arch, char **ret_why)
{
	int r = kvm_ioctls(ret_why);
	if (r < 0)
		return r;
	r = qemu_accel_host_check("", ret_why);
	if (r < 0)
		return r;
	/* The guest probe speaks x86; on arm64 the ioctl checks are what we have. */
	if (streq(arch, "arm64"))
		return 0;
	return qemu_accel_probe_guest(binary, "kvm", NULL, ret_why);
}
