// SPDX-License-Identifier: Apache-2.0
#include "qemu/accel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
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

/*
 * The arm64 equivalent, for `virt` (flash at 0, RAM at 1 GiB) at EL1: what a kernel needs
 * beyond the AArch64 state the vCPU starts in is the MMU. The firmware writes a value at
 * 0x40001000, builds a level-1 table of 1 GiB blocks (0 and 1 GiB identity, 2 GiB aliasing
 * 1 GiB) with MAIR/TCR/TTBR0, turns on SCTLR_EL1.M|C|I, loops 2^20 times and reads the value
 * back through 0x80001000: only then does it call PSCI SYSTEM_OFF (hvc), and QEMU exits 0.
 * A fault lands in a vector table of `b .` at 0x800, a wrong value spins: both run out of
 * time. Assembled with GNU as for aarch64; checked under TCG (and with the alias or the MMU
 * switch removed, which must time out).
 */
static const uint32_t probe_arm64_code[] = {
    0x10004000, /* adr x0, vectors (0x800) */
    0xd518c000, /* msr vbar_el1, x0 */
    0x58000441, /* ldr x1, =0x40000000 (the table) */
    0x58000462, /* ldr x2, =0x701 (block at 0: AF, inner shareable, attr 0) */
    0xf9000022, /* str x2, [x1] */
    0x58000462, /* ldr x2, =0x40000701 (block at 1 GiB) */
    0xf9000422, /* str x2, [x1, #8] */
    0xf9000822, /* str x2, [x1, #16] (2 GiB -> 1 GiB: the alias) */
    0x58000443, /* ldr x3, =0x40001000 */
    0x58000464, /* ldr x4, =0x2a2a2a2a2a2a2a2a */
    0xf9000064, /* str x4, [x3] */
    0xd5033f9f, /* dsb sy */
    0x58000440, /* ldr x0, =0xff */
    0xd518a200, /* msr mair_el1, x0 (attr 0: normal write-back) */
    0x58000440, /* ldr x0, =0x803519 */
    0xd5182040, /* msr tcr_el1, x0 (T0SZ 25, WB, inner shareable, 4K, EPD1) */
    0xd5182001, /* msr ttbr0_el1, x1 */
    0xd5033fdf, /* isb */
    0xd508871f, /* tlbi vmalle1 */
    0xd5033f9f, /* dsb sy */
    0xd5033fdf, /* isb */
    0xd5381000, /* mrs x0, sctlr_el1 */
    0x58000385, /* ldr x5, =0x1005 */
    0xaa050000, /* orr x0, x0, x5 (M, C, I) */
    0xd5181000, /* msr sctlr_el1, x0 */
    0xd5033fdf, /* isb */
    0x58000346, /* ldr x6, =0x100000 */
    0xf10004c6, /* 1: subs x6, x6, #1 */
    0x54ffffe1, /* b.ne 1b */
    0x58000327, /* ldr x7, =0x80001000 */
    0xf94000e8, /* ldr x8, [x7] */
    0xeb04011f, /* cmp x8, x4 */
    0x54000061, /* b.ne spin */
    0x580002e0, /* ldr x0, =0x84000008 (PSCI SYSTEM_OFF) */
    0xd4000002, /* hvc #0 */
    0x14000000, /* spin: b . */
};
/* The literal pool that follows the code at 0x90. */
static const uint64_t probe_arm64_literals[] = {
    0x40000000, 0x701,	0x40000701, 0x40001000, 0x2a2a2a2a2a2a2a2a, 0xff,
    0x803519,	0x1005, 0x100000,   0x80001000, 0x84000008,
};
#define ARM64_VECTORS 0x800
#define ARM64_B_SELF 0x14000000u

static void put_le(unsigned char *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static int make_rom(bool arm64)
{
	_cleanup_free_ unsigned char *rom = xmalloc(ROM_SIZE);
	if (arm64) {
		memset(rom, 0, ROM_SIZE);
		size_t off = 0;
		for (size_t i = 0; i < ARRAY_SIZE(probe_arm64_code); i++, off += 4)
			put_le(rom + off, probe_arm64_code[i], 4);
		for (size_t i = 0; i < ARRAY_SIZE(probe_arm64_literals); i++, off += 8)
			put_le(rom + off, probe_arm64_literals[i], 8);
		for (size_t i = 0; i < 16; i++) /* every exception: spin */
			put_le(rom + ARM64_VECTORS + 128 * i, ARM64_B_SELF, 4);
	} else {
		memset(rom, 0xf4, ROM_SIZE); /* hlt everywhere else */
		memcpy(rom, probe_code, sizeof(probe_code));
		memcpy(rom + PROBE_GDT, probe_gdt, sizeof(probe_gdt));
		memcpy(rom + 0xfff0, probe_reset, sizeof(probe_reset));
	}
	int fd = memfd_create("tart-kvm-probe", MFD_CLOEXEC);
	if (fd < 0)
		return negerrno();
	if (fs_write_all(fd, rom, ROM_SIZE) < 0) {
		close(fd);
		return -EIO;
	}
	return fd;
}

int qemu_accel_probe_guest(const char *binary, const char *arch, const char *accel, const char *cpu,
			   char **ret_why)
{
	bool kvm = streq(accel, "kvm");
	bool arm64 = streq(arch, "arm64");
	_cleanup_close_ int rom = make_rom(arm64);
	if (rom < 0) {
		*ret_why = xasprintf("cannot create the probe firmware: %s", strerror(-rom));
		return rom;
	}
	if (!cpu)
		cpu = !kvm ? "max" : arm64 ? "host" : QEMU_ACCEL_KVM_CPU;
	struct strvec argv = STRVEC_INIT;
	strvec_pushl(&argv, binary, "-nodefaults", "-no-user-config", "-machine",
		     arm64 ? "virt,gic-version=max" : "q35", "-accel", kvm ? "kvm" : "tcg", "-cpu",
		     cpu, "-m", "16", "-display", "none", NULL);
	if (!arm64)
		strvec_pushl(&argv, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x01", NULL);
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
	/* x86: isa-debug-exit's status; arm64: a clean exit, which only SYSTEM_OFF gives */
	if (p.status == (arm64 ? 0 : EXPECTED_STATUS)) {
		qemu_process_release(&p);
		return 0;
	}
	const char *tail = qemu_process_tail(&p);
	const char *last = strrchr(tail, '\n');
	last = last ? last + 1 : tail;
	if (p.status == 128 + 9)
		*ret_why = xasprintf("its test guest did not reach %s and finish within %d s",
				     arm64 ? "paged mode (MMU on)" : "64-bit long mode",
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
	return qemu_accel_probe_guest(binary, arch, "kvm", NULL, ret_why);
}
