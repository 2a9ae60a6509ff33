// SPDX-License-Identifier: Apache-2.0
/* `orchard context create|default|delete|list` (Orchard's internal/command/context). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "orchard/api.h"
#include "orchard/cli/cli.h"
#include "orchard/client.h"
#include "orchard/cmd/cmd.h"
#include "orchard/config.h"
#include "orchard/resource.h"
#include "util/alloc.h"
#include "util/strbuf.h"

/* Ask on the terminal (without echo for secrets); NULL when stdin is not a terminal. */
static char *prompt(const char *label, bool secret)
{
	if (!isatty(0))
		return NULL;
	fprintf(stderr, "%s ", label);
	struct termios old, t;
	bool restore = secret && tcgetattr(0, &old) == 0;
	if (restore) {
		t = old;
		t.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(0, TCSAFLUSH, &t);
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);
	if (restore) {
		tcsetattr(0, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (n <= 0) {
		free(line);
		return NULL;
	}
	line[strcspn(line, "\r\n")] = 0;
	return line;
}

/* Orchard's Check(): GET /v1/ answers 200. */
static int check(const char *url, const char *name, const char *token, const char *cert,
		 char **ret_error)
{
	struct orchard_client_options o = {
	    .url = url,
	    .sa_name = name,
	    .sa_token = token,
	    .cert_pem = cert,
	    .cert_pem_len = cert ? strlen(cert) : 0,
	};
	_cleanup_orchard_client_ struct orchard_client *c = NULL;
	int r = orchard_client_new(&o, &c, ret_error);
	if (r < 0)
		return r;
	return orchard_get(c, "", NULL, NULL, ret_error);
}

/* The transport failed (not an HTTP answer): worth another try with a pinned certificate. */
static bool transport_error(int r)
{
	return r == -EPROTO || r == -ECONNRESET || r == -ECONNREFUSED || r == -ETIMEDOUT ||
	       r == -EHOSTUNREACH;
}

static int cmd_context_create(int argc, char **argv)
{
	const char *cname = "default", *token_raw = NULL, *sa_name = NULL, *sa_token = NULL;
	bool force = false, no_pki = false;
	const struct ocli_flag flags[] = {
	    {"name", 0, OCLI_STRING, &cname, "context name to use", "\"default\""},
	    {"bootstrap-token", 0, OCLI_STRING, &token_raw, "bootstrap token to use"},
	    {"service-account-name", 0, OCLI_STRING, &sa_name,
	     "service account name to use (alternative to --bootstrap-token)"},
	    {"service-account-token", 0, OCLI_STRING, &sa_token,
	     "service account token to use (alternative to --bootstrap-token)"},
	    {"force", 0, OCLI_BOOL, &force,
	     "create the context even if a context with the same name already exists"},
	    {"no-pki", 0, OCLI_BOOL, &no_pki,
	     "do not use the host's root CA set and instead validate the Controller's presented "
	     "certificate using a bootstrap token (or manually via fingerprint, if no bootstrap "
	     "token is provided)"},
	    {0},
	};
	const struct ocli_cmd c = {"context create", "URL", "Create a new context", flags, 1, 1};
	_cleanup_strvec_ struct strvec args = STRVEC_INIT;
	int r = ocli_parse(&c, argc, argv, &args);
	if (r != 0)
		return r > 0 ? 0 : 1;
	_cleanup_free_ char *url = NULL, *bt_name = NULL, *bt_token = NULL, *bt_cert = NULL,
			    *err = NULL, *asked_name = NULL, *asked_token = NULL, *cert = NULL;
	if (orchard_url_normalize(args.v[0], &url) < 0)
		return ocli_fail("invalid controller URL \"%s\"", args.v[0]);
	if (token_raw && *token_raw) {
		if (orchard_bootstrap_token_parse(token_raw, &bt_name, &bt_token, &bt_cert, &err) <
		    0)
			return ocli_fail("%s", err);
		if (!sa_name || !*sa_name)
			sa_name = bt_name;
		if (!sa_token || !*sa_token)
			sa_token = bt_token;
	}
	if (!sa_name || !*sa_name) {
		sa_name = asked_name = prompt("Service account name:", false);
		if (!sa_name || !*sa_name)
			return ocli_fail("failed to create context: a service account name is "
					 "required (--service-account-name or --bootstrap-token)");
	}
	if (!sa_token || !*sa_token) {
		sa_token = asked_token = prompt("Service account token:", true);
		if (!sa_token || !*sa_token)
			return ocli_fail("failed to create context: a service account token is "
					 "required (--service-account-token or --bootstrap-token)");
	}

	bool tls = strncmp(url, "https://", 8) == 0;
	r = -EPROTO;
	if (!no_pki) {
		if (tls)
			printf("trying to connect to the controller using PKI and host's root CA "
			       "set...\n");
		r = check(url, sa_name, sa_token, NULL, &err);
		if (r < 0 && (!tls || !transport_error(r)))
			return ocli_fail("%s", err ? err : strerror(-r));
		if (r < 0)
			printf("PKI association failed (%s), falling back to trusted-certificate "
			       "approach...\n",
			       err);
	}
	if (r < 0) {
		if (bt_cert) {
			cert = xstrdup(bt_cert);
		} else {
			free(err);
			err = NULL;
			if (orchard_probe_certificate(url, &cert, &err) < 0)
				return ocli_fail("failed to create context: %s", err);
			_cleanup_free_ char *fp = NULL;
			(void)orchard_cert_fingerprint(cert, strlen(cert), &fp);
			printf("The authencity of controller %s cannot be established.\n"
			       "Certificate SHA-256 fingerprint is: %s.\n",
			       url, fp ? fp : "?");
			_cleanup_free_ char *ans =
			    prompt("Are you sure you want to establish trust to "
				   "this certificate? (yes/no)",
				   false);
			if (!ans)
				return ocli_fail(
				    "failed to create context: certificate verification "
				    "failed: no trust decision received from the user "
				    "(use --bootstrap-token when not on a terminal)");
			if (!streq(ans, "yes"))
				return ocli_fail(
				    "failed to create context: certificate verification "
				    "failed: no trust decision received from the user");
		}
		free(err);
		err = NULL;
		r = check(url, sa_name, sa_token, cert, &err);
		if (r < 0)
			return ocli_fail("%s", err ? err : strerror(-r));
	}
	struct orchard_context ctx = {
	    .name = (char *)cname,
	    .url = url,
	    .cert_pem = cert,
	    .cert_pem_len = cert ? strlen(cert) : 0,
	    .sa_name = (char *)sa_name,
	    .sa_token = (char *)sa_token,
	};
	free(err);
	err = NULL;
	if (orchard_config_create_context(&ctx, force, &err) < 0)
		return ocli_fail("%s", err);
	return 0;
}

static int name_cmd(int argc, char **argv, const char *path, const char *help,
		    int (*fn)(const char *, char **))
{
	const struct ocli_cmd c = {path, "NAME", help, NULL, 1, 1};
	_cleanup_strvec_ struct strvec args = STRVEC_INIT;
	int r = ocli_parse(&c, argc, argv, &args);
	if (r != 0)
		return r > 0 ? 0 : 1;
	_cleanup_free_ char *err = NULL;
	if (fn(args.v[0], &err) < 0)
		return ocli_fail("%s", err);
	return 0;
}

int orchard_cmd_context_create(int argc, char **argv)
{
	return cmd_context_create(argc, argv);
}

int orchard_cmd_context_default(int argc, char **argv)
{
	return name_cmd(argc, argv, "context default",
			"Set a default context to use for client/worker commands",
			orchard_config_set_default);
}

int orchard_cmd_context_delete(int argc, char **argv)
{
	return name_cmd(argc, argv, "context delete", "Delete a context",
			orchard_config_delete_context);
}

int orchard_cmd_context_list(int argc, char **argv)
{
	const struct ocli_cmd c = {"context list", NULL, "List contexts", NULL, 0, 0};
	_cleanup_strvec_ struct strvec args = STRVEC_INIT, cells = STRVEC_INIT;
	int r = ocli_parse(&c, argc, argv, &args);
	if (r != 0)
		return r > 0 ? 0 : 1;
	struct orchard_config cfg;
	_cleanup_free_ char *err = NULL;
	if (orchard_config_load(&cfg, &err) < 0)
		return ocli_fail("%s", err);
	strvec_pushl(&cells, "Name", "URL", "Default", NULL);
	for (size_t i = 0; i < cfg.n; i++) {
		const struct orchard_context *x = &cfg.contexts[i];
		bool def = cfg.default_context && streq(cfg.default_context, x->name);
		strvec_pushl(&cells, x->name, x->url ? x->url : "", def ? "*" : "", NULL);
	}
	struct strbuf out = STRBUF_INIT;
	orchard_table((const char *const *)cells.v, cfg.n + 1, 3, &out);
	printf("%s\n", out.buf);
	strbuf_release(&out);
	orchard_config_release(&cfg);
	return 0;
}
