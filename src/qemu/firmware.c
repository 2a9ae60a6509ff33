// SPDX-License-Identifier: Apache-2.0
#include "qemu/firmware.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/fs.h"
#include "util/macro.h"

struct candidate {
	const char *dir;
	const char *code;
	const char *vars;
};

static const struct candidate amd64[] = {
	{"/usr/share/OVMF", "OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"},
	{"/usr/share/OVMF", "OVMF_CODE.fd", "OVMF_VARS.fd"},
	{"/usr/share/edk2/ovmf", "OVMF_CODE.fd", "OVMF_VARS.fd"},
};

static const struct candidate arm64[] = {
	{"/usr/share/AAVMF", "AAVMF_CODE.fd", "AAVMF_VARS.fd"},
	{"/usr/share/qemu-efi-aarch64", "QEMU_EFI.fd", "QEMU_VARS.fd"},
};

const char *qemu_firmware_package(const char *arch)
{
	return streq(arch, "arm64") ? "qemu-efi-aarch64" : "ovmf";
}

void qemu_firmware_release(struct qemu_firmware *fw)
{
	free(fw->code);
	free(fw->vars);
	fw->code = fw->vars = NULL;
}

int qemu_firmware_find(const char *arch, struct qemu_firmware *ret)
{
	const struct candidate *c = streq(arch, "arm64") ? arm64 : amd64;
	size_t n = streq(arch, "arm64") ? ARRAY_SIZE(arm64) : ARRAY_SIZE(amd64);
	const char *override = getenv("TART_FIRMWARE_DIR");
	for (size_t i = 0; i < n; i++) {
		const char *dir = override && *override ? override : c[i].dir;
		_cleanup_free_ char *code = path_join(dir, c[i].code);
		_cleanup_free_ char *vars = path_join(dir, c[i].vars);
		if (access(code, R_OK) == 0 && access(vars, R_OK) == 0) {
			ret->code = TAKE_PTR(code);
			ret->vars = TAKE_PTR(vars);
			return 0;
		}
	}
	return -ENOPKG;
}
