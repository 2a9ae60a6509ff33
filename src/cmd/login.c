// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "oci/credentials.h"
#include "oci/registry.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/strbuf.h"

#define MAX_PROMPTED 8192        /* readpassphrase buffer in Tart */
#define MAX_STDIN (1024 * 1024)  /* --password-stdin */

static const struct cmd_help help = {
	.name = "login",
	.overview = "Login to a registry",
	.usage = "login <host> [--username <username>] [--password-stdin] [--insecure] "
		 "[--no-validate]",
	.details = "ARGUMENTS:\n"
		   "  <host>                  host\n\n"
		   "OPTIONS:\n"
		   "  --username <username>   username\n"
		   "  --password-stdin        password-stdin\n"
		   "  --insecure              connect to the OCI registry via insecure HTTP protocol\n"
		   "  --no-validate           skip validation of the registry's credentials before "
		   "logging-in\n"
		   "  -h, --help              Show help information.\n",
};

/* Signals that end the process while echo is off: the terminal is restored first. */
static const int prompt_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
static volatile sig_atomic_t prompt_signal;

static void prompt_on_signal(int sig)
{
	prompt_signal = sig;
}

/*
 * Without SA_RESTART, so the read() returns EINTR; old[] receives the previous actions. A
 * signal ignored by whoever started us (nohup, a background job) stays ignored.
 */
static void prompt_catch_signals(struct sigaction old[])
{
	struct sigaction sa = {.sa_handler = prompt_on_signal};
	sigemptyset(&sa.sa_mask);
	prompt_signal = 0;
	memset(old, 0, ARRAY_SIZE(prompt_signals) * sizeof(*old));
	for (size_t i = 0; i < ARRAY_SIZE(prompt_signals); i++)
		if (sigaction(prompt_signals[i], NULL, &old[i]) == 0 && old[i].sa_handler != SIG_IGN)
			sigaction(prompt_signals[i], &sa, NULL);
}

/* Put the previous actions back, then deliver a signal that came in meanwhile. */
static void prompt_release_signals(const struct sigaction old[])
{
	for (size_t i = 0; i < ARRAY_SIZE(prompt_signals); i++)
		sigaction(prompt_signals[i], &old[i], NULL);
	if (prompt_signal)
		raise(prompt_signal);
}

/*
 * Prompt on the terminal (stdin/stderr when there is none), like readpassphrase(3): the
 * answer without its newline, at most MAX_PROMPTED bytes, echo off when asked (and back on
 * before a signal ends the process).
 */
static int prompt(const char *text, bool echo, char **ret)
{
	_cleanup_close_ int tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	int in = tty >= 0 ? tty : STDIN_FILENO, out = tty >= 0 ? tty : STDERR_FILENO;
	struct termios old, raw;
	bool restore = false;
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	strbuf_init(&sb, MAX_PROMPTED);

	if (write(out, text, strlen(text)) < 0)
		return negerrno();
	struct sigaction old_actions[ARRAY_SIZE(prompt_signals)];
	if (!echo && isatty(in) && tcgetattr(in, &old) == 0) {
		raw = old;
		raw.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		prompt_catch_signals(old_actions);
		restore = tcsetattr(in, TCSAFLUSH, &raw) == 0;
		if (!restore)
			prompt_release_signals(old_actions);
	}
	int r = 0;
	for (;;) {
		char c;
		ssize_t n = read(in, &c, 1);
		if (n < 0 && errno == EINTR && !prompt_signal)
			continue;
		if (n < 0) {
			r = negerrno();
			break;
		}
		if (n == 0 || c == '\n' || c == '\r')
			break;
		if (strbuf_addch(&sb, c) < 0)
			continue; /* past the limit: dropped, as readpassphrase truncates */
	}
	if (restore) {
		tcsetattr(in, TCSAFLUSH, &old);
		if (write(out, "\n", 1) < 0)
			r = r < 0 ? r : negerrno();
		prompt_release_signals(old_actions);
	}
	if (r < 0) {
		explicit_bzero(sb.buf, sb.len);
		return r;
	}
	*ret = strbuf_detach(&sb, NULL);
	return 0;
}

static int read_stdin_password(char **ret)
{
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	strbuf_init(&sb, MAX_STDIN);
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return log_error_errno(negerrno(), "cannot read the password from stdin");
		if (n == 0)
			break;
		if (strbuf_add(&sb, buf, (size_t)n) < 0) {
			explicit_bzero(sb.buf, sb.len);
			return log_error_errno(-EFBIG, "the password on stdin is too long");
		}
	}
	explicit_bzero(buf, sizeof(buf));
	while (sb.len > 0 && (sb.buf[sb.len - 1] == '\n' || sb.buf[sb.len - 1] == '\r'))
		sb.buf[--sb.len] = 0;
	*ret = strbuf_detach(&sb, NULL);
	return 0;
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static int validate(const char *host, bool insecure, const char *user, const char *pass)
{
	struct oci_registry *reg = NULL;
	struct oci_registry_options o = {.insecure = insecure, .username = user, .password = pass};
	int r = oci_registry_new(host, "", &o, &reg);
	if (r >= 0)
		r = oci_registry_ping(reg);
	oci_registry_free(reg);
	if (r < 0)
		log_error("invalid credentials: %s", strerror(-r));
	return r;
}

enum { ARG_USERNAME = 0x100, ARG_PASSWORD_STDIN, ARG_INSECURE, ARG_NO_VALIDATE };

struct login_opts {
	const char *username;
	bool password_stdin, insecure, no_validate;
};

static int login_opt(int c, const char *arg, void *userdata)
{
	struct login_opts *o = userdata;
	switch (c) {
	case ARG_USERNAME:
		o->username = arg;
		return 0;
	case ARG_PASSWORD_STDIN:
		o->password_stdin = true;
		return 0;
	case ARG_INSECURE:
		o->insecure = true;
		return 0;
	case ARG_NO_VALIDATE:
		o->no_validate = true;
		return 0;
	default:
		return CMD_EUSAGE;
	}
}

int cmd_login(int argc, char **argv)
{
	static const struct option opts[] = {
		{"username", required_argument, NULL, ARG_USERNAME},
		{"password-stdin", no_argument, NULL, ARG_PASSWORD_STDIN},
		{"insecure", no_argument, NULL, ARG_INSECURE},
		{"no-validate", no_argument, NULL, ARG_NO_VALIDATE},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *const names[] = {"<host>"};
	static const struct cmd_spec spec = {.help = &help, .longopts = opts, .on_opt = login_opt,
					     .min_args = 1, .max_args = 1, .arg_names = names};
	struct login_opts o = {0};
	int a = cmd_parse(&spec, argc, argv, &o);
	if (a <= 0)
		return a;
	if ((o.username != NULL) != o.password_stdin)
		return cmd_usage_error(&help, "both --username and --password-stdin are required");
	const char *host = argv[a];
	int r = oci_credentials_check_host(host);
	if (r < 0)
		return r;

	char *user = NULL, *pass = NULL;
	if (o.username) {
		user = xstrdup(o.username);
		r = read_stdin_password(&pass);
	} else {
		r = prompt("User: ", true, &user);
		if (r >= 0)
			r = prompt("Password: ", false, &pass);
		if (r < 0)
			log_error_errno(r, "cannot read the credentials");
	}
	if (r >= 0 && !o.no_validate)
		r = validate(host, o.insecure, user, pass);
	if (r >= 0)
		r = oci_credentials_store(host, user, pass);
	free_secret(user);
	free_secret(pass);
	/* every failure here is Tart's plain error, exit 1 (a 404 must not read as "no such VM") */
	return r < 0 ? 1 : 0;
}
