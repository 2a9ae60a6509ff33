// SPDX-License-Identifier: Apache-2.0
/* `orchard worker run CONTROLLER_URL`: flags as Orchard's internal/command/worker/run.go. */
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "orchard/api.h"
#include "orchard/cli/cli.h"
#include "orchard/cmd/cmd.h"
#include "orchard/config.h"
#include "orchard/resource.h"
#include "orchard/worker/worker.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/run.h"
#include "vm/home.h"

int worker_main(struct worker *w);
void worker_set_heartbeat(unsigned seconds);

/*
 * Orchard sends /etc/machine-id. Two workers of one machine (tests, several TART_HOMEs) would
 * then look like one machine under two names; so a worker with TART_HOME set sends a stable
 * digest of the machine id and the absolute TART_HOME instead, and a synthetic worker one of
 * the machine id and its name. ORCHARD_MACHINE_ID overrides all of that.
 */
static int machine_id(bool synthetic, const char *name, char **ret)
{
	const char *env = getenv("ORCHARD_MACHINE_ID");
	if (env && *env) {
		*ret = xstrdup(env);
		return 0;
	}
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	int r = fs_read_full("/etc/machine-id", 4096, &sb);
	if (r < 0)
		return log_error_errno(r, "cannot read '/etc/machine-id'");
	strbuf_rtrim(&sb);
	const char *th = getenv("TART_HOME");
	if (!synthetic && (!th || !*th)) {
		*ret = strbuf_detach(&sb, NULL);
		return 0;
	}
	char abs[PATH_MAX];
	_cleanup_free_ char *seed = synthetic
					? xasprintf("%s:synthetic:%s", sb.buf, name)
					: xasprintf("%s:%s", sb.buf, realpath(th, abs) ? abs : th);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_Digest(seed, strlen(seed), md, &mdlen, EVP_sha256(), NULL);
	struct strbuf hex = STRBUF_INIT;
	for (unsigned i = 0; i < 16; i++)
		strbuf_putf(&hex, "%02x", md[i]);
	*ret = strbuf_detach(&hex, NULL);
	return 0;
}

static json_t *default_resources(void)
{
	json_t *r = json_object();
	json_object_set_new(r, "org.cirruslabs.tart-vms", json_integer(2));
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n > 0)
		json_object_set_new(r, "org.cirruslabs.logical-cores", json_integer(n));
	struct sysinfo si;
	if (sysinfo(&si) == 0)
		json_object_set_new(
		    r, "org.cirruslabs.memory-mib",
		    json_integer((json_int_t)((uint64_t)si.totalram * si.mem_unit >> 20)));
	return r;
}

static int read_token(const char *flag, bool from_stdin, char **ret)
{
	if (flag && *flag && from_stdin)
		return ocli_fail("--bootstrap-token and --bootstrap-token-stdin are mutually "
				 "exclusive"),
		       -EINVAL;
	if (flag && *flag) {
		*ret = xstrdup(flag);
		return 0;
	}
	if (!from_stdin)
		return ocli_fail("no bootstrap token was provided"), -EINVAL;
	struct strbuf sb = STRBUF_INIT;
	strbuf_init(&sb, 1 << 20);
	int r = fs_read_full("/dev/stdin", 1 << 20, &sb);
	if (r == -EINVAL) { /* a pipe: read it as a stream */
		char buf[4096];
		ssize_t n;
		while ((n = read(0, buf, sizeof(buf))) > 0)
			if (strbuf_add(&sb, buf, (size_t)n) < 0)
				break;
		r = n < 0 ? negerrno() : 0;
	}
	if (r < 0) {
		strbuf_release(&sb);
		return ocli_fail("failed to read the bootstrap token from the standard input: %s",
				 strerror(-r)),
		       r;
	}
	if (sb.len && sb.buf[sb.len - 1] == '\n')
		sb.buf[--sb.len] = 0;
	*ret = strbuf_detach(&sb, NULL);
	return 0;
}

int orchard_cmd_worker_run(int argc, char **argv)
{
	const char *name = NULL, *token_flag = NULL, *log_file = NULL, *tart = NULL,
		   *ssh_key = NULL;
	bool token_stdin = false, no_pki = false, synthetic = false, debug = false;
	uint64_t default_cpu = 4, default_memory = 8192, heartbeat = 15;
	json_t *resources = json_object(), *labels = json_object();
	const struct ocli_flag flags[] = {
	    {"name", 0, OCLI_STRING, &name, "name of the worker (defaults to the hostname)"},
	    {"bootstrap-token", 0, OCLI_STRING, &token_flag,
	     "a bootstrap token retrieved via \"orchard get bootstrap-token "
	     "<service-account-name-for-workers>\""},
	    {"bootstrap-token-stdin", 0, OCLI_BOOL, &token_stdin,
	     "use this flag to provide a bootstrap token via the standard input"},
	    {"log-file", 0, OCLI_STRING, &log_file,
	     "optional path to a file where logs will be appended"},
	    {"resources", 0, OCLI_MAP_U64, resources, "resources that this worker provides", "[]"},
	    {"labels", 0, OCLI_MAP, labels, "labels that this worker supports", "[]"},
	    {"no-pki", 0, OCLI_BOOL, &no_pki,
	     "do not use the host's root CA set and instead validate the Controller's presented "
	     "certificate using a bootstrap token"},
	    {"default-cpu", 0, OCLI_U64, &default_cpu,
	     "number of CPUs to use for VMs that do not explicitly specify a value", "4"},
	    {"default-memory", 0, OCLI_U64, &default_memory,
	     "megabytes of memory to use for VMs that do not explicitly specify a value", "8192"},
	    {"debug", 0, OCLI_BOOL, &debug, "enable debug logging"},
	    {"synthetic", 0, OCLI_BOOL, &synthetic,
	     "do not instantiate real Tart VMs, use synthetic in-memory VMs suitable for load "
	     "testing"},
	    {"tart", 0, OCLI_STRING, &tart,
	     "the tart binary to drive (default: $TART_BIN, else "
	     "tart from PATH)"},
	    {"ssh-key", 0, OCLI_STRING, &ssh_key,
	     "private key tried before the VM's password when running startup scripts"},
	    {"heartbeat-interval", 0, OCLI_U64, &heartbeat,
	     "seconds between the worker's heartbeats", "15"},
	    {0},
	};
	const struct ocli_cmd c = {
	    "worker run", "CONTROLLER_URL[,CONTROLLER_URL...]", "Run worker", flags, 1, 1};
	_cleanup_strvec_ struct strvec args = STRVEC_INIT;
	struct worker w = {0};
	_cleanup_free_ char *token = NULL, *err = NULL, *host = NULL, *ohome = NULL, *sub = NULL;
	char *bt_name = NULL, *bt_token = NULL, *bt_cert = NULL;
	int rc = 1;
	int r = ocli_parse(&c, argc, argv, &args);
	if (r != 0) {
		rc = r > 0 ? 0 : 1;
		goto out;
	}
	if (log_file) {
		if (!freopen(log_file, "a", stderr)) {
			rc = ocli_fail("cannot open the log file %s: %s", log_file, strerror(errno));
			goto out;
		}
		setvbuf(stderr, NULL, _IOLBF, 0); /* a reader of the file sees each line */
	}
	log_set_timestamps(true);
	if (debug)
		log_set_level(LOG_DEBUG);
	else if (log_get_level() < LOG_INFO)
		log_set_level(LOG_INFO);
	if (heartbeat < 1 || heartbeat > 3600) {
		rc = ocli_fail("--heartbeat-interval must be between 1 and 3600 seconds");
		goto out;
	}
	worker_set_heartbeat((unsigned)heartbeat);
	if (read_token(token_flag, token_stdin, &token) < 0)
		goto out;
	if (!*token) {
		rc = ocli_fail("empty bootstrap token was provided");
		goto out;
	}
	if (orchard_bootstrap_token_parse(token, &bt_name, &bt_token, &bt_cert, &err) < 0) {
		rc = ocli_fail("%s", err);
		goto out;
	}
	if (!bt_cert && no_pki) {
		rc = ocli_fail("failed to run worker: --no-pki was specified, but not trusted "
			       "certificate was provided in the bootstrap token");
		goto out;
	}
	if (!name || !*name) {
		char hn[256] = "";
		gethostname(hn, sizeof(hn) - 1);
		host = xstrdup(hn);
		name = host;
	}
	if (!orchard_host_arch()) {
		rc = ocli_fail("failed to run worker: Orchard knows only amd64 and arm64 hosts");
		goto out;
	}
	if (orchard_name_validate(name, "worker", &err) < 0) {
		rc = ocli_fail("failed to run worker: %s", err);
		goto out;
	}
	if (!tart || !*tart)
		tart = getenv("TART_BIN");
	if (find_program(tart && *tart ? tart : "tart", &w.tart) < 0 && !synthetic) {
		rc = ocli_fail("tart command not found in PATH, make sure Tart is installed "
			       "(or give --tart PATH)");
		goto out;
	}
	if (!w.tart)
		w.tart = xstrdup("tart");
	if (home_init() < 0)
		goto out;
	struct orchard_client_options o = {
	    .url = args.v[0],
	    .sa_name = bt_name,
	    .sa_token = bt_token,
	    .cert_pem = bt_cert,
	    .cert_pem_len = bt_cert ? strlen(bt_cert) : 0,
	};
	if (orchard_client_new(&o, &w.client, &err) < 0) {
		rc = ocli_fail("%s", err ? err : "cannot create the API client");
		goto out;
	}
	w.url = xstrdup(orchard_client_url(w.client));
	w.name = xstrdup(name);
	if (machine_id(synthetic, name, &w.machine_id) < 0)
		goto out;
	w.resources = default_resources();
	json_object_update(w.resources, resources);
	w.labels = json_incref(labels);
	w.default_cpu = default_cpu;
	w.default_memory = default_memory;
	w.synthetic = synthetic;
	w.ssh_key = ssh_key ? xstrdup(ssh_key) : NULL;
	if (orchard_home_dir(&ohome, &err) < 0) {
		rc = ocli_fail("%s", err);
		goto out;
	}
	sub = xasprintf("worker-%s", name);
	w.log_dir = path_join(ohome, sub);
	if (fs_mkdir_p(w.log_dir, 0700) < 0) {
		rc = ocli_fail("cannot create %s: %s", w.log_dir, strerror(errno));
		goto out;
	}
	rc = worker_main(&w) < 0 ? 1 : 0;
out:
	free(bt_name);
	if (bt_token)
		explicit_bzero(bt_token, strlen(bt_token));
	free(bt_token);
	free(bt_cert);
	orchard_client_free(w.client);
	free(w.url);
	free(w.name);
	free(w.machine_id);
	free(w.tart);
	free(w.ssh_key);
	free(w.log_dir);
	json_decref(w.resources);
	json_decref(w.labels);
	json_decref(resources);
	json_decref(labels);
	return rc;
}
