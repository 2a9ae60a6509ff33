// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci/manifest.h"
#include "util/alloc.h"
#include "util/strbuf.h"

#define D(c)                                                                                       \
	"sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
	    c c c c c c c c c c c c c c c c c c c c c c c c

static void fill(char dst[OCI_DIGEST_STRLEN], const char *src)
{
	memcpy(dst, src, OCI_DIGEST_STRLEN);
}

static void sample(struct oci_manifest *m)
{
	memset(m, 0, sizeof(*m));
	fill(m->config_digest, D("c"));
	m->config_size = 99;
	m->nlayers = 4;
	m->layers = xcalloc(4, sizeof(*m->layers));
	m->layers[0] = (struct oci_layer){.kind = OCI_LAYER_CONFIG, .size = 279};
	fill(m->layers[0].digest, D("1"));
	m->layers[1] = (struct oci_layer){.kind = OCI_LAYER_DISK,
					  .size = 1000,
					  .has_uncompressed = true,
					  .uncompressed_size = 536870912};
	fill(m->layers[1].digest, D("2"));
	fill(m->layers[1].uncompressed_digest, D("a"));
	m->layers[2] = (struct oci_layer){
	    .kind = OCI_LAYER_DISK, .size = 10, .has_uncompressed = true, .uncompressed_size = 5};
	fill(m->layers[2].digest, D("3"));
	fill(m->layers[2].uncompressed_digest, D("b"));
	m->layers[3] = (struct oci_layer){.kind = OCI_LAYER_NVRAM, .size = 540672};
	fill(m->layers[3].digest, D("4"));
	m->disk_size = 536870917;
	strcpy(m->upload_time, "2023-11-28T12:18:38Z");
}

static const char expected[] =
    "{\"annotations\":{\"org.cirruslabs.tart.uncompressed-disk-size\":\"536870917\","
    "\"org.cirruslabs.tart.upload-time\":\"2023-11-28T12:18:38Z\"},"
    "\"config\":{\"digest\":\"" D(
	"c") "\",\"mediaType\":\"application\\/vnd.oci.image.config.v1+json\",\"size\":99},"
	     "\"layers\":["
	     "{\"annotations\":{},\"digest\":\"" D(
		 "1") "\",\"mediaType\":\"application\\/"
		      "vnd.cirruslabs.tart.config.v1\",\"size\":279},"
		      "{\"annotations\":{\"org.cirruslabs.tart.uncompressed-content-digest\":\"" D(
			  "a") "\","
			       "\"org.cirruslabs.tart.uncompressed-size\":\"536870912\"},"
			       "\"digest\":\"" D(
				   "2") "\","
					"\"mediaType\":\"application\\/"
					"vnd.cirruslabs.tart.disk.v2\",\"size\":1000},"
					"{\"annotations\":{\"org.cirruslabs.tart.uncompressed-"
					"content-digest\":\"" D(
					    "b") "\","
						 "\"org.cirruslabs.tart.uncompressed-size\":\"5\"},"
						 "\"digest\":\"" D(
						     "3") "\","
							  "\"mediaType\":\"application\\/"
							  "vnd.cirruslabs.tart.disk.v2\",\"size\":"
							  "10},"
							  "{\"annotations\":{},\"digest\":\"" D(
							      "4") "\",\"mediaType\":"
								   "\"application\\/"
								   "vnd.cirruslabs.tart.nvram.v1\","
								   "\"size\":540672}"
								   "],\"mediaType\":"
								   "\"application\\/"
								   "vnd.oci.image.manifest.v1+"
								   "json\",\"schemaVersion\":2}";

static void test_build_exact(void **state)
{
	(void)state;
	struct oci_manifest m;
	sample(&m);
	struct strbuf sb = STRBUF_INIT;
	oci_manifest_build(&m, &sb);
	assert_string_equal(sb.buf, expected);
	struct oci_manifest p;
	char *err = NULL;
	assert_int_equal(oci_manifest_parse(sb.buf, sb.len, &p, &err), 0);
	assert_int_equal(p.nlayers, 4);
	assert_false(p.vetu);
	assert_true(p.has_disk_size);
	assert_int_equal(p.disk_size, 536870917);
	assert_int_equal(oci_manifest_disk_uncompressed(&p), 536870917);
	assert_int_equal(oci_manifest_disk_compressed(&p), 1010);
	assert_string_equal(p.layers[2].uncompressed_digest, D("b"));
	assert_string_equal(oci_manifest_find(&p, OCI_LAYER_NVRAM)->digest, D("4"));
	assert_string_equal(p.upload_time, "2023-11-28T12:18:38Z");
	oci_manifest_release(&p);
	oci_manifest_release(&m);
	strbuf_release(&sb);
}

static void test_config_stub(void **state)
{
	(void)state;
	char b[] = "b=2", s[] = "=skipped", a0[] = "a=", a1[] = "a=1", ne[] = "noequals";
	char *labels[] = {b, s, a0, a1, ne};
	struct strbuf sb = STRBUF_INIT;
	oci_config_stub_build("amd64", "linux", "raw", labels, 5, &sb);
	assert_string_equal(
	    sb.buf,
	    "{\"architecture\":\"amd64\",\"config\":{\"Labels\":{\"a\":\"1\",\"b\":\"2\","
	    "\"noequals\":\"\",\"org.cirruslabs.tart.disk.format\":\"raw\"}},\"os\":\"linux\"}");
	strbuf_release(&sb);
}

/* s with the first occurrence of `from` replaced by `to` (allocated). */
static char *replace_first(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	assert_non_null(p);
	return xasprintf("%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
}

/* Replace the first occurrence of `from` in the sample manifest by `to` and parse. */
static int parse_mutated(const char *from, const char *to, char **ret_err)
{
	char *s = replace_first(expected, from, to);
	struct oci_manifest m;
	int r = oci_manifest_parse(s, strlen(s), &m, ret_err);
	if (r == 0)
		oci_manifest_release(&m);
	free(s);
	return r;
}

static void expect_bad(const char *from, const char *to, int code, const char *needle)
{
	char *err = NULL;
	assert_int_equal(parse_mutated(from, to, &err), code);
	assert_non_null(err);
	if (needle && !strstr(err, needle))
		fail_msg("message '%s' lacks '%s'", err, needle);
	free(err);
}

static void test_hostile(void **state)
{
	(void)state;
	expect_bad("tart.nvram.v1", "tart.whatever.v1", -EBADMSG, "unsupported layer media type");
	expect_bad("tart.nvram.v1", "tart.config.v1", -EBADMSG, "exactly one config");
	expect_bad("tart.disk.v2\",\"size\":1000", "tart.disk.v1\",\"size\":1000", -EPROTONOSUPPORT,
		   "no longer supported");
	expect_bad("\"536870912\"", "\"-1\"", -EBADMSG, "uncompressed-size");
	expect_bad("\"536870912\"", "\"99999999999999999999999\"", -EBADMSG, "uncompressed-size");
	expect_bad("\"536870912\"", "536870912", -EBADMSG, "uncompressed-size");
	expect_bad("\"536870917\"", "\"536870918\"", -EBADMSG, "add up");
	expect_bad("\"536870917\"", "\"1e9\"", -EBADMSG, "uncompressed-disk-size");
	expect_bad(D("2"),
		   "sha512:"
		   "2222",
		   -EBADMSG, "digest");
	expect_bad(D("2"), "sha256:ZZ", -EBADMSG, "digest");
	expect_bad("\"size\":1000", "\"size\":-1000", -EBADMSG, "size");
	expect_bad("\"size\":1000", "\"size\":99999999999999", -EBADMSG, "too large");
	expect_bad("\"size\":540672", "\"size\":999999999", -EBADMSG, "too large");
	expect_bad("\"schemaVersion\":2", "\"schemaVersion\":1", -EBADMSG, "schemaVersion");
	expect_bad("v1+json\",\"schemaVersion\"", "v2+json\",\"schemaVersion\"", -EBADMSG,
		   "media type");
	expect_bad("\"org.cirruslabs.tart.uncompressed-content-digest\":\"" D("a") "\",", "",
		   -EBADMSG, "uncompressed-content-digest");
	char *err = NULL;
	struct oci_manifest m;
	assert_int_equal(oci_manifest_parse("[]", 2, &m, &err), -EBADMSG);
	free(err);
	err = NULL;
	assert_int_equal(oci_manifest_parse("{\"schemaVersion\":", 17, &m, &err), -EBADMSG);
	free(err);
	/* too many layers */
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" D(
			     "c") "\",\"size\":1},\"layers\":[");
	for (int i = 0; i < OCI_MANIFEST_LAYERS_MAX + 1; i++)
		strbuf_putf(&sb,
			    "%s{\"mediaType\":\"" OCI_MT_TART_NVRAM
			    "\",\"digest\":\"" D("4") "\",\"size\":1}",
			    i ? "," : "");
	strbuf_puts(&sb, "]}");
	err = NULL;
	assert_int_equal(oci_manifest_parse(sb.buf, sb.len, &m, &err), -EBADMSG);
	assert_non_null(strstr(err, "layers"));
	free(err);
	strbuf_release(&sb);
}

static void test_vetu(void **state)
{
	(void)state;
	const char *s =
	    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	    "\"config\":{\"mediaType\":\"application/"
	    "vnd.oci.image.config.v1+json\",\"digest\":\"" D(
		"c") "\",\"size\":2},"
		     "\"layers\":[{\"mediaType\":\"" OCI_MT_VETU_CONFIG "\",\"digest\":\"" D(
			 "1") "\",\"size\":20},"
			      "{\"mediaType\":\"" OCI_MT_VETU_KERNEL "\",\"digest\":\"" D(
				  "2") "\",\"size\":20},"
				       "{\"mediaType\":\"" OCI_MT_VETU_INITRAMFS
				       "\",\"digest\":\"" D(
					   "3") "\",\"size\":20},"
						"{\"mediaType\":\"" OCI_MT_VETU_DISK
						"\",\"digest\":\"" D(
						    "4") "\",\"size\":20,"
							 "\"annotations\":{"
							 "\"" OCI_ANN_VETU_UNCOMPRESSED_SIZE
							 "\":\"100\",\"" OCI_ANN_VETU_NAME
							 "\":\"disk.img\"}},"
							 "{\"mediaType\":\"" OCI_MT_VETU_DISK
							 "\",\"digest\":\"" D(
							     "5") "\",\"size\":20,"
								  "\"annotations\":{"
								  "\"" OCI_ANN_VETU_UNCOMPRESSED_SIZE
								  "\":\"50\",\"" OCI_ANN_VETU_NAME
								  "\":\"disk.img\","
								  "\"" OCI_ANN_VETU_UNCOMPRESSED_DIGEST
								  "\":\"" D("a") "\"}}]}";
	struct oci_manifest m;
	char *err = NULL;
	assert_int_equal(oci_manifest_parse(s, strlen(s), &m, &err), 0);
	assert_true(m.vetu);
	assert_non_null(oci_manifest_find(&m, OCI_LAYER_KERNEL));
	assert_null(oci_manifest_find(&m, OCI_LAYER_NVRAM));
	assert_int_equal(oci_manifest_disk_uncompressed(&m), 150);
	assert_string_equal(m.layers[3].uncompressed_digest, "");
	assert_string_equal(m.layers[4].uncompressed_digest, D("a"));
	oci_manifest_release(&m);
	/* two differently named disks, and a disk layer without its size */
	const char *subst[][2] = {{"\"disk.img\"}", "\"other.img\"}"},
				  {OCI_ANN_VETU_UNCOMPRESSED_SIZE "\":\"100\"", "x\":\"1\""}};
	for (size_t i = 0; i < 2; i++) {
		char *bad = replace_first(s, subst[i][0], subst[i][1]);
		err = NULL;
		assert_int_equal(oci_manifest_parse(bad, strlen(bad), &m, &err), -EBADMSG);
		assert_non_null(strstr(err, i == 0 ? "several disks" : "uncompressed-size"));
		free(err);
		free(bad);
	}
	/* Tart and Vetu types do not mix */
	char *mixed = replace_first(s, OCI_MT_VETU_KERNEL, OCI_MT_TART_NVRAM);
	assert_int_equal(oci_manifest_parse(mixed, strlen(mixed), &m, &err), -EBADMSG);
	free(err);
	free(mixed);
}

/* A Tart image with a direct-boot kernel, an initramfs and a saved state: build, parse back. */
static void test_state_and_boot_layers(void **state)
{
	(void)state;
	struct oci_manifest m;
	sample(&m);
	m.layers = xrealloc(m.layers, 8 * sizeof(*m.layers));
	m.layers[4] = (struct oci_layer){.kind = OCI_LAYER_KERNEL, .size = 14190528};
	fill(m.layers[4].digest, D("5"));
	m.layers[5] = (struct oci_layer){.kind = OCI_LAYER_INITRAMFS, .size = 3862749};
	fill(m.layers[5].digest, D("6"));
	for (size_t i = 6; i < 8; i++) {
		struct oci_layer *l = &m.layers[i];
		*l = (struct oci_layer){.kind = OCI_LAYER_STATE,
					.size = 100 + i,
					.has_uncompressed = true,
					.uncompressed_size = i == 6 ? 536870912 : 4096};
		fill(l->digest, i == 6 ? D("7") : D("8"));
		fill(l->uncompressed_digest, i == 6 ? D("d") : D("e"));
		strcpy(l->state.arch, "amd64");
		strcpy(l->state.qemu_version, "7.2.22");
		strcpy(l->state.machine, "pc-q35-7.2");
		l->state.memory_size = 1073741824;
		fill(l->state.devices_digest, D("f"));
		fill(l->state.disk_digest, D("9"));
		fill(l->state.stream_digest, D("0"));
	}
	m.nlayers = 8;
	struct strbuf sb = STRBUF_INIT;
	oci_manifest_build(&m, &sb);
	assert_non_null(strstr(sb.buf, "\"application\\/vnd.cirruslabs.vetu.kernel.v1\""));
	assert_non_null(strstr(sb.buf, "\"application\\/vnd.tart-for-linux.vm-state.v1\""));
	assert_non_null(strstr(sb.buf, "\"tart-for-linux.state.memory-size\":\"1073741824\""));
	struct oci_manifest p;
	char *err = NULL;
	assert_int_equal(oci_manifest_parse(sb.buf, sb.len, &p, &err), 0);
	assert_false(p.vetu);
	assert_int_equal(p.nlayers, 8);
	assert_non_null(oci_manifest_find(&p, OCI_LAYER_KERNEL));
	assert_non_null(oci_manifest_find(&p, OCI_LAYER_INITRAMFS));
	const struct oci_layer *st = oci_manifest_find(&p, OCI_LAYER_STATE);
	assert_ptr_equal(st, &p.layers[6]);
	assert_memory_equal(&st->state, &m.layers[6].state, sizeof(st->state));
	/* the state is not part of the disk */
	assert_int_equal(oci_manifest_disk_uncompressed(&p), 536870917);
	assert_int_equal(oci_manifest_kind_uncompressed(&p, OCI_LAYER_STATE), 536870912 + 4096);
	oci_manifest_release(&p);
	/* state chunks that disagree, a missing state annotation, a bad digest annotation */
	const char *subst[][2] = {
	    {"\"tart-for-linux.state.arch\":\"amd64\"", "\"tart-for-linux.state.arch\":\"arm64\""},
	    {"\"tart-for-linux.state.qemu-version\"", "\"x\""},
	    {"\"tart-for-linux.state.disk-digest\":\"sha256:9",
	     "\"tart-for-linux.state.disk-digest\":\"md5:99"}};
	const char *why[] = {"disagree", "qemu-version", "disk-digest"};
	for (size_t i = 0; i < 3; i++) {
		char *bad = replace_first(sb.buf, subst[i][0], subst[i][1]);
		err = NULL;
		assert_int_equal(oci_manifest_parse(bad, strlen(bad), &p, &err), -EBADMSG);
		assert_non_null(strstr(err, why[i]));
		free(err);
		free(bad);
	}
	strbuf_release(&sb);
	oci_manifest_release(&m);
}

/* Random byte damage to a valid manifest: never a crash; what parses is still sane. */
static void test_mutations(void **state)
{
	(void)state;
	size_t len = strlen(expected);
	uint32_t x = 7;
	for (int iter = 0; iter < 5000; iter++) {
		char *m = xstrdup(expected);
		for (int f = 0; f < 1 + iter % 3; f++) {
			x = x * 1103515245 + 12345;
			size_t pos = (x >> 8) % len;
			x = x * 1103515245 + 12345;
			static const char alphabet[] = "{}[]\",:0123456789-eE.asz\\/ ";
			m[pos] = alphabet[(x >> 16) % sizeof(alphabet)]; /* its NUL too */
		}
		struct oci_manifest p;
		char *err = NULL;
		int r = oci_manifest_parse(m, len, &p, &err);
		if (r == 0) {
			assert_true(p.nlayers >= 3 && p.nlayers <= OCI_MANIFEST_LAYERS_MAX);
			if (p.has_disk_size)
				assert_int_equal(oci_manifest_disk_uncompressed(&p), p.disk_size);
			assert_non_null(oci_manifest_find(&p, OCI_LAYER_CONFIG));
			oci_manifest_release(&p);
		} else {
			assert_non_null(err);
		}
		free(err);
		free(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_build_exact), cmocka_unit_test(test_config_stub),
	    cmocka_unit_test(test_hostile),	cmocka_unit_test(test_vetu),
	    cmocka_unit_test(test_mutations),	cmocka_unit_test(test_state_and_boot_layers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
