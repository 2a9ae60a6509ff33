// SPDX-License-Identifier: Apache-2.0
/*
 * Test-only driver of the OCI registry client (src/oci/registry.h), so integration tests can
 * prove it against real registries, the token server and the fault proxy.
 *
 *   registry-probe [--insecure] [--user U --password P] HOST NAMESPACE COMMAND ARGS...
 *     ping
 *     exists DIGEST                         prints "1 <size>" or "0"
 *     push-blob [--chunk BYTES] [--mount-from REPO] FILE...   (one thread per file)
 *                                           prints "<digest> <file>" per file
 *     pull-blob [--resume] DIGEST=FILE...   (one thread per pair; --resume starts at the
 *                                           file's current size)
 *     put-manifest REF FILE [MEDIA-TYPE]    prints the digest of FILE
 *     get-manifest REF FILE                 writes the body, prints "<media-type> <digest>"
 *
 * Exit 0 on success; on failure the client has logged why and the probe prints
 * "errno=<n>" on stderr and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/registry.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"

static int fail(int r)
{
	fprintf(stderr, "errno=%d\n", -r);
	return 1;
}

static int file_digest(int fd, char ret[7 + 64 + 1])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char buf[1 << 16], out[32];
	unsigned int n = 0;
	ssize_t k;
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	off_t off = 0;
	while ((k = pread(fd, buf, sizeof(buf), off)) > 0) {
		EVP_DigestUpdate(md, buf, (size_t)k);
		off += k;
	}
	EVP_DigestFinal_ex(md, out, &n);
	EVP_MD_CTX_free(md);
	if (k < 0)
		return negerrno();
	memcpy(ret, "sha256:", 7);
	for (int i = 0; i < 32; i++)
		snprintf(ret + 7 + 2 * i, 3, "%02x", out[i]);
	return 0;
}

struct job {
	struct oci_registry *reg;
	const char *path;
	char digest[7 + 64 + 1];
	uint64_t chunk;
	const char *mount_from;
	bool resume;
	int fd;
	int result;
};

static int64_t file_source(void *ud, uint64_t offset, void *buf, size_t len)
{
	struct job *j = ud;
	ssize_t n = pread(j->fd, buf, len, (off_t)offset);
	return n < 0 ? negerrno() : n;
}

static int file_sink(void *ud, const void *data, size_t len)
{
	struct job *j = ud;
	return fs_write_all(j->fd, data, len);
}

static void *push_thread(void *arg)
{
	struct job *j = arg;
	struct stat st;
	j->fd = open(j->path, O_RDONLY | O_CLOEXEC);
	if (j->fd < 0 || fstat(j->fd, &st) < 0) {
		j->result = negerrno();
		return NULL;
	}
	j->result = file_digest(j->fd, j->digest);
	if (j->result >= 0)
		j->result = oci_registry_push_blob(j->reg, j->digest, (uint64_t)st.st_size, j->chunk,
						   j->mount_from, file_source, j);
	close(j->fd);
	return NULL;
}

static void *pull_thread(void *arg)
{
	struct job *j = arg;
	j->fd = open(j->path, O_WRONLY | O_CREAT | O_CLOEXEC | (j->resume ? 0 : O_TRUNC), 0644);
	if (j->fd < 0) {
		j->result = negerrno();
		return NULL;
	}
	off_t off = j->resume ? lseek(j->fd, 0, SEEK_END) : 0;
	j->result = oci_registry_get_blob(j->reg, j->digest, (uint64_t)off, file_sink, j);
	if (close(j->fd) < 0 && j->result >= 0)
		j->result = negerrno();
	return NULL;
}

static int run_jobs(struct job *jobs, size_t n, void *(*fn)(void *))
{
	pthread_t *t = xcalloc(n, sizeof(*t));
	int r = 0;
	for (size_t i = 0; i < n; i++)
		pthread_create(&t[i], NULL, fn, &jobs[i]);
	for (size_t i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		if (jobs[i].result < 0 && r == 0)
			r = jobs[i].result;
	}
	free(t);
	return r;
}

static int cmd_blobs(struct oci_registry *reg, bool push, int argc, char **argv)
{
	static const struct option opts[] = {
		{"chunk", required_argument, NULL, 'c'},
		{"mount-from", required_argument, NULL, 'm'},
		{"resume", no_argument, NULL, 'r'},
		{0},
	};
	uint64_t chunk = 0;
	const char *mount = NULL;
	bool resume = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'c')
			chunk = strtoull(optarg, NULL, 10);
		else if (c == 'm')
			mount = optarg;
		else if (c == 'r')
			resume = true;
		else
			return -EINVAL;
	}
	size_t n = (size_t)(argc - optind);
	if (n == 0)
		return -EINVAL;
	struct job *jobs = xcalloc(n, sizeof(*jobs));
	for (size_t i = 0; i < n; i++) {
		char *a = argv[optind + (int)i];
		jobs[i] = (struct job){.reg = reg, .path = a, .chunk = chunk, .mount_from = mount,
				       .resume = resume};
		if (!push) {
			char *eq = strchr(a, '=');
			if (!eq || (size_t)(eq - a) > 71) {
				free(jobs);
				return -EINVAL;
			}
			memcpy(jobs[i].digest, a, (size_t)(eq - a));
			jobs[i].path = eq + 1;
		}
	}
	int r = run_jobs(jobs, n, push ? push_thread : pull_thread);
	if (push && r >= 0)
		for (size_t i = 0; i < n; i++)
			printf("%s %s\n", jobs[i].digest, jobs[i].path);
	free(jobs);
	return r;
}

static int cmd_manifest(struct oci_registry *reg, bool put, int argc, char **argv)
{
	if (argc < 3)
		return -EINVAL;
	struct strbuf sb = STRBUF_INIT;
	int r;
	if (put) {
		r = fs_read_full(argv[2], 0, &sb);
		if (r >= 0)
			r = oci_registry_put_manifest(reg, argv[1], argc > 3 ? argv[3] : NULL, sb.buf,
						      sb.len);
		if (r >= 0) {
			int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
			char d[7 + 64 + 1];
			if (fd >= 0 && file_digest(fd, d) >= 0)
				printf("%s\n", d);
			if (fd >= 0)
				close(fd);
		}
	} else {
		char *mt = NULL, *digest = NULL;
		r = oci_registry_get_manifest(reg, argv[1], &sb, &mt, &digest);
		if (r >= 0)
			r = fs_write_atomic(argv[2], sb.buf, sb.len, 0644);
		if (r >= 0)
			printf("%s %s\n", mt, digest);
		free(mt);
		free(digest);
	}
	strbuf_release(&sb);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"insecure", no_argument, NULL, 'i'},
		{"user", required_argument, NULL, 'u'},
		{"password", required_argument, NULL, 'p'},
		{0},
	};
	struct oci_registry_options o = {0};
	int c;
	log_setup_from_env();
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'i')
			o.insecure = true;
		else if (c == 'u')
			o.username = optarg;
		else if (c == 'p')
			o.password = optarg;
		else
			return 2;
	}
	if (argc - optind < 3) {
		fprintf(stderr, "usage: registry-probe [--insecure] [--user U --password P] HOST "
				"NAMESPACE COMMAND ARGS...\n");
		return 2;
	}
	const char *host = argv[optind], *ns = argv[optind + 1], *cmd = argv[optind + 2];
	int sub_argc = argc - optind - 2;
	char **sub_argv = argv + optind + 2;
	struct oci_registry *reg = NULL;
	int r = oci_registry_new(host, ns, &o, &reg);
	if (r < 0)
		return fail(r);
	if (strcmp(cmd, "ping") == 0) {
		r = oci_registry_ping(reg);
	} else if (strcmp(cmd, "exists") == 0 && sub_argc == 2) {
		uint64_t size = 0;
		r = oci_registry_blob_exists(reg, sub_argv[1], &size);
		if (r == 1)
			printf("1 %llu\n", (unsigned long long)size);
		else if (r == 0)
			printf("0\n");
	} else if (strcmp(cmd, "push-blob") == 0 || strcmp(cmd, "pull-blob") == 0) {
		r = cmd_blobs(reg, strcmp(cmd, "push-blob") == 0, sub_argc, sub_argv);
	} else if (strcmp(cmd, "put-manifest") == 0 || strcmp(cmd, "get-manifest") == 0) {
		r = cmd_manifest(reg, cmd[0] == 'p', sub_argc, sub_argv);
	} else {
		fprintf(stderr, "unknown command '%s'\n", cmd);
		r = -EINVAL;
	}
	oci_registry_free(reg);
	return r < 0 ? fail(r) : 0;
}
