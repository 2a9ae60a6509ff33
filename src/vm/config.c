// SPDX-License-Identifier: Apache-2.0
#include "vm/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/strbuf.h"

#define CONFIG_MAX_BYTES (1024 * 1024)

const char *vm_host_arch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#else
	return "unknown";
#endif
}

void vm_mac_random(char ret[18])
{
	unsigned char b[6];
	if (fs_random_bytes(b, sizeof(b)) < 0)
		abort();
	b[0] = (unsigned char)((b[0] & 0xfe) | 0x02);
	snprintf(ret, 18, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

int vm_mac_normalize(const char *in, char ret[18])
{
	unsigned int b[6];
	char tail;
	if (!in || strlen(in) > 17 + 0 ||
	    sscanf(in, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &tail) != 6)
		return -EINVAL;
	for (const char *p = in; *p; p++)
		if (!(*p == ':' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
		      (*p >= 'A' && *p <= 'F')))
			return -EINVAL;
	snprintf(ret, 18, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
	return 0;
}

void vm_config_init_linux(struct vm_config *c, const char *disk_format)
{
	*c = (struct vm_config){
		.version = 1,
		.cpu_count_min = 4,
		.cpu_count = 4,
		.memory_size_min = 4294967296ULL,
		.memory_size = 4294967296ULL,
		.display_width = 1024,
		.display_height = 768,
		.display_refit = -1,
	};
	snprintf(c->os, sizeof(c->os), "linux");
	snprintf(c->arch, sizeof(c->arch), "%s", vm_host_arch());
	snprintf(c->disk_format, sizeof(c->disk_format), "%s", disk_format ? disk_format : "raw");
	vm_mac_random(c->mac);
	c->raw = json_object();
}

void vm_config_release(struct vm_config *c)
{
	free(c->cmdline);
	if (c->raw)
		json_decref(c->raw);
	c->cmdline = NULL;
	c->raw = NULL;
}

static int bad(char **ret_err, const char *key, const char *why)
{
	if (ret_err)
		*ret_err = xasprintf("key '%s' %s", key, why);
	return -EBADMSG;
}

static int need_u64(json_t *j, const char *key, uint64_t *v, char **ret_err)
{
	int r = json_get_u64(j, key, v);
	if (r == -ENOENT)
		return bad(ret_err, key, "is missing");
	if (r < 0)
		return bad(ret_err, key, "is not a non-negative integer");
	return 0;
}

/* A string key with a fixed set of values, or absent (then `def`). */
static int parse_enum(json_t *j, const char *key, const char *a, const char *b, const char *def,
		      char *out, size_t outlen, char **ret_err)
{
	const char *s;
	int r = json_get_string(j, key, &s);
	if (r == -EBADMSG || (r == 0 && !streq(s, a) && !streq(s, b))) {
		if (ret_err)
			*ret_err = xasprintf("key '%s' must be \"%s\" or \"%s\"", key, a, b);
		return -EBADMSG;
	}
	snprintf(out, outlen, "%s", r == 0 ? s : def);
	return 0;
}

#define VM_VETU_DEFAULT_CPU_COUNT 1
#define VM_VETU_DEFAULT_MEMORY_SIZE (UINT64_C(512) * 1024 * 1024)

/* Vetu's config.json (kernel-booted Linux VMs) has no "os" and no minimums; Tart's always has. */
static bool is_vetu_config(json_t *j)
{
	return !json_object_get(j, "os") && !json_object_get(j, "cpuCountMin") &&
	       (json_object_get(j, "disks") || json_object_get(j, "cmdline"));
}

static int parse_resources(json_t *j, struct vm_config *c, char **ret_err)
{
	int r;
	bool vetu = is_vetu_config(j);
	/* Vetu omits both when empty; Cloud Hypervisor then boots 1 vCPU with 512 MiB. */
	if (vetu) {
		c->cpu_count = VM_VETU_DEFAULT_CPU_COUNT;
		c->memory_size = VM_VETU_DEFAULT_MEMORY_SIZE;
	}
	if ((!(vetu && !json_object_get(j, "cpuCount")) &&
	     (r = need_u64(j, "cpuCount", &c->cpu_count, ret_err)) < 0) ||
	    (!(vetu && !json_object_get(j, "memorySize")) &&
	     (r = need_u64(j, "memorySize", &c->memory_size, ret_err)) < 0))
		return r;
	c->cpu_count_min = c->cpu_count;
	c->memory_size_min = c->memory_size;
	if ((!vetu && (r = need_u64(j, "cpuCountMin", &c->cpu_count_min, ret_err)) < 0) ||
	    (!vetu && (r = need_u64(j, "memorySizeMin", &c->memory_size_min, ret_err)) < 0))
		return r;
	/* `set --cpu` takes Tart's UInt16 */
	if (c->cpu_count == 0 || c->cpu_count > UINT16_MAX)
		return bad(ret_err, "cpuCount", "is out of range (1-65535)");
	if (c->memory_size < 1024 * 1024)
		return bad(ret_err, "memorySize", "is below 1 MiB");
	return 0;
}

static int parse_display(json_t *j, struct vm_config *c, char **ret_err)
{
	json_t *d = json_object_get(j, "display");
	if (!d)
		return 0;
	if (!json_is_object(d) || json_get_u64(d, "width", &c->display_width) < 0 ||
	    json_get_u64(d, "height", &c->display_height) < 0)
		return bad(ret_err, "display", "needs integer width and height");
	const char *s;
	int r = json_get_string(d, "unit", &s);
	if (r == 0 && (streq(s, "pt") || streq(s, "px")))
		snprintf(c->display_unit, sizeof(c->display_unit), "%s", s);
	else if (r != -ENOENT && !json_is_null(json_object_get(d, "unit")))
		return bad(ret_err, "display.unit", "must be \"pt\" or \"px\"");
	return 0;
}

static int parse_optional(json_t *j, struct vm_config *c, char **ret_err)
{
	const char *s;
	bool b;
	int r = json_get_bool(j, "displayRefit", &b);
	if (r == -EBADMSG)
		return bad(ret_err, "displayRefit", "is not a boolean");
	c->display_refit = r == 0 ? b : -1;
	/* Tart turns unknown disk formats into raw silently; we keep that. */
	r = json_get_string(j, "diskFormat", &s);
	snprintf(c->disk_format, sizeof(c->disk_format), "%s",
		 r == 0 && streq(s, "asif") ? "asif" : "raw");
	r = json_get_string(j, "cmdline", &s);
	if (r == -EBADMSG)
		return bad(ret_err, "cmdline", "is not a string");
	if (r == 0)
		c->cmdline = xstrdup(s);
	return 0;
}

int vm_config_parse(const char *buf, size_t len, struct vm_config *ret, char **ret_err)
{
	struct vm_config c = {.display_width = 1024, .display_height = 768, .display_refit = -1};
	json_error_t jerr;
	/* Duplicate keys are refused: which one wins would be a guess. */
	_cleanup_json_ json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j || !json_is_object(j)) {
		if (ret_err)
			*ret_err = j ? xstrdup("not a JSON object")
				     : xasprintf("not valid JSON (line %d, column %d: %s)", jerr.line,
						 jerr.column, jerr.text);
		return -EBADMSG;
	}
	const char *s;
	uint64_t version;
	int r;
	if ((r = need_u64(j, "version", &version, ret_err)) < 0 ||
	    (r = parse_enum(j, "os", "linux", "darwin", is_vetu_config(j) ? "linux" : "darwin", c.os,
			    sizeof(c.os), ret_err)) < 0 ||
	    (r = parse_enum(j, "arch", "arm64", "amd64", "arm64", c.arch, sizeof(c.arch), ret_err)) <
		    0 ||
	    (r = parse_resources(j, &c, ret_err)) < 0 || (r = parse_display(j, &c, ret_err)) < 0)
		return r;
	c.version = (int64_t)version;
	r = json_get_string(j, "macAddress", &s);
	/* Vetu omits an empty MAC too (Cloud Hypervisor then makes one up): so do we */
	if (r == -ENOENT && is_vetu_config(j))
		vm_mac_random(c.mac);
	else if (r == -ENOENT)
		return bad(ret_err, "macAddress", "is missing");
	else if (r < 0 || vm_mac_normalize(s, c.mac) < 0)
		return bad(ret_err, "macAddress", "is not a MAC address");
	if ((r = parse_optional(j, &c, ret_err)) < 0) {
		free(c.cmdline);
		return r;
	}
	c.raw = TAKE_PTR(j);
	*ret = c;
	return 0;
}

int vm_config_load(const char *path, struct vm_config *ret, char **ret_err)
{
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	int r = fs_read_full(path, CONFIG_MAX_BYTES, &sb);
	if (r < 0) {
		if (ret_err)
			*ret_err = xstrdup(r == -EFBIG ? "file is larger than 1 MiB" : strerror(-r));
		return r == -EFBIG ? -EBADMSG : r;
	}
	return vm_config_parse(sb.buf, sb.len, ret, ret_err);
}

static json_t *to_json(const struct vm_config *c)
{
	/* Start from the original document so unknown keys survive, then set ours in Tart's order. */
	json_t *j = json_object();
	json_object_set_new(j, "version", json_integer(c->version));
	json_object_set_new(j, "os", json_string(c->os));
	json_object_set_new(j, "arch", json_string(c->arch));
	const char *k;
	json_t *v;
	if (c->raw)
		json_object_foreach(c->raw, k, v) if (streq(k, "ecid") || streq(k, "hardwareModel"))
			json_object_set(j, k, v);
	json_object_set_new(j, "cpuCountMin", json_integer((json_int_t)c->cpu_count_min));
	json_object_set_new(j, "cpuCount", json_integer((json_int_t)c->cpu_count));
	json_object_set_new(j, "memorySizeMin", json_integer((json_int_t)c->memory_size_min));
	json_object_set_new(j, "memorySize", json_integer((json_int_t)c->memory_size));
	json_object_set_new(j, "macAddress", json_string(c->mac));
	json_t *d = json_object();
	json_object_set_new(d, "width", json_integer((json_int_t)c->display_width));
	json_object_set_new(d, "height", json_integer((json_int_t)c->display_height));
	if (c->display_unit[0])
		json_object_set_new(d, "unit", json_string(c->display_unit));
	json_object_set_new(j, "display", d);
	if (c->display_refit >= 0)
		json_object_set_new(j, "displayRefit", json_boolean(c->display_refit));
	json_object_set_new(j, "diskFormat", json_string(c->disk_format));
	if (c->cmdline)
		json_object_set_new(j, "cmdline", json_string(c->cmdline));
	static const char *const known[] = {"displayRefit", "cmdline", "display", "diskFormat"};
	if (c->raw)
		json_object_foreach(c->raw, k, v)
		{
			bool skip = json_object_get(j, k) != NULL;
			for (size_t i = 0; i < ARRAY_SIZE(known); i++)
				skip = skip || streq(k, known[i]);
			if (!skip)
				json_object_set(j, k, v);
		}
	return j;
}

char *vm_config_format(const struct vm_config *c, bool pretty)
{
	_cleanup_json_ json_t *j = to_json(c);
	struct strbuf sb = STRBUF_INIT;
	json_dump_swift(j, pretty ? JSON_SWIFT_PRETTY : 0, &sb);
	return strbuf_detach(&sb, NULL);
}

int vm_config_save(const struct vm_config *c, const char *path)
{
	_cleanup_free_ char *s = vm_config_format(c, true);
	return fs_write_atomic(path, s, strlen(s), 0644);
}
