// SPDX-License-Identifier: Apache-2.0
/*
 * `orchard port-forward vm|worker NAME [LOCAL:]REMOTE` and `orchard ssh vm NAME [COMMAND]`:
 * both go through the controller's port-forward WebSocket (/v1/vms/NAME/port-forward?port=
 * &wait=), which the controller pairs with a connection the worker dials back.
 *
 * port-forward listens on 127.0.0.1 (a random port for LOCAL 0 or none) and opens one
 * WebSocket per accepted connection. With --stdio (ours) it bridges its standard input and
 * output instead: that is the ProxyCommand `ssh vm` gives the system's ssh, so the SSH client
 * is OpenSSH itself (sshpass -e answers a password prompt; the password never goes to argv).
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orchard/api.h"
#include "orchard/cli/cli.h"
#include "orchard/client.h"
#include "orchard/cmd/cmd.h"
#include "orchard/ws.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/parse.h"
#include "util/run.h"

extern char **environ;

struct target {
	struct orchard_client *client;
	const char *kind; /* "vms" | "workers" */
	const char *name;
	unsigned port;
	uint64_t wait;
};

static int open_forward(const struct target *t, struct orchard_ws **ret, char **ret_error)
{
	_cleanup_free_ char *path = ocli_path(t->kind, t->name, "port-forward");
	_cleanup_free_ char *q = streq(t->kind, "vms") ? xasprintf("port=%u&wait=%llu", t->port,
								   (unsigned long long)t->wait)
						       : xasprintf("port=%u", t->port);
	long status = 0;
	_cleanup_free_ char *err = NULL;
	int r = orchard_ws_open(t->client, path, q, (long)t->wait + 30, ret, &status, &err);
	if (r < 0)
		*ret_error = xasprintf("failed to forward port: %s%s", err,
				       status == 404 ? " (are you sure this VM exists on the "
						       "controller?)"
						     : "");
	return r;
}

/* Orchard's PortSpec: "REMOTE" or "LOCAL:REMOTE", ports 1-65535 (LOCAL may be 0). */
static int port_spec(const char *s, unsigned *ret_local, unsigned *ret_remote)
{
	const char *colon = strchr(s, ':');
	uint64_t l = 0, r;
	if (colon && strchr(colon + 1, ':'))
		return ocli_fail(
			   "invalid port-forwarding specification: expected 1 or 2 components "
			   "delimited by \":\""),
		       -EINVAL;
	if (colon) {
		_cleanup_free_ char *ls = xstrndup(s, (size_t)(colon - s));
		if (parse_u64(ls, 65535, &l) < 0)
			return ocli_fail("invalid port-forwarding specification: bad local port "
					 "\"%s\"",
					 ls),
			       -EINVAL;
	}
	const char *rs = colon ? colon + 1 : s;
	if (parse_u64(rs, 65535, &r) < 0 || r < 1)
		return ocli_fail("invalid port-forwarding specification: only ports in range [1, "
				 "65535] are allowed, got \"%s\"",
				 rs),
		       -EINVAL;
	*ret_local = (unsigned)l;
	*ret_remote = (unsigned)r;
	return 0;
}

struct conn {
	struct target t;
	int fd;
};

static void *conn_main(void *p)
{
	struct conn *c = p;
	struct orchard_ws *ws = NULL;
	_cleanup_free_ char *err = NULL;
	if (open_forward(&c->t, &ws, &err) < 0) {
		printf("%s\n", err);
	} else {
		(void)orchard_ws_bridge(ws, c->fd, c->fd);
		orchard_ws_close(ws);
	}
	close(c->fd);
	free(c);
	return NULL;
}

static int serve(struct target *t, unsigned local)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)local),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		return ocli_fail("listen tcp 127.0.0.1:%u: %s", local, strerror(errno));
	printf("forwarding 127.0.0.1:%u -> %s:%u...\n", ntohs(sa.sin_port), t->name, t->port);
	fflush(stdout);
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			int r = ocli_fail("accept: %s", strerror(errno));
			close(fd);
			return r;
		}
		struct conn *cn = xmalloc(sizeof(*cn));
		cn->t = *t;
		cn->fd = c;
		pthread_t th;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &a, conn_main, cn) != 0) {
			close(c);
			free(cn);
		}
		pthread_attr_destroy(&a);
	}
}

static int port_forward(int argc, char **argv, const char *kind)
{
	uint64_t wait = 60;
	bool stdio = false;
	const struct ocli_flag flags[] = {
	    {"wait", 't', OCLI_U64, &wait,
	     "Amount of seconds to wait for the VM to start running if it's not running already",
	     "60"},
	    {"stdio", 0, OCLI_BOOL, &stdio,
	     "bridge the standard input and output to the port instead of listening (e.g. as an "
	     "ssh ProxyCommand)"},
	    {0},
	};
	const struct ocli_cmd c = {streq(kind, "vms") ? "port-forward vm" : "port-forward worker",
				   streq(kind, "vms") ? "VM_NAME [LOCAL_PORT]:REMOTE_PORT"
						      : "WORKER_NAME [LOCAL_PORT]:REMOTE_PORT",
				   streq(kind, "vms") ? "Forward TCP port to the VM"
						      : "Forward TCP port to the worker",
				   flags,
				   2,
				   2};
	_cleanup_strvec_ struct strvec args = STRVEC_INIT;
	int r = ocli_parse(&c, argc, argv, &args);
	if (r != 0)
		return r > 0 ? 0 : 1;
	unsigned local, remote;
	if (port_spec(args.v[1], &local, &remote) < 0)
		return 1;
	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	if (ocli_client(&cl) < 0)
		return 1;
	struct target t = {cl, kind, args.v[0], remote, wait};
	if (!stdio)
		return serve(&t, local);
	struct orchard_ws *ws = NULL;
	_cleanup_free_ char *err = NULL;
	if (open_forward(&t, &ws, &err) < 0)
		return ocli_fail("%s", err);
	r = orchard_ws_bridge(ws, 0, 1);
	orchard_ws_close(ws);
	return r < 0 ? 1 : 0;
}

int orchard_cmd_port_forward_vm(int argc, char **argv)
{
	return port_forward(argc, argv, "vms");
}

int orchard_cmd_port_forward_worker(int argc, char **argv)
{
	return port_forward(argc, argv, "workers");
}

/* ssh's ProxyCommand goes through the user's shell: single-quote what we put there. */
static void shell_quote(struct strbuf *sb, const char *s)
{
	strbuf_putc(sb, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			strbuf_puts(sb, "'\\''");
		else
			strbuf_putc(sb, *s);
	}
	strbuf_putc(sb, '\'');
}

int orchard_cmd_ssh_vm(int argc, char **argv)
{
	const char *user = "", *password = "", *identity = NULL;
	uint64_t wait = 60;
	const struct ocli_flag flags[] = {
	    {"username", 'u', OCLI_STRING, &user, "SSH username"},
	    {"password", 'p', OCLI_STRING, &password, "SSH password"},
	    {"wait", 't', OCLI_U64, &wait,
	     "Amount of seconds to wait for the VM to start running if it's not running already",
	     "60"},
	    {"identity", 'i', OCLI_STRING, &identity, "SSH private key to offer (ssh -i)"},
	    {0},
	};
	const struct ocli_cmd c = {"ssh vm", "VM_NAME [COMMAND]", "SSH into the VM", flags, 1, 2};
	_cleanup_strvec_ struct strvec args = STRVEC_INIT, argv2 = STRVEC_INIT, env = STRVEC_INIT;
	int r = ocli_parse(&c, argc, argv, &args);
	if (r != 0)
		return r > 0 ? 0 : 1;
	const char *name = args.v[0];
	_cleanup_free_ char *vm_user = NULL, *vm_pass = NULL;
	if (!*user && !*password) {
		/* Orchard's ChooseUsernameAndPassword: the VM's own, else admin:admin */
		_cleanup_orchard_client_ struct orchard_client *cl = NULL;
		if (ocli_client(&cl) < 0)
			return 1;
		_cleanup_free_ char *err = NULL, *path = ocli_path("vms", name, NULL);
		_cleanup_json_ json_t *vm = NULL;
		r = orchard_get(cl, path, NULL, &vm, &err);
		if (r == 0 && *orchard_str(vm, "username") && *orchard_str(vm, "password")) {
			user = vm_user = xstrdup(orchard_str(vm, "username"));
			password = vm_pass = xstrdup(orchard_str(vm, "password"));
		} else {
			if (r < 0)
				fprintf(
				    stderr,
				    "failed to retrieve VM %s's credentials from the API server: "
				    "%s\n",
				    name, err);
			fprintf(stderr, "no credentials specified or found, trying default "
					"admin:admin credentials...\n");
			user = "admin";
			password = "admin";
		}
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return ocli_fail("cannot find the orchard binary: %s", strerror(errno));
	self[n] = 0;
	_cleanup_free_ char *ssh = NULL, *sshpass = NULL;
	if (find_program("ssh", &ssh) < 0)
		return ocli_fail("ssh command failed: ssh is not installed (openssh-client)");
	if (*password && find_program("sshpass", &sshpass) < 0)
		return ocli_fail("ssh command failed: sshpass is not installed (needed for "
				 "password logins)");
	struct strbuf proxy = STRBUF_INIT;
	strbuf_puts(&proxy, "ProxyCommand=");
	shell_quote(&proxy, self);
	strbuf_putf(&proxy, " port-forward vm --stdio --wait %llu ", (unsigned long long)wait);
	shell_quote(&proxy, name);
	strbuf_puts(&proxy, " 22");
	if (*password)
		strvec_pushl(&argv2, sshpass, "-e", NULL);
	strvec_pushl(&argv2, ssh, "-o", proxy.buf, "-o", "StrictHostKeyChecking=no", "-o",
		     "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null", "-o",
		     "LogLevel=ERROR", NULL);
	strbuf_release(&proxy);
	if (!*password)
		strvec_pushl(&argv2, "-o", "BatchMode=yes", NULL);
	if (identity)
		strvec_pushl(&argv2, "-i", identity, NULL);
	if (args.nr < 2 && isatty(0))
		strvec_push(&argv2, "-t");
	strvec_pushf(&argv2, "%s@%s", user, name);
	if (args.nr > 1)
		strvec_push(&argv2, args.v[1]);
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "SSHPASS=", 8) != 0)
			strvec_push(&env, *e);
	if (*password)
		strvec_pushf(&env, "SSHPASS=%s", password);
	/* ssh owns the terminal now; its exit status is ours */
	execve(argv2.v[0], argv2.v, env.v);
	return ocli_fail("ssh command failed: cannot run %s: %s", argv2.v[0], strerror(errno));
}
