// SPDX-License-Identifier: Apache-2.0
#include "oci/manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oci/ref.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/macro.h"

void oci_manifest_release(struct oci_manifest *m)
{
	free(m->layers);
	*m = (struct oci_manifest){0};
}

static int fail(char **ret_err, const char *fmt, ...) _printf_(2, 3);
static int fail(char **ret_err, const char *fmt, ...)
{
	if (ret_err) {
		va_list ap;
		va_start(ap, fmt);
		*ret_err = xvasprintf(fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

/* A decimal string annotation: digits only, no sign, no overflow, at most max. */
static int parse_decimal(const char *s, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	if (!s || !*s || strlen(s) > 20)
		return -EBADMSG;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EBADMSG;
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -EBADMSG;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v > max)
		return -EBADMSG;
	*ret = v;
	return 0;
}

static int parse_descriptor(json_t *j, const char **ret_mt, char digest[OCI_DIGEST_STRLEN],
			    uint64_t *ret_size, char **ret_err)
{
	const char *mt, *dg;
	uint64_t size;
	if (!json_is_object(j))
		return fail(ret_err, "descriptor is not an object");
	if (json_get_string(j, "mediaType", &mt) < 0)
		return fail(ret_err, "descriptor has no \"mediaType\"");
	if (json_get_string(j, "digest", &dg) < 0 || !oci_digest_valid(dg))
		return fail(ret_err, "descriptor of \"%s\" has no valid sha256 digest", mt);
	if (json_get_u64(j, "size", &size) < 0)
		return fail(ret_err, "descriptor \"%s\" has no valid size", dg);
	json_t *ann = json_object_get(j, "annotations");
	if (ann && !json_is_object(ann) && !json_is_null(ann))
		return fail(ret_err, "annotations of \"%s\" are not an object", dg);
	*ret_mt = mt;
	memcpy(digest, dg, OCI_DIGEST_STRLEN);
	*ret_size = size;
	return 0;
}

static const char *annotation(json_t *desc, const char *key)
{
	json_t *v = json_object_get(json_object_get(desc, "annotations"), key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int parse_disk_annotations(json_t *desc, struct oci_layer *l, bool vetu, char **ret_err)
{
	const char *size_key = vetu ? OCI_ANN_VETU_UNCOMPRESSED_SIZE : OCI_ANN_UNCOMPRESSED_SIZE;
	const char *size_s = annotation(desc, size_key), *dg = NULL;
	if (vetu) {
		dg = annotation(desc, OCI_ANN_VETU_UNCOMPRESSED_DIGEST);
		if (!size_s) {
			size_key = OCI_ANN_UNCOMPRESSED_SIZE;
			size_s = annotation(desc, size_key);
		}
	} else {
		dg = annotation(desc, OCI_ANN_UNCOMPRESSED_DIGEST);
	}
	if (!size_s || parse_decimal(size_s, OCI_BLOB_SIZE_MAX, &l->uncompressed_size) < 0)
		return fail(ret_err, "disk layer \"%s\" has a missing or invalid \"%s\" annotation",
			    l->digest, size_key);
	if (dg || !vetu) {
		if (!dg || !oci_digest_valid(dg))
			return fail(
			    ret_err,
			    "disk layer \"%s\" has a missing or invalid uncompressed digest "
			    "annotation (\"%s\")",
			    l->digest,
			    vetu ? OCI_ANN_VETU_UNCOMPRESSED_DIGEST : OCI_ANN_UNCOMPRESSED_DIGEST);
		memcpy(l->uncompressed_digest, dg, OCI_DIGEST_STRLEN);
	}
	l->has_uncompressed = true;
	return 0;
}

/* Which manifests a layer type belongs to: Tart's, Vetu's, or either (FAMILY_ANY). */
enum { FAMILY_TART = 0, FAMILY_VETU = 1, FAMILY_ANY = 2 };

/*
 * The layer kinds: media type, family and what parsing expects. Kernel and initramfs travel
 * with Vetu's media types in Tart images too (a direct-boot VM pushed from here); the state is
 * ours. Tart and Vetu pick their layers by media type, so they skip what they do not know.
 */
static const struct {
	const char *mt;
	int family;
	enum oci_layer_kind kind;
} layer_types[] = {
    {OCI_MT_TART_CONFIG, FAMILY_TART, OCI_LAYER_CONFIG},
    {OCI_MT_TART_DISK, FAMILY_TART, OCI_LAYER_DISK},
    {OCI_MT_TART_NVRAM, FAMILY_TART, OCI_LAYER_NVRAM},
    {OCI_MT_VETU_CONFIG, FAMILY_VETU, OCI_LAYER_CONFIG},
    {OCI_MT_VETU_DISK, FAMILY_VETU, OCI_LAYER_DISK},
    {OCI_MT_VETU_KERNEL, FAMILY_ANY, OCI_LAYER_KERNEL},
    {OCI_MT_VETU_INITRAMFS, FAMILY_ANY, OCI_LAYER_INITRAMFS},
    {OCI_MT_STATE, FAMILY_ANY, OCI_LAYER_STATE},
};

static int copy_annotation(json_t *desc, const char *key, char *dst, size_t size, bool digest,
			   const struct oci_layer *l, char **ret_err)
{
	const char *v = annotation(desc, key);
	if (!v || !*v || strlen(v) >= size || (digest && !oci_digest_valid(v)))
		return fail(ret_err,
			    "state layer \"%s\" has a missing or invalid \"%s\" annotation",
			    l->digest, key);
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return fail(ret_err, "state layer \"%s\": \"%s\" holds control characters",
				    l->digest, key);
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static int parse_state_annotations(json_t *desc, struct oci_layer *l, char **ret_err)
{
	struct oci_state_meta *s = &l->state;
	int r =
	    copy_annotation(desc, OCI_ANN_STATE_ARCH, s->arch, sizeof(s->arch), false, l, ret_err);
	if (r >= 0)
		r = copy_annotation(desc, OCI_ANN_STATE_QEMU, s->qemu_version,
				    sizeof(s->qemu_version), false, l, ret_err);
	if (r >= 0)
		r = copy_annotation(desc, OCI_ANN_STATE_MACHINE, s->machine, sizeof(s->machine),
				    false, l, ret_err);
	if (r >= 0)
		r = copy_annotation(desc, OCI_ANN_STATE_DEVICES, s->devices_digest,
				    sizeof(s->devices_digest), true, l, ret_err);
	if (r >= 0)
		r = copy_annotation(desc, OCI_ANN_STATE_DISK, s->disk_digest,
				    sizeof(s->disk_digest), true, l, ret_err);
	if (r >= 0)
		r = copy_annotation(desc, OCI_ANN_STATE_STREAM, s->stream_digest,
				    sizeof(s->stream_digest), true, l, ret_err);
	if (r < 0)
		return r;
	const char *mem = annotation(desc, OCI_ANN_STATE_MEMORY);
	if (!mem || parse_decimal(mem, OCI_DISK_SIZE_MAX, &s->memory_size) < 0)
		return fail(ret_err,
			    "state layer \"%s\" has a missing or invalid \"%s\" annotation",
			    l->digest, OCI_ANN_STATE_MEMORY);
	return 0;
}

static int parse_layers(json_t *layers, struct oci_manifest *m, char **ret_err)
{
	size_t n = json_array_size(layers);
	if (!json_is_array(layers) || n == 0)
		return fail(ret_err, "manifest has no layers");
	if (n > OCI_MANIFEST_LAYERS_MAX)
		return fail(ret_err, "manifest has %zu layers, more than %d", n,
			    OCI_MANIFEST_LAYERS_MAX);
	m->layers = xcalloc(n, sizeof(*m->layers));
	size_t counts[OCI_LAYER_KINDS] = {0};
	int family = -1;
	const char *disk_name = NULL;
	for (size_t i = 0; i < n; i++) {
		json_t *desc = json_array_get(layers, i);
		struct oci_layer *l = &m->layers[i];
		const char *mt;
		int r = parse_descriptor(desc, &mt, l->digest, &l->size, ret_err);
		if (r < 0)
			return r;
		if (streq(mt, OCI_MT_TART_DISK_V1)) {
			if (ret_err)
				*ret_err = xstrdup(
				    "Pulling OCI images with legacy disk media type "
				    "\"" OCI_MT_TART_DISK_V1 "\" is no longer supported, please "
				    "re-push the image using a current Tart version");
			return -EPROTONOSUPPORT;
		}
		size_t t = 0;
		while (t < ARRAY_SIZE(layer_types) && !streq(layer_types[t].mt, mt))
			t++;
		if (t == ARRAY_SIZE(layer_types))
			return fail(ret_err, "unsupported layer media type \"%s\"", mt);
		if (layer_types[t].family != FAMILY_ANY) {
			if (family >= 0 && family != layer_types[t].family)
				return fail(ret_err,
					    "manifest mixes Tart and Vetu layer media types");
			family = layer_types[t].family;
		}
		l->kind = layer_types[t].kind;
		counts[l->kind]++;
		if (l->size > OCI_BLOB_SIZE_MAX)
			return fail(ret_err, "layer \"%s\" is too large (%" PRIu64 " bytes)",
				    l->digest, l->size);
		bool boot = l->kind == OCI_LAYER_KERNEL || l->kind == OCI_LAYER_INITRAMFS;
		if (!oci_layer_is_chunked(l->kind) &&
		    l->size > (boot ? OCI_BOOT_BLOB_MAX : OCI_SMALL_BLOB_MAX))
			return fail(ret_err, "%s layer \"%s\" is too large (%" PRIu64 " bytes)", mt,
				    l->digest, l->size);
		if (l->kind == OCI_LAYER_DISK) {
			r = parse_disk_annotations(desc, l, family, ret_err);
			if (r < 0)
				return r;
			/* Vetu names each layer's disk; we keep one disk.img */
			const char *name = annotation(desc, OCI_ANN_VETU_NAME);
			if (family && name && disk_name && !streq(name, disk_name))
				return fail(ret_err,
					    "images with several disks (\"%s\", \"%s\") are not "
					    "supported",
					    disk_name, name);
			if (name)
				disk_name = name;
		} else if (l->kind == OCI_LAYER_STATE) {
			r = parse_disk_annotations(desc, l, false, ret_err);
			if (r >= 0)
				r = parse_state_annotations(desc, l, ret_err);
			if (r < 0)
				return r;
			const struct oci_layer *first = oci_manifest_find(m, OCI_LAYER_STATE);
			if (first && first != l &&
			    memcmp(&first->state, &l->state, sizeof(l->state)))
				return fail(ret_err, "the state layers disagree about the state");
		}
		m->nlayers++;
	}
	m->vetu = family == FAMILY_VETU;
	if (counts[OCI_LAYER_CONFIG] != 1)
		return fail(ret_err, "manifest must have exactly one config layer, it has %zu",
			    counts[OCI_LAYER_CONFIG]);
	if (!m->vetu && counts[OCI_LAYER_NVRAM] != 1)
		return fail(ret_err, "manifest must have exactly one NVRAM layer, it has %zu",
			    counts[OCI_LAYER_NVRAM]);
	if (counts[OCI_LAYER_KERNEL] > 1 || counts[OCI_LAYER_INITRAMFS] > 1)
		return fail(ret_err, "manifest has more than one kernel or initramfs layer");
	if (counts[OCI_LAYER_DISK] == 0)
		return fail(ret_err, "manifest has no disk layers");
	return 0;
}

int oci_manifest_parse(const char *buf, size_t len, struct oci_manifest *ret, char **ret_err)
{
	if (len > OCI_MANIFEST_MAX)
		return fail(ret_err, "manifest is larger than %u bytes", OCI_MANIFEST_MAX);
	_cleanup_json_ json_t *j = NULL;
	if (json_parse_buf(buf, len, &j) < 0 || !json_is_object(j))
		return fail(ret_err, "manifest is not a JSON object");
	uint64_t schema;
	if (json_get_u64(j, "schemaVersion", &schema) < 0 || schema != 2)
		return fail(ret_err, "manifest \"schemaVersion\" is not 2");
	const char *mt;
	if (json_get_string(j, "mediaType", &mt) == 0 && !streq(mt, OCI_MT_MANIFEST))
		return fail(ret_err, "unsupported manifest media type \"%s\"", mt);
	struct oci_manifest m = {0};
	const char *cmt;
	int r = parse_descriptor(json_object_get(j, "config"), &cmt, m.config_digest,
				 &m.config_size, ret_err);
	if (r < 0)
		return r;
	r = parse_layers(json_object_get(j, "layers"), &m, ret_err);
	if (r < 0)
		goto fail;
	uint64_t sum = 0;
	for (size_t i = 0; i < m.nlayers; i++) {
		if (m.layers[i].kind != OCI_LAYER_DISK)
			continue;
		sum += m.layers[i].uncompressed_size;
		if (sum > OCI_DISK_SIZE_MAX) {
			r = fail(ret_err, "disk is larger than %llu bytes", OCI_DISK_SIZE_MAX);
			goto fail;
		}
	}
	json_t *ann = json_object_get(j, "annotations");
	if (ann && !json_is_object(ann) && !json_is_null(ann)) {
		r = fail(ret_err, "manifest annotations are not an object");
		goto fail;
	}
	json_t *v = json_object_get(ann, OCI_ANN_DISK_SIZE);
	if (v) {
		if (!json_is_string(v) ||
		    parse_decimal(json_string_value(v), OCI_DISK_SIZE_MAX, &m.disk_size) < 0) {
			r = fail(ret_err, "invalid \"%s\" annotation", OCI_ANN_DISK_SIZE);
			goto fail;
		}
		m.has_disk_size = true;
		if (!m.vetu && m.disk_size != sum) {
			r = fail(ret_err,
				 "\"%s\" is %" PRIu64 " but the disk layers add up to %" PRIu64,
				 OCI_ANN_DISK_SIZE, m.disk_size, sum);
			goto fail;
		}
	}
	v = json_object_get(ann, OCI_ANN_UPLOAD_TIME);
	if (json_is_string(v) && strlen(json_string_value(v)) < sizeof(m.upload_time))
		strcpy(m.upload_time, json_string_value(v));
	*ret = m;
	return 0;
fail:
	oci_manifest_release(&m);
	return r;
}

const struct oci_layer *oci_manifest_find(const struct oci_manifest *m, enum oci_layer_kind kind)
{
	for (size_t i = 0; i < m->nlayers; i++)
		if (m->layers[i].kind == kind)
			return &m->layers[i];
	return NULL;
}

uint64_t oci_manifest_kind_compressed(const struct oci_manifest *m, enum oci_layer_kind kind)
{
	uint64_t s = 0;
	for (size_t i = 0; i < m->nlayers; i++)
		if (m->layers[i].kind == kind)
			s += m->layers[i].size;
	return s;
}

uint64_t oci_manifest_kind_uncompressed(const struct oci_manifest *m, enum oci_layer_kind kind)
{
	uint64_t s = 0;
	for (size_t i = 0; i < m->nlayers; i++)
		if (m->layers[i].kind == kind)
			s += m->layers[i].uncompressed_size;
	return s;
}

uint64_t oci_manifest_disk_compressed(const struct oci_manifest *m)
{
	return oci_manifest_kind_compressed(m, OCI_LAYER_DISK);
}

uint64_t oci_manifest_disk_uncompressed(const struct oci_manifest *m)
{
	return oci_manifest_kind_uncompressed(m, OCI_LAYER_DISK);
}

static json_t *descriptor(const char *mt, const char *digest, uint64_t size, json_t *ann)
{
	json_t *d = json_object();
	if (ann)
		json_object_set_new(d, "annotations", ann);
	json_object_set_new(d, "digest", json_string(digest));
	json_object_set_new(d, "mediaType", json_string(mt));
	json_object_set_new(d, "size", json_integer((json_int_t)size));
	return d;
}

static const char *tart_media_type(enum oci_layer_kind k)
{
	switch (k) {
	case OCI_LAYER_CONFIG:
		return OCI_MT_TART_CONFIG;
	case OCI_LAYER_DISK:
		return OCI_MT_TART_DISK;
	case OCI_LAYER_NVRAM:
		return OCI_MT_TART_NVRAM;
	case OCI_LAYER_KERNEL:
		return OCI_MT_VETU_KERNEL;
	case OCI_LAYER_INITRAMFS:
		return OCI_MT_VETU_INITRAMFS;
	case OCI_LAYER_STATE:
		return OCI_MT_STATE;
	case OCI_LAYER_KINDS:
		break;
	}
	return "";
}

static void state_annotations(const struct oci_state_meta *s, json_t *ann)
{
	char n[24];
	snprintf(n, sizeof(n), "%" PRIu64, s->memory_size);
	json_object_set_new(ann, OCI_ANN_STATE_ARCH, json_string(s->arch));
	json_object_set_new(ann, OCI_ANN_STATE_QEMU, json_string(s->qemu_version));
	json_object_set_new(ann, OCI_ANN_STATE_MACHINE, json_string(s->machine));
	json_object_set_new(ann, OCI_ANN_STATE_MEMORY, json_string(n));
	json_object_set_new(ann, OCI_ANN_STATE_DEVICES, json_string(s->devices_digest));
	json_object_set_new(ann, OCI_ANN_STATE_DISK, json_string(s->disk_digest));
	json_object_set_new(ann, OCI_ANN_STATE_STREAM, json_string(s->stream_digest));
}

void oci_manifest_build(const struct oci_manifest *m, struct strbuf *out)
{
	_cleanup_json_ json_t *j = json_object();
	json_t *layers = json_array();
	for (size_t i = 0; i < m->nlayers; i++) {
		const struct oci_layer *l = &m->layers[i];
		json_t *ann = json_object();
		if (oci_layer_is_chunked(l->kind) && l->has_uncompressed) {
			char n[24];
			snprintf(n, sizeof(n), "%" PRIu64, l->uncompressed_size);
			json_object_set_new(ann, OCI_ANN_UNCOMPRESSED_SIZE, json_string(n));
			json_object_set_new(ann, OCI_ANN_UNCOMPRESSED_DIGEST,
					    json_string(l->uncompressed_digest));
		}
		if (l->kind == OCI_LAYER_STATE)
			state_annotations(&l->state, ann);
		json_array_append_new(
		    layers, descriptor(tart_media_type(l->kind), l->digest, l->size, ann));
	}
	json_t *ann = json_object();
	char n[24];
	snprintf(n, sizeof(n), "%" PRIu64, m->disk_size);
	json_object_set_new(ann, OCI_ANN_DISK_SIZE, json_string(n));
	char now[32];
	if (m->upload_time[0]) {
		snprintf(now, sizeof(now), "%s", m->upload_time);
	} else {
		time_t t = time(NULL);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	json_object_set_new(ann, OCI_ANN_UPLOAD_TIME, json_string(now));
	json_object_set_new(j, "annotations", ann);
	json_object_set_new(
	    j, "config", descriptor(OCI_MT_IMAGE_CONFIG, m->config_digest, m->config_size, NULL));
	json_object_set_new(j, "layers", layers);
	json_object_set_new(j, "mediaType", json_string(OCI_MT_MANIFEST));
	json_object_set_new(j, "schemaVersion", json_integer(2));
	json_dump_swift(j, JSON_SWIFT_SORTED, out);
}

void oci_config_stub_build(const char *arch, const char *os, const char *disk_format,
			   char *const *labels, size_t nlabels, struct strbuf *out)
{
	_cleanup_json_ json_t *j = json_object();
	json_t *lab = json_object();
	json_object_set_new(lab, OCI_LABEL_DISK_FORMAT, json_string(disk_format));
	for (size_t i = 0; i < nlabels; i++) {
		const char *eq = strchr(labels[i], '=');
		_cleanup_free_ char *k =
		    eq ? xstrndup(labels[i], (size_t)(eq - labels[i])) : xstrdup(labels[i]);
		if (!*k)
			continue;
		json_object_set_new(lab, k, json_string(eq ? eq + 1 : ""));
	}
	json_t *cfg = json_object();
	json_object_set_new(cfg, "Labels", lab);
	json_object_set_new(j, "architecture", json_string(arch));
	json_object_set_new(j, "config", cfg);
	json_object_set_new(j, "os", json_string(os));
	json_dump_swift(j, JSON_SWIFT_SORTED, out);
}
