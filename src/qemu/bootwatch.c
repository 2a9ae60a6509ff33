// SPDX-License-Identifier: Apache-2.0
#include "qemu/bootwatch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"
#include "util/macro.h"
#include "util/parse.h"

#define EFER_LMA (UINT64_C(1) << 10)

int qemu_boot_watchdog_seconds(bool kvm, uint64_t *ret)
{
	const char *e = getenv("TART_BOOT_WATCHDOG");
	if (!e || !*e) {
		*ret = kvm ? QEMU_BOOT_WATCHDOG_DEFAULT_S : 0;
		return 0;
	}
	return parse_u64(e, 24 * 3600, ret);
}

int qemu_boot_parse_efer(const char *text, uint64_t *ret)
{
	const char *p = text;
	/* "EFER=" starts a line or follows a space (not e.g. "XEFER="). */
	while ((p = strstr(p, "EFER=")) && p != text && p[-1] != '\n' && p[-1] != ' ')
		p += 5;
	if (!p)
		return -EBADMSG;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p + 5, &end, 16);
	if (errno || end == p + 5)
		return -EBADMSG;
	*ret = v;
	return 0;
}

int qemu_boot_long_mode(struct qemu_qmp *q, int timeout_ms)
{
	_cleanup_json_ json_t *ret = NULL;
	int k = qemu_qmp_call(q, "human-monitor-command",
			      json_pack("{s:s}", "command-line", "info registers"), timeout_ms,
			      &ret, NULL);
	if (k < 0)
		return k;
	const char *text = json_string_value(ret);
	uint64_t efer;
	if (!text || qemu_boot_parse_efer(text, &efer) < 0)
		return -EBADMSG;
	return (efer & EFER_LMA) ? 1 : 0;
}
