/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * config.json, with Tart's keys (see tart-facts §3). Unknown keys are kept and written back
 * unchanged, so a config that came from Tart (ecid, hardwareModel, ...) survives a `set`.
 */
struct vm_config {
	int64_t version;
	char os[16];   /* "linux" | "darwin" */
	char arch[16]; /* "amd64" | "arm64" */
	uint64_t cpu_count_min;
	uint64_t cpu_count;
	uint64_t memory_size_min; /* bytes */
	uint64_t memory_size;     /* bytes */
	char mac[18];             /* "aa:bb:cc:dd:ee:ff", lower case */
	uint64_t display_width;
	uint64_t display_height;
	char display_unit[3]; /* "", "pt" or "px" */
	int display_refit;    /* -1 absent, 0 false, 1 true */
	char disk_format[8];  /* "raw" | "asif" */
	char *cmdline;        /* extension: kernel command line for direct-kernel VMs, or NULL */
	json_t *raw;          /* the parsed document, for unknown keys */
};

/* The host architecture in Tart's spelling ("amd64", "arm64"). */
const char *vm_host_arch(void);

/* Defaults of `tart create --linux`: 4 CPUs, 4 GiB, random MAC, 1024x768, host arch. */
void vm_config_init_linux(struct vm_config *c, const char *disk_format);
/*
 * Parse config.json text. Returns -EBADMSG with a message in ret_err (allocated) naming the
 * bad key when the document is malformed or a required key is missing or of the wrong type.
 */
int vm_config_parse(const char *buf, size_t len, struct vm_config *ret, char **ret_err);
/* Load from a file; non-logging. */
int vm_config_load(const char *path, struct vm_config *ret, char **ret_err);
/* Serialize (pretty, Swift style) into an allocated string. */
char *vm_config_format(const struct vm_config *c, bool pretty);
/* Write atomically (temp file + fsync + rename). */
int vm_config_save(const struct vm_config *c, const char *path);
void vm_config_release(struct vm_config *c);

/* A random locally administered unicast MAC. */
void vm_mac_random(char ret[18]);
/* Normalize "A:b:0c:..." to lower-case zero-padded; -EINVAL when not a MAC. */
int vm_mac_normalize(const char *in, char ret[18]);
