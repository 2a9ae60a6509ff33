/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Tart's OCI image manifest (tart-facts §4.2) and Vetu's: build it byte-for-byte as Tart does
 * (Swift JSONEncoder, sorted keys, compact, "\/" escapes) and parse untrusted manifests
 * defensively. Non-logging: parse failures return -EBADMSG (or -EPROTONOSUPPORT for the
 * legacy disk.v1 format) with a human message in *ret_err.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oci/digest.h"
#include "util/strbuf.h"

#define OCI_MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_MT_IMAGE_CONFIG "application/vnd.oci.image.config.v1+json"
#define OCI_MT_TART_CONFIG "application/vnd.cirruslabs.tart.config.v1"
#define OCI_MT_TART_DISK_V1 "application/vnd.cirruslabs.tart.disk.v1"
#define OCI_MT_TART_DISK "application/vnd.cirruslabs.tart.disk.v2"
#define OCI_MT_TART_NVRAM "application/vnd.cirruslabs.tart.nvram.v1"
#define OCI_MT_VETU_CONFIG "application/vnd.cirruslabs.vetu.config.v1"
#define OCI_MT_VETU_KERNEL "application/vnd.cirruslabs.vetu.kernel.v1"
#define OCI_MT_VETU_INITRAMFS "application/vnd.cirruslabs.vetu.initramfs.v1"
#define OCI_MT_VETU_DISK "application/vnd.cirruslabs.vetu.disk.v1"
/*
 * Ours: a suspended VM's saved state (vm/state.h), chunked and compressed like Tart's disk
 * (Apple LZ4, 512 MiB chunks, Tart's per-chunk size and digest annotations) plus what the
 * state needs (OCI_ANN_STATE_*). Tart and Vetu select layers by media type and skip it.
 */
#define OCI_MT_STATE "application/vnd.tart-for-linux.vm-state.v1"
/* The file of a VM directory that state layers are made from and pulled into. */
#define OCI_STATE_FILE "state.vzvmsave"

#define OCI_ANN_UNCOMPRESSED_SIZE "org.cirruslabs.tart.uncompressed-size"
#define OCI_ANN_UNCOMPRESSED_DIGEST "org.cirruslabs.tart.uncompressed-content-digest"
#define OCI_ANN_DISK_SIZE "org.cirruslabs.tart.uncompressed-disk-size"
#define OCI_ANN_UPLOAD_TIME "org.cirruslabs.tart.upload-time"
#define OCI_LABEL_DISK_FORMAT "org.cirruslabs.tart.disk.format"
#define OCI_ANN_VETU_NAME "org.cirruslabs.vetu.name"
#define OCI_ANN_VETU_UNCOMPRESSED_SIZE "org.cirruslabs.vetu.uncompressed-size"
#define OCI_ANN_VETU_UNCOMPRESSED_DIGEST "org.cirruslabs.vetu.uncompressed-digest"
#define OCI_ANN_STATE_ARCH "tart-for-linux.state.arch"
#define OCI_ANN_STATE_QEMU "tart-for-linux.state.qemu-version"
#define OCI_ANN_STATE_MACHINE "tart-for-linux.state.machine"
#define OCI_ANN_STATE_MEMORY "tart-for-linux.state.memory-size"
#define OCI_ANN_STATE_DEVICES "tart-for-linux.state.devices-digest"
#define OCI_ANN_STATE_DISK "tart-for-linux.state.disk-digest"
#define OCI_ANN_STATE_STREAM "tart-for-linux.state.stream-digest"

/* Parse limits: a manifest larger than this is refused before parsing. */
#define OCI_MANIFEST_MAX (4u << 20)
#define OCI_MANIFEST_LAYERS_MAX 8192
#define OCI_BLOB_SIZE_MAX (64ULL << 30)	 /* one compressed layer, and one uncompressed chunk */
#define OCI_SMALL_BLOB_MAX (64ULL << 20) /* config.json, nvram.bin, OCI config */
#define OCI_BOOT_BLOB_MAX (1ULL << 30)	 /* Vetu kernel and initramfs */
#define OCI_DISK_SIZE_MAX (1ULL << 46)	 /* 64 TiB */

/* Tart's push chunk: 512 MiB of uncompressed disk per layer. */
#define OCI_DISK_CHUNK (512ULL << 20)

enum oci_layer_kind {
	OCI_LAYER_CONFIG,
	OCI_LAYER_DISK,
	OCI_LAYER_NVRAM,
	OCI_LAYER_KERNEL,
	OCI_LAYER_INITRAMFS,
	OCI_LAYER_STATE,
	OCI_LAYER_KINDS
};

/* What a state layer says about the state it is a chunk of (the same on every chunk). */
struct oci_state_meta {
	char arch[16];
	char qemu_version[64];
	char machine[64];
	uint64_t memory_size;
	char devices_digest[OCI_DIGEST_STRLEN];
	char disk_digest[OCI_DIGEST_STRLEN];
	char stream_digest[OCI_DIGEST_STRLEN];
};

struct oci_layer {
	enum oci_layer_kind kind;
	char digest[OCI_DIGEST_STRLEN];
	uint64_t size;
	/*
	 * Disk and state layers only. Tart layers always have both; Vetu layers always have the
	 * size (org.cirruslabs.vetu.uncompressed-size) and may lack the digest ("" then).
	 */
	bool has_uncompressed;
	uint64_t uncompressed_size;
	char uncompressed_digest[OCI_DIGEST_STRLEN];
	struct oci_state_meta state; /* state layers only */
};

/* Chunked layers: the disk and the saved state are cut and compressed the same way. */
static inline bool oci_layer_is_chunked(enum oci_layer_kind k)
{
	return k == OCI_LAYER_DISK || k == OCI_LAYER_STATE;
}

struct oci_manifest {
	bool vetu;
	char config_digest[OCI_DIGEST_STRLEN]; /* the OCI config stub descriptor */
	uint64_t config_size;
	struct oci_layer *layers;
	size_t nlayers;
	bool has_disk_size;
	uint64_t disk_size;
	char upload_time[32]; /* "" when absent */
};

void oci_manifest_release(struct oci_manifest *m);

/* Parse untrusted bytes. Disk layers keep their order; offsets follow from it. */
int oci_manifest_parse(const char *buf, size_t len, struct oci_manifest *ret, char **ret_err);

/* The single config / nvram / kernel / initramfs layer, or the first state chunk; NULL when absent.
 */
const struct oci_layer *oci_manifest_find(const struct oci_manifest *m, enum oci_layer_kind kind);
/* Σ compressed sizes and Σ uncompressed sizes of the disk layers. */
uint64_t oci_manifest_disk_compressed(const struct oci_manifest *m);
uint64_t oci_manifest_disk_uncompressed(const struct oci_manifest *m);
/* The same for the layers of one kind. */
uint64_t oci_manifest_kind_compressed(const struct oci_manifest *m, enum oci_layer_kind kind);
uint64_t oci_manifest_kind_uncompressed(const struct oci_manifest *m, enum oci_layer_kind kind);

/*
 * Serialize a Tart manifest (m->vetu false) exactly as Tart does. upload_time "" means now.
 * Appends to out.
 */
void oci_manifest_build(const struct oci_manifest *m, struct strbuf *out);

/*
 * The OCI config stub: {"architecture":..,"config":{"Labels":{..}},"os":..} with
 * org.cirruslabs.tart.disk.format = disk_format plus the "key=value" labels (empty keys
 * skipped, a value may be empty; a later duplicate key wins).
 */
void oci_config_stub_build(const char *arch, const char *os, const char *disk_format,
			   char *const *labels, size_t nlabels, struct strbuf *out);
