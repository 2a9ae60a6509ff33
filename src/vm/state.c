// SPDX-License-Identifier: Apache-2.0
#include "vm/state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/ref.h"
#include "qemu/argv.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/run.h"
#include "util/strvec.h"
#include "vm/config.h"

#define MAGIC_LEN (sizeof(VM_STATE_MAGIC) - 1)
/* QEMU's migration stream: "QEVM", version 3, then the configuration section. */
#define QEVM_MAGIC 0x5145564du
#define QEVM_VERSION 3u
#define QEVM_SECTION_CONFIGURATION 0x07

void vm_state_info_release(struct vm_state_info *i)
{
	free(i->devices);
	*i = (struct vm_state_info){0};
}

static int why(char **ret_why, const char *fmt, ...) _printf_(2, 3);
static int why(char **ret_why, const char *fmt, ...)
{
	if (ret_why) {
		va_list ap;
		va_start(ap, fmt);
		*ret_why = xvasprintf(fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

static bool get_str(json_t *j, const char *key, char *dst, size_t size, bool digest)
{
	const char *v;
	if (json_get_string(j, key, &v) < 0 || strlen(v) >= size)
		return false;
	if (digest && *v && !oci_digest_valid(v))
		return false;
	memcpy(dst, v, strlen(v) + 1);
	return true;
}

int vm_state_read(const char *path, struct vm_state_info *ret, char **ret_why)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return negerrno();
	char buf[VM_STATE_HEADER_SIZE + 1];
	ssize_t n = pread(fd, buf, VM_STATE_HEADER_SIZE, 0);
	if (n < 0)
		return negerrno();
	if ((size_t)n < VM_STATE_HEADER_SIZE || memcmp(buf, VM_STATE_MAGIC, MAGIC_LEN) != 0)
		return why(ret_why, "it is not a state saved by this tart (no header)");
	buf[VM_STATE_HEADER_SIZE] = '\0';
	size_t len = strnlen(buf + MAGIC_LEN, VM_STATE_HEADER_SIZE - MAGIC_LEN);
	_cleanup_json_ json_t *j = NULL;
	if (json_parse_buf(buf + MAGIC_LEN, len, &j) < 0 || !json_is_object(j))
		return why(ret_why, "its header is damaged");
	struct vm_state_info i = {0};
	uint64_t version, mtime;
	const char *dev;
	bool ok = json_get_u64(j, "version", &version) == 0 && version == 1 &&
		  get_str(j, "arch", i.arch, sizeof(i.arch), false) &&
		  get_str(j, "qemuVersion", i.qemu_version, sizeof(i.qemu_version), false) &&
		  get_str(j, "qemuPackage", i.qemu_package, sizeof(i.qemu_package), false) &&
		  get_str(j, "machine", i.machine, sizeof(i.machine), false) &&
		  get_str(j, "devicesDigest", i.devices_digest, sizeof(i.devices_digest), true) &&
		  json_get_string(j, "devices", &dev) == 0 &&
		  json_get_u64(j, "memorySize", &i.memory_size) == 0 &&
		  json_get_u64(j, "cpuCount", &i.cpu_count) == 0 &&
		  get_str(j, "mac", i.mac, sizeof(i.mac), false) &&
		  json_get_bool(j, "agent", &i.agent) == 0 &&
		  json_get_u64(j, "streamSize", &i.stream_size) == 0 &&
		  get_str(j, "streamDigest", i.stream_digest, sizeof(i.stream_digest), true) &&
		  json_get_u64(j, "diskSize", &i.disk_size) == 0 &&
		  json_get_u64(j, "diskMtime", &mtime) == 0 && mtime <= INT64_MAX &&
		  get_str(j, "diskDigest", i.disk_digest, sizeof(i.disk_digest), true) &&
		  get_str(j, "created", i.created, sizeof(i.created), false) && *i.arch &&
		  *i.qemu_version && *i.machine && i.stream_digest[0] && i.devices_digest[0];
	if (!ok)
		return why(ret_why, "its header is damaged");
	i.disk_mtime_ns = (int64_t)mtime;
	i.devices = xstrdup(dev);
	char dg[OCI_DIGEST_STRLEN];
	oci_digest_buf(i.devices, strlen(i.devices), dg);
	if (!streq(dg, i.devices_digest)) {
		vm_state_info_release(&i);
		return why(ret_why, "its header is damaged (device digest)");
	}
	if ((uint64_t)st.st_size != VM_STATE_HEADER_SIZE + i.stream_size) {
		uint64_t have = (uint64_t)st.st_size;
		uint64_t want = VM_STATE_HEADER_SIZE + i.stream_size;
		vm_state_info_release(&i);
		return why(ret_why, "it is %s (%" PRIu64 " bytes instead of %" PRIu64 ")",
			   have < want ? "truncated" : "too long", have, want);
	}
	*ret = i;
	return 0;
}

int vm_state_write_header(int fd, const struct vm_state_info *i)
{
	_cleanup_json_ json_t *j = json_object();
	json_object_set_new(j, "version", json_integer(1));
	json_object_set_new(j, "arch", json_string(i->arch));
	json_object_set_new(j, "qemuVersion", json_string(i->qemu_version));
	json_object_set_new(j, "qemuPackage", json_string(i->qemu_package));
	json_object_set_new(j, "machine", json_string(i->machine));
	json_object_set_new(j, "devices", json_string(i->devices ? i->devices : ""));
	json_object_set_new(j, "devicesDigest", json_string(i->devices_digest));
	json_object_set_new(j, "memorySize", json_integer((json_int_t)i->memory_size));
	json_object_set_new(j, "cpuCount", json_integer((json_int_t)i->cpu_count));
	json_object_set_new(j, "mac", json_string(i->mac));
	json_object_set_new(j, "agent", json_boolean(i->agent));
	json_object_set_new(j, "streamSize", json_integer((json_int_t)i->stream_size));
	json_object_set_new(j, "streamDigest", json_string(i->stream_digest));
	json_object_set_new(j, "diskSize", json_integer((json_int_t)i->disk_size));
	json_object_set_new(j, "diskMtime", json_integer((json_int_t)i->disk_mtime_ns));
	json_object_set_new(j, "diskDigest", json_string(i->disk_digest));
	json_object_set_new(j, "created", json_string(i->created));
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
	if (!text || MAGIC_LEN + strlen(text) + 1 > VM_STATE_HEADER_SIZE)
		return -EFBIG;
	char buf[VM_STATE_HEADER_SIZE] = {0};
	memcpy(buf, VM_STATE_MAGIC, MAGIC_LEN);
	memcpy(buf + MAGIC_LEN, text, strlen(text));
	buf[MAGIC_LEN + strlen(text)] = '\n';
	int r = fs_pwrite_all(fd, buf, sizeof(buf), 0);
	if (r < 0)
		return r;
	return fsync(fd) < 0 ? negerrno() : 0;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int vm_state_stream_machine(int fd, uint64_t offset, char *ret, size_t size)
{
	unsigned char b[8 + 1 + 4 + 256];
	ssize_t n = pread(fd, b, sizeof(b), (off_t)offset);
	if (n < 14)
		return -EBADMSG;
	if (be32(b) != QEVM_MAGIC || be32(b + 4) != QEVM_VERSION ||
	    b[8] != QEVM_SECTION_CONFIGURATION)
		return -EBADMSG;
	uint32_t len = be32(b + 9);
	if (len == 0 || len >= size || 13 + (ssize_t)len > n)
		return -EBADMSG;
	for (uint32_t k = 0; k < len; k++)
		if (b[13 + k] < 0x21 || b[13 + k] > 0x7e)
			return -EBADMSG;
	memcpy(ret, b + 13, len);
	ret[len] = '\0';
	return 0;
}

int vm_state_disk_fingerprint(const char *disk, uint64_t *ret_size, int64_t *ret_mtime_ns)
{
	struct stat st;
	if (stat(disk, &st) < 0)
		return negerrno();
	*ret_size = (uint64_t)st.st_size;
	*ret_mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	return 0;
}

int vm_state_restamp(const char *state, const char *disk)
{
	struct vm_state_info i;
	int r = vm_state_read(state, &i, NULL);
	if (r < 0)
		return r;
	r = vm_state_disk_fingerprint(disk, &i.disk_size, &i.disk_mtime_ns);
	if (r >= 0) {
		_cleanup_close_ int fd = open(state, O_WRONLY | O_CLOEXEC);
		r = fd < 0 ? negerrno() : vm_state_write_header(fd, &i);
	}
	vm_state_info_release(&i);
	return r;
}

static void layers_digest(const struct oci_layer *l, size_t n, char ret[OCI_DIGEST_STRLEN])
{
	struct oci_digest d;
	oci_digest_init(&d);
	for (size_t i = 0; i < n; i++)
		if (l[i].kind == OCI_LAYER_DISK)
			oci_digest_update(&d, l[i].uncompressed_digest,
					  strlen(l[i].uncompressed_digest));
	oci_digest_final(&d, ret);
}

void vm_state_disk_digest(const struct oci_manifest *m, char ret[OCI_DIGEST_STRLEN])
{
	layers_digest(m->layers, m->nlayers, ret);
}

int vm_state_qemu_version(const char *qemu_bin, char *ret, size_t size)
{
	_cleanup_strvec_ struct strvec argv = STRVEC_INIT;
	strvec_pushl(&argv, qemu_bin, "--version", NULL);
	_cleanup_strbuf_ struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	int status;
	int r = run_argv(&argv, &out, &err, &status);
	if (r < 0)
		return r;
	if (status != 0)
		return -EIO;
	const char *p = strstr(out.buf, "version ");
	if (!p)
		return -EBADMSG;
	p += strlen("version ");
	size_t n = strspn(p, "0123456789.");
	if (n == 0 || n >= size)
		return -EBADMSG;
	memcpy(ret, p, n);
	ret[n] = '\0';
	return 0;
}

void vm_state_annotate(const struct vm_state_info *i, struct oci_layer *l)
{
	struct oci_state_meta *s = &l->state;
	snprintf(s->arch, sizeof(s->arch), "%s", i->arch);
	snprintf(s->qemu_version, sizeof(s->qemu_version), "%s", i->qemu_version);
	snprintf(s->machine, sizeof(s->machine), "%s", i->machine);
	s->memory_size = i->memory_size;
	memcpy(s->devices_digest, i->devices_digest, OCI_DIGEST_STRLEN);
	memcpy(s->disk_digest, i->disk_digest, OCI_DIGEST_STRLEN);
	memcpy(s->stream_digest, i->stream_digest, OCI_DIGEST_STRLEN);
}

int vm_state_check_annotations(const struct oci_manifest *m, const char *host_qemu_version,
			       char **ret_why)
{
	const struct oci_layer *l = oci_manifest_find(m, OCI_LAYER_STATE);
	if (!l)
		return 0;
	const char *host = vm_host_arch();
	if (!streq(l->state.arch, host)) {
		*ret_why = xasprintf("it was saved on %s, this host is %s", l->state.arch, host);
		return -ESTALE;
	}
	if (host_qemu_version && !streq(l->state.qemu_version, host_qemu_version)) {
		*ret_why = xasprintf("it was saved by QEMU %s, this host has QEMU %s",
				     l->state.qemu_version, host_qemu_version);
		return -ESTALE;
	}
	char dg[OCI_DIGEST_STRLEN];
	vm_state_disk_digest(m, dg);
	if (!streq(dg, l->state.disk_digest)) {
		*ret_why = xstrdup("it belongs to another disk than the image's");
		return -ESTALE;
	}
	return 0;
}

int vm_state_check_pulled(const struct oci_manifest *m, const struct vm_state_info *i,
			  char **ret_why)
{
	const struct oci_layer *l = oci_manifest_find(m, OCI_LAYER_STATE);
	if (!l)
		return why(ret_why, "the image has no state layer");
	struct oci_layer mine = {0};
	vm_state_annotate(i, &mine);
	if (memcmp(&mine.state, &l->state, sizeof(mine.state)) != 0)
		return why(ret_why, "its annotations do not describe its content");
	if (i->stream_size + VM_STATE_HEADER_SIZE !=
	    oci_manifest_kind_uncompressed(m, OCI_LAYER_STATE))
		return why(ret_why, "its size does not match its layers");
	return 0;
}

bool vm_state_keeps_mac(const char *dir)
{
	_cleanup_free_ char *p = path_join(dir, OCI_STATE_FILE);
	struct vm_state_info i;
	if (!fs_exists(p) || vm_state_read(p, &i, NULL) < 0)
		return false;
	bool keep = !i.agent;
	vm_state_info_release(&i);
	return keep;
}

/* The state in dir, if it is intact and still belongs to dir's disk. */
static int read_current(const char *dir, struct vm_state_info *ret, char **ret_why)
{
	_cleanup_free_ char *p = path_join(dir, OCI_STATE_FILE);
	_cleanup_free_ char *disk = path_join(dir, "disk.img");
	int r = vm_state_read(p, ret, ret_why);
	if (r < 0)
		return r;
	uint64_t size;
	int64_t mtime;
	r = vm_state_disk_fingerprint(disk, &size, &mtime);
	if (r < 0 || size != ret->disk_size || mtime != ret->disk_mtime_ns) {
		vm_state_info_release(ret);
		*ret_why = xstrdup("the disk has changed since the state was saved");
		return -ESTALE;
	}
	return 0;
}

int vm_state_copied(const char *src_dir, const char *dst_dir, const char *name)
{
	_cleanup_free_ char *dst = path_join(dst_dir, OCI_STATE_FILE);
	if (!fs_exists(dst))
		return 0;
	struct vm_state_info i;
	_cleanup_free_ char *why = NULL;
	int r = read_current(src_dir, &i, &why);
	if (r == -EBADMSG || r == -ESTALE) {
		log_notice("the saved state of \"%s\" is not copied: %s", name, why);
		return unlink(dst) < 0 ? negerrno() : 0;
	}
	if (r < 0)
		return r;
	vm_state_info_release(&i);
	_cleanup_free_ char *disk = path_join(dst_dir, "disk.img");
	return vm_state_restamp(dst, disk);
}

int vm_state_push_hook(void *userdata, const struct oci_layer *disk, size_t ndisk,
		       struct oci_state_meta *ret_meta)
{
	const char *dir = userdata;
	struct vm_state_info i;
	_cleanup_free_ char *why = NULL;
	int r = read_current(dir, &i, &why);
	if (r == -EBADMSG || r == -ESTALE) {
		log_notice("the saved state is left out of the image: %s", why);
		return 0;
	}
	if (r < 0)
		return log_error_errno(r, "cannot read the saved state in '%s'", dir);
	/* Bind the state to the disk it is pushed with: pull checks this against the image. */
	char dg[OCI_DIGEST_STRLEN];
	layers_digest(disk, ndisk, dg);
	if (!streq(dg, i.disk_digest)) {
		memcpy(i.disk_digest, dg, OCI_DIGEST_STRLEN);
		_cleanup_free_ char *p = path_join(dir, OCI_STATE_FILE);
		_cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
		r = fd < 0 ? negerrno() : vm_state_write_header(fd, &i);
		if (r < 0) {
			vm_state_info_release(&i);
			return log_error_errno(r, "cannot update '%s'", p);
		}
	}
	struct oci_layer l = {0};
	vm_state_annotate(&i, &l);
	*ret_meta = l.state;
	vm_state_info_release(&i);
	return 1;
}

static int host_qemu_version(char *ret, size_t size)
{
	_cleanup_free_ char *bin = NULL;
	int r = find_program(qemu_binary_name(vm_host_arch()), &bin);
	return r < 0 ? r : vm_state_qemu_version(bin, ret, size);
}

int vm_state_pull_check(void *userdata, const struct oci_manifest *m, const char *staging,
			int result)
{
	const char *name = userdata;
	_cleanup_free_ char *why = NULL;
	if (!staging) {
		char ver[64];
		int r = host_qemu_version(ver, sizeof(ver));
		if (vm_state_check_annotations(m, r < 0 ? NULL : ver, &why) == 0)
			return 1;
		log_notice("the saved state of %s is left out: %s (the VM will boot from its disk)",
			   name, why);
		return 0;
	}
	_cleanup_free_ char *p = path_join(staging, OCI_STATE_FILE);
	_cleanup_free_ char *disk = path_join(staging, "disk.img");
	struct vm_state_info i = {0};
	if (result < 0)
		why = xstrdup("its layers do not match their digests");
	else if (vm_state_read(p, &i, &why) >= 0 && vm_state_check_pulled(m, &i, &why) >= 0) {
		char dg[OCI_DIGEST_STRLEN];
		vm_state_disk_digest(m, dg);
		if (!streq(dg, i.disk_digest))
			why = xstrdup("it belongs to another disk than the image's");
	}
	vm_state_info_release(&i);
	if (!why) {
		int r = vm_state_restamp(p, disk);
		if (r < 0)
			return log_error_errno(r, "cannot write '%s'", p);
		return 0;
	}
	log_notice("the saved state of %s is left out: %s (the VM will boot from its disk)", name,
		   why);
	(void)unlink(p);
	return 0;
}
