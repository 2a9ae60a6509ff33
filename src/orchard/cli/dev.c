// SPDX-License-Identifier: Apache-2.0
/*
 * `orchard dev`: a whole fleet on one machine, as Orchard's dev command, but with the state in
 * a real store: a single-member etcd, `orchard controller run` and `orchard worker run`, each
 * its own process started here, all data under one directory (--data-dir, default .dev-data:
 * etcd/, controller/, worker/), every port on 127.0.0.1. The controller listens on
 * 127.0.0.1:6120 (--listen moves it) without TLS and, as Orchard's dev, without auth; with
 * ORCHARD_BOOTSTRAP_ADMIN_TOKEN set it enforces auth with the bootstrap-admin account exactly as
 * `controller run` does. The CLI gets a "local-dev" context as its default.
 *
 * The children run in a process group of their own (a terminal's Ctrl-C reaches only us) and
 * get SIGTERM if we die. On SIGINT/SIGTERM, or when one of them dies, we end them in order:
 * the workers first (they stop and delete their VMs), then the controller, then etcd.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orchard/api.h"
#include "orchard/cli/cli.h"
#include "orchard/client.h"
#include "orchard/cmd/cmd.h"
#include "orchard/config.h"
#include "orchard/resource.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/run.h"
#include "util/time.h"

#define MAX_CHILDREN 34

struct child {
	const char *what;
	pid_t pid;
};

static struct child children[MAX_CHILDREN];
static size_t nchildren;

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/*
 * fork+exec with its own process group, SIGTERM when we die, output to log (or ours), and
 * `input` (a secret: never in argv, which every local user can read) on its standard input,
 * /dev/null without.
 */
static int spawn(const char *what, char *const *argv, char *const *envp, const char *log,
		 const char *input)
{
	if (nchildren == MAX_CHILDREN)
		return -E2BIG;
	int in[2] = {-1, -1};
	if (input && pipe2(in, O_CLOEXEC) < 0)
		return negerrno();
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int r = negerrno();
		if (input) {
			close(in[0]);
			close(in[1]);
		}
		return r;
	}
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int nul = input ? in[0] : open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (nul >= 0)
			dup2(nul, 0);
		if (log) {
			int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
		}
		execve(argv[0], argv, envp);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	children[nchildren++] = (struct child){what, pid};
	if (input) {
		/* a token is far smaller than a pipe's buffer: this does not block; our read end,
		 * still open while we write, keeps a child that died at once from raising SIGPIPE
		 */
		(void)fs_write_all(in[1], input, strlen(input));
		close(in[1]);
		close(in[0]);
	}
	return 0;
}

/* SIGTERM to the children from the last started to the first, each waited for. */
static void stop_all(void)
{
	while (nchildren) {
		struct child *c = &children[--nchildren];
		if (c->pid <= 0 || kill(c->pid, SIGTERM) < 0)
			continue;
		/* a worker stops and deletes its VMs: give it time, then insist */
		int st;
		usec_t until = now_monotonic_usec() + 90 * 1000 * 1000ULL;
		while (waitpid(c->pid, &st, WNOHANG) == 0) {
			if (now_monotonic_usec() > until) {
				kill(c->pid, SIGKILL);
				waitpid(c->pid, &st, 0);
				break;
			}
			sleep_usec(50 * 1000);
		}
	}
}

static bool wait_controller(struct orchard_client *cl)
{
	usec_t until = now_monotonic_usec() + 60 * 1000 * 1000ULL;
	while (now_monotonic_usec() < until) {
		for (size_t i = 0; i < nchildren; i++) {
			int st;
			if (waitpid(children[i].pid, &st, WNOHANG) == children[i].pid) {
				fprintf(stderr, "dev: %s exited before the controller was ready\n",
					children[i].what);
				children[i] = children[--nchildren];
				return false;
			}
		}
		if (orchard_get(cl, "controller/info", NULL, NULL, NULL) == 0)
			return true;
		sleep_usec(100 * 1000);
	}
	fprintf(stderr, "dev: the controller did not answer within 60 s\n");
	return false;
}

/* The worker's credentials: bootstrap-admin when auth is on, else an account made for it. */
static int worker_token(struct orchard_client *cl, const char *admin_token, char **ret)
{
	if (admin_token) {
		*ret = orchard_bootstrap_token_format("bootstrap-admin", admin_token, NULL);
		return 0;
	}
	_cleanup_json_ json_t *sa = NULL;
	_cleanup_free_ char *err = NULL;
	int r = orchard_get(cl, "service-accounts/dev-worker", NULL, &sa, &err);
	if (r == -ENOENT) {
		char uuid[37];
		orchard_uuid(uuid);
		json_t *b = json_pack("{s:s,s:s,s:[s,s]}", "name", "dev-worker", "token", uuid,
				      "roles", "compute:read", "compute:write");
		free(err);
		err = NULL;
		r = orchard_send(cl, "POST", "service-accounts", b, &sa, &err);
		json_decref(b);
		if (r == 0 && !json_is_object(sa)) {
			json_decref(sa);
			sa = json_pack("{s:s,s:s}", "name", "dev-worker", "token", uuid);
		}
	}
	if (r < 0)
		return ocli_fail("dev: cannot set up the worker's service account: %s", err), r;
	*ret = orchard_bootstrap_token_format("dev-worker", orchard_str(sa, "token"), NULL);
	return *ret ? 0 : -EINVAL;
}

int orchard_cmd_dev(int argc, char **argv)
{
	const char *data = ".dev-data", *listen_addr = "127.0.0.1:6120", *tart = NULL;
	bool synthetic = false;
	uint64_t workers = 1;
	_cleanup_json_ json_t *resources = json_object();
	const struct ocli_flag flags[] = {
	    {"data-dir", 'd', OCLI_STRING, &data, "path to persist data between runs",
	     "\".dev-data\""},
	    {"listen", 'l', OCLI_STRING, &listen_addr, "address the controller listens on",
	     "\"127.0.0.1:6120\""},
	    {"resources", 0, OCLI_MAP_U64, resources,
	     "resources that the development worker will provide", "[]"},
	    {"synthetic", 0, OCLI_BOOL, &synthetic,
	     "do not instantiate real Tart VMs, use synthetic in-memory VMs suitable for load "
	     "testing"},
	    {"workers", 0, OCLI_U64, &workers, "number of workers to start", "1"},
	    {"tart", 0, OCLI_STRING, &tart, "the tart binary the workers drive"},
	    {0},
	};
	const struct ocli_cmd c = {
	    "dev", NULL, "Run a controller, a worker and etcd for development purposes",
	    flags, 0,	 0};
	_cleanup_strvec_ struct strvec args = STRVEC_INIT;
	int r = ocli_parse(&c, argc, argv, &args);
	if (r != 0)
		return r > 0 ? 0 : 1;
	if (workers < 1 || workers > MAX_CHILDREN - 2)
		return ocli_fail("--workers must be between 1 and %d", MAX_CHILDREN - 2);
	const char *admin = getenv("ORCHARD_BOOTSTRAP_ADMIN_TOKEN");
	if (admin && !*admin)
		admin = NULL;

	char abs[PATH_MAX], self[PATH_MAX];
	if (fs_mkdir_p(data, 0700) < 0 || !realpath(data, abs))
		return ocli_fail("dev: cannot create %s: %s", data, strerror(errno));
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return ocli_fail("dev: cannot find the orchard binary");
	self[n] = 0;
	_cleanup_free_ char *etcd = NULL;
	if (find_program("etcd", &etcd) < 0)
		return ocli_fail("dev: etcd is not installed (Debian's etcd-server)");
	/* where the CLI and the worker reach the controller */
	const char *colon = strrchr(listen_addr, ':');
	if (!colon || !colon[1])
		return ocli_fail("dev: --listen wants HOST:PORT, got \"%s\"", listen_addr);
	_cleanup_free_ char *host = xstrndup(listen_addr, (size_t)(colon - listen_addr));
	_cleanup_free_ char *url =
	    xasprintf("http://%s:%s",
		      !*host || streq(host, "0.0.0.0") || streq(host, "[::]") ? "127.0.0.1" : host,
		      colon + 1);

	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);

	/* etcd, one member, on two free loopback ports (the same again for its data) */
	_cleanup_free_ char *edir = path_join(abs, "etcd");
	_cleanup_free_ char *pfile = path_join(abs, "etcd.ports");
	int cport = 0, pport = 0;
	_cleanup_strbuf_ struct strbuf ps = STRBUF_INIT;
	if (fs_is_dir(edir) && fs_read_full(pfile, 64, &ps) == 0)
		(void)!sscanf(ps.buf, "%d %d", &cport, &pport);
	if (cport <= 0 || pport <= 0) {
		cport = free_port();
		pport = free_port();
		char line[32];
		snprintf(line, sizeof(line), "%d %d\n", cport, pport);
		(void)fs_write_atomic(pfile, line, strlen(line), 0600);
	}
	_cleanup_free_ char *elog = path_join(abs, "etcd.log");
	_cleanup_free_ char *curl = xasprintf("http://127.0.0.1:%d", cport);
	_cleanup_free_ char *purl = xasprintf("http://127.0.0.1:%d", pport);
	_cleanup_free_ char *cluster = xasprintf("dev=%s", purl);
	_cleanup_strvec_ struct strvec ea = STRVEC_INIT, env = STRVEC_INIT, ca = STRVEC_INIT;
	strvec_pushl(&ea, etcd, "--name", "dev", "--data-dir", edir, "--listen-client-urls", curl,
		     "--advertise-client-urls", curl, "--listen-peer-urls", purl,
		     "--initial-advertise-peer-urls", purl, "--initial-cluster", cluster, NULL);
	/* a restart of the data dir keeps the member's old peer URL: that is fine alone */
	extern char **environ;
	for (char **e = environ; *e; e++)
		strvec_push(&env, *e);
	if ((r = spawn("etcd", ea.v, env.v, elog, NULL)) < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return ocli_fail("dev: cannot start etcd: %s", strerror(-r));
	}

	_cleanup_free_ char *cdir = path_join(abs, "controller");
	strvec_pushl(&ca, self, "controller", "run", "--listen", listen_addr, "--etcd", curl,
		     "--data-dir", cdir, "--insecure-no-tls", NULL);
	if (!admin)
		strvec_push(&ca, "--insecure-auth-disabled");
	if ((r = spawn("the controller", ca.v, env.v, NULL, NULL)) < 0) {
		stop_all();
		sigprocmask(SIG_SETMASK, &old, NULL);
		return ocli_fail("dev: cannot start the controller: %s", strerror(-r));
	}
	fprintf(stderr, "dev: etcd at %s (log: %s), controller at %s, data under %s\n", curl, elog,
		url, abs);

	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	_cleanup_free_ char *err = NULL, *token = NULL, *wdir = path_join(abs, "worker");
	struct orchard_client_options co = {
	    .url = url, .sa_name = admin ? "bootstrap-admin" : NULL, .sa_token = admin};
	int rc = 1;
	if (orchard_client_new(&co, &cl, &err) < 0 || !wait_controller(cl) ||
	    worker_token(cl, admin, &token) < 0)
		goto out;

	/* the CLI's local-dev context, as Orchard's dev makes it */
	struct orchard_context ctx = {.name = (char *)"local-dev",
				      .url = url,
				      .sa_name = admin ? (char *)"bootstrap-admin" : NULL,
				      .sa_token = (char *)admin};
	if (orchard_config_create_context(&ctx, true, &err) < 0 ||
	    orchard_config_set_default("local-dev", &err) < 0) {
		ocli_fail("dev: %s", err);
		goto out;
	}

	for (uint64_t i = 0; i < workers; i++) {
		_cleanup_strvec_ struct strvec wa = STRVEC_INIT, wenv = STRVEC_INIT;
		char hn[200] = "dev";
		gethostname(hn, sizeof(hn) - 1);
		strvec_pushl(&wa, self, "worker", "run", url, "--bootstrap-token-stdin", NULL);
		if (workers > 1)
			strvec_pushf(&wa, "--name=%s-%llu", hn, (unsigned long long)i + 1);
		if (synthetic)
			strvec_push(&wa, "--synthetic");
		if (tart)
			strvec_pushf(&wa, "--tart=%s", tart);
		const char *k;
		json_t *v;
		json_object_foreach(resources, k, v)
		    strvec_pushf(&wa, "--resources=%s=%lld", k, (long long)json_integer_value(v));
		for (size_t e = 0; e < env.nr; e++)
			if (strncmp(env.v[e], "ORCHARD_HOME=", 13) != 0)
				strvec_push(&wenv, env.v[e]);
		strvec_pushf(&wenv, "ORCHARD_HOME=%s", wdir);
		if ((r = spawn("a worker", wa.v, wenv.v, NULL, token)) < 0) {
			ocli_fail("dev: cannot start a worker: %s", strerror(-r));
			goto out;
		}
	}
	fprintf(stderr, "dev: ready; the CLI's default context is now \"local-dev\" (%s)\n", url);

	/* until a signal, or one of ours dies */
	for (;;) {
		int sig;
		sigwait(&set, &sig);
		if (sig != SIGCHLD) {
			fprintf(stderr, "dev: stopping\n");
			rc = 0;
			break;
		}
		bool died = false;
		for (size_t i = 0; i < nchildren; i++) {
			int st;
			if (waitpid(children[i].pid, &st, WNOHANG) == children[i].pid) {
				fprintf(stderr, "dev: %s exited (status %d), stopping the rest\n",
					children[i].what,
					WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
				children[i] = children[--nchildren];
				died = true;
				break;
			}
		}
		if (died)
			break;
	}
out:
	stop_all();
	sigprocmask(SIG_SETMASK, &old, NULL);
	return rc;
}
