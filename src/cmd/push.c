// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "oci/manifest.h"
#include "oci/push.h"
#include "oci/registry.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/strvec.h"
#include "vm/config.h"
#include "vm/dir.h"
#include "vm/home.h"
#include "vm/prune.h"
#include "vm/pull.h"
#include "vm/state.h"
#include "vm/storage.h"

static const struct cmd_help help = {
    .name = "push",
    .overview = "Push a VM to a registry",
    .usage = "push <local-name> <remote-name> ... [--insecure] [--concurrency <concurrency>] "
	     "[--chunk-size <chunk-size>] [--label <label> ...] [--populate-cache]",
    .details =
	"ARGUMENTS:\n"
	"  <local-name>            local or remote VM name\n"
	"  <remote-name>           remote VM name(s)\n\n"
	"OPTIONS:\n"
	"  --insecure              connect to the OCI registry via insecure HTTP protocol\n"
	"  --concurrency <concurrency>\n"
	"                          network concurrency to use when pushing a local VM to the "
	"OCI-compatible registry (default: 4)\n"
	"  --chunk-size <chunk-size>\n"
	"                          chunk size in MB if registry supports chunked uploads "
	"(default: 0)\n"
	"                          By default monolithic method is used for uploading blobs to "
	"the registry but some registries support a more efficient chunked method.\n"
	"                          For example, AWS Elastic Container Registry supports only "
	"chunks larger than 5MB but GitHub Container Registry supports only chunks smaller "
	"than 4MB. Google Container Registry on the other hand doesn't support chunked uploads "
	"at all.\n"
	"  --label <label>         additional metadata to attach to the OCI image configuration "
	"in key=value format\n"
	"  --populate-cache        cache pushed images locally\n"
	"  -h, --help              Show help information.\n",
};

struct push_args {
	bool insecure, populate;
	uint64_t concurrency, chunk_mb;
	struct strvec labels;
};

/* "{:a,:b}" or ":a" for Tart's "pushing ... to host/ns<tags>..." line. */
static char *tags_display(char *const *tags, size_t n)
{
	if (n == 1)
		return xasprintf(":%s", tags[0]);
	struct strvec sv = STRVEC_INIT;
	for (size_t i = 0; i < n; i++)
		strvec_pushf(&sv, ":%s", tags[i]);
	_cleanup_free_ char *j = strvec_join(&sv, ",");
	strvec_clear(&sv);
	return xasprintf("{%s}", j);
}

/*
 * Source is a cached image of the destination repository: its manifest is there already, so
 * only re-tag it (Tart's lightweight push). Returns 1 when done that way.
 */
static int try_lightweight(struct oci_registry *reg, const struct vm_dir *d,
			   const struct oci_ref *src, const struct oci_ref *dst, char *const *tags,
			   size_t ntags, struct strbuf *manifest, char digest[OCI_DIGEST_STRLEN])
{
	if (!streq(src->host, dst->host) || !streq(src->namespace, dst->namespace))
		return 0;
	_cleanup_free_ char *mp = path_join(d->path, "manifest.json");
	if (fs_read_full(mp, OCI_MANIFEST_MAX, manifest) < 0)
		return 0;
	oci_digest_buf(manifest->buf, manifest->len, digest);
	int r = oci_push_tags(reg, manifest, tags, ntags);
	return r < 0 ? r : 1;
}

static int push_group(const struct vm_dir *d, const struct vm_config *cfg,
		      const struct oci_ref *src_ref, const struct oci_ref *dst, char *const *tags,
		      size_t ntags, const struct push_args *a)
{
	_cleanup_free_ char *disp = tags_display(tags, ntags);
	log_info("pushing %s to %s/%s%s...", d->name, dst->host, dst->namespace, disp);
	struct oci_registry_options ro = {.insecure = a->insecure};
	struct oci_registry *reg = NULL;
	int r = oci_registry_new(dst->host, dst->namespace, &ro, &reg);
	if (r < 0)
		return r;
	_cleanup_strbuf_ struct strbuf manifest = STRBUF_INIT;
	char digest[OCI_DIGEST_STRLEN];
	r = src_ref ? try_lightweight(reg, d, src_ref, dst, tags, ntags, &manifest, digest) : 0;
	if (r == 0) {
		_cleanup_free_ char *tmp = home_path("tmp");
		struct oci_push_options po = {
		    .concurrency = (unsigned)a->concurrency,
		    .upload_chunk = a->chunk_mb * 1000000ULL,
		    .tmp_dir = tmp,
		    .mount_from = src_ref && streq(src_ref->host, dst->host) &&
					  !streq(src_ref->namespace, dst->namespace)
				      ? src_ref->namespace
				      : NULL,
		    .arch = cfg->arch,
		    .os = cfg->os,
		    .disk_format = cfg->disk_format[0] ? cfg->disk_format : "raw",
		    .labels = a->labels.v,
		    .nlabels = a->labels.nr,
		    .state_hook = vm_state_push_hook,
		    .state_userdata = d->path,
		};
		r = oci_push_blobs(reg, d->path, &po, &manifest, digest);
		if (r >= 0)
			r = oci_push_tags(reg, &manifest, tags, ntags);
	}
	oci_registry_free(reg);
	if (r < 0 || !a->populate || src_ref)
		return r < 0 ? r : 0;
	struct oci_ref ref = *dst;
	ref.digest = NULL;
	ref.tag = tags[0];
	r = vm_cache_populate(&ref, digest, d->path, &manifest);
	for (size_t i = 1; i < ntags && r >= 0; i++) {
		ref.tag = tags[i];
		r = vm_cache_link(&ref, digest);
	}
	return r;
}

static int push_all(const struct vm_dir *d, const struct oci_ref *src_ref, char **names, int nnames,
		    const struct push_args *a)
{
	struct vm_config cfg = {0};
	int r = vm_dir_load_config(d, &cfg);
	if (r < 0)
		return r;
	struct oci_ref *refs = xcalloc((size_t)nnames, sizeof(*refs));
	bool *done = xcalloc((size_t)nnames, sizeof(*done));
	for (int i = 0; i < nnames && r >= 0; i++) {
		_cleanup_free_ char *err = NULL;
		if (oci_ref_parse(names[i], &refs[i], &err) < 0) {
			log_error("failed to parse remote name: %s", err);
			r = -EINVAL;
		} else if (!refs[i].tag) {
			log_error("cannot push to a digest reference \"%s\", use a tag", names[i]);
			r = -EINVAL;
		}
	}
	for (int i = 0; i < nnames && r >= 0; i++) {
		if (done[i])
			continue;
		struct strvec tags = STRVEC_INIT;
		for (int k = i; k < nnames; k++) {
			if (!done[k] && streq(refs[k].host, refs[i].host) &&
			    streq(refs[k].namespace, refs[i].namespace)) {
				strvec_push(&tags, refs[k].tag);
				done[k] = true;
			}
		}
		r = push_group(d, &cfg, src_ref, &refs[i], tags.v, tags.nr, a);
		strvec_clear(&tags);
	}
	for (int i = 0; i < nnames; i++)
		oci_ref_release(&refs[i]);
	free(refs);
	free(done);
	vm_config_release(&cfg);
	return r;
}

enum { ARG_INSECURE = 0x100, ARG_CONCURRENCY, ARG_CHUNK, ARG_LABEL, ARG_POPULATE };

struct push_opts {
	struct push_args a;
	struct strvec *labels;
};

static int on_opt(int c, const char *arg, void *userdata)
{
	struct push_opts *o = userdata;
	switch (c) {
	case ARG_INSECURE:
		o->a.insecure = true;
		return 0;
	case ARG_POPULATE:
		o->a.populate = true;
		return 0;
	case ARG_CONCURRENCY:
		return cmd_parse_concurrency(&help, arg, &o->a.concurrency);
	case ARG_CHUNK:
		return cmd_parse_u64(&help, "--chunk-size", arg, 0, 1ULL << 20, &o->a.chunk_mb);
	case ARG_LABEL:
		strvec_push(o->labels, arg);
		return 0;
	default:
		return CMD_EUSAGE;
	}
}

int cmd_push(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"insecure", no_argument, NULL, ARG_INSECURE},
	    {"concurrency", required_argument, NULL, ARG_CONCURRENCY},
	    {"chunk-size", required_argument, NULL, ARG_CHUNK},
	    {"label", required_argument, NULL, ARG_LABEL},
	    {"populate-cache", no_argument, NULL, ARG_POPULATE},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static const char *const names[] = {"<local-name>", "<remote-name>"};
	static const struct cmd_spec spec = {.help = &help,
					     .longopts = opts,
					     .on_opt = on_opt,
					     .min_args = 2,
					     .max_args = 1024,
					     .arg_names = names};
	_cleanup_(strvec_clearp) struct strvec labels = STRVEC_INIT;
	struct push_opts po = {.a = {.concurrency = 4}, .labels = &labels};
	int a = cmd_parse(&spec, argc, argv, &po);
	if (a <= 0)
		return a;
	po.a.labels = labels; /* borrowed: freed by the cleanup of `labels` */
	const char *src = argv[a];
	_cleanup_vm_dir_ struct vm_dir d = {0};
	int r = vm_storage_open(src, &d);
	if (r >= 0 && vm_dir_running_pid(&d) > 0) {
		log_error("VM \"%s\" is running", src);
		r = -EBUSY;
	}
	if (r >= 0) {
		_cleanup_oci_ref_ struct oci_ref sref = OCI_REF_INIT;
		bool remote_src = oci_ref_parse(src, &sref, NULL) == 0;
		/* a cached source must not be pruned or collected while we read it */
		_cleanup_close_ int use = remote_src ? vm_cache_use(d.path) : -1;
		if (remote_src && use < 0)
			r = log_error_errno(use, "cannot use \"%s\"", src);
		else
			r = push_all(&d, remote_src ? &sref : NULL, argv + a + 1, argc - a - 1,
				     &po.a);
	}
	return r;
}
