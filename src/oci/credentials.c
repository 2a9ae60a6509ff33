// SPDX-License-Identifier: Apache-2.0
#include "oci/credentials.h"

#include <errno.h>
#include <pwd.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "oci/auth.h"
#include "oci/ref.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/run.h"

#define CONFIG_CAP (4 * 1024 * 1024)
#define HELPER_OUT_CAP (64 * 1024)
#define DOCKER_HUB_KEY "https://index.docker.io/v1/"

static bool is_docker_hub(const char *host)
{
	return streq(host, "docker.io") || streq(host, "index.docker.io") ||
	       streq(host, "registry-1.docker.io") || streq(host, "registry.hub.docker.com");
}

/* The name Docker uses for a host in its config and with helpers. */
static const char *server_key(const char *host)
{
	return is_docker_hub(host) ? DOCKER_HUB_KEY : host;
}

/* "https://host/v1/" -> "host", as Docker normalises auths keys. */
static char *key_host(const char *key)
{
	const char *p = key;
	if (strncasecmp(p, "https://", 8) == 0)
		p += 8;
	else if (strncasecmp(p, "http://", 7) == 0)
		p += 7;
	return xstrndup(p, strcspn(p, "/"));
}

static bool auths_key_matches(const char *key, const char *host)
{
	_cleanup_free_ char *kh = key_host(key);
	if (streq(kh, host))
		return true;
	return is_docker_hub(host) && is_docker_hub(kh);
}

bool oci_cred_helper_key_matches(const char *key, const char *host)
{
	if (streq(key, host))
		return true;
	_cleanup_free_ char *anchored = xasprintf("^(%s)$", key);
	regex_t re;
	if (regcomp(&re, anchored, REG_EXTENDED | REG_NOSUB) != 0)
		return false;
	bool m = regexec(&re, host, 0, NULL, 0) == 0;
	regfree(&re);
	return m;
}

static int split_user_pass(const char *decoded, char **ret_user, char **ret_pass)
{
	/* split at the first ':' as Docker does (Tart insists on exactly one ':', which would
	 * make passwords containing ':' stored by `tart login` unreadable) */
	const char *colon = strchr(decoded, ':');
	if (!colon)
		return -EBADMSG;
	*ret_user = xstrndup(decoded, (size_t)(colon - decoded));
	*ret_pass = xstrdup(colon + 1);
	return 0;
}

static int auths_entry(const json_t *entry, char **ret_user, char **ret_pass)
{
	const char *auth = NULL, *u = NULL, *p = NULL;
	if (!json_is_object(entry))
		return -EBADMSG;
	if (json_get_string(entry, "auth", &auth) == 0 && *auth) {
		_cleanup_free_ char *dec = NULL;
		int r = oci_base64_decode(auth, &dec, NULL);
		if (r < 0)
			return r;
		r = split_user_pass(dec, ret_user, ret_pass);
		explicit_bzero(dec, strlen(dec));
		return r < 0 ? r : 1;
	}
	if (json_get_string(entry, "username", &u) == 0 && json_get_string(entry, "password", &p) == 0 &&
	    *u) {
		*ret_user = xstrdup(u);
		*ret_pass = xstrdup(p);
		return 1;
	}
	return 0; /* an empty placeholder, as Docker writes next to a credsStore */
}

int oci_docker_config_find(const json_t *cfg, const char *host, char **ret_user, char **ret_pass,
			   char **ret_helper)
{
	const char *key;
	json_t *v;
	json_t *auths = json_object_get(cfg, "auths");
	if (json_is_object(auths)) {
		/* the exact key first, then Docker's normalised forms */
		json_t *exact = json_object_get(auths, host);
		if (exact) {
			int r = auths_entry(exact, ret_user, ret_pass);
			if (r != 0)
				return r;
		}
		json_object_foreach(auths, key, v) {
			if (!auths_key_matches(key, host))
				continue;
			int r = auths_entry(v, ret_user, ret_pass);
			if (r != 0)
				return r;
		}
	}
	json_t *helpers = json_object_get(cfg, "credHelpers");
	if (json_is_object(helpers)) {
		json_t *exact = json_object_get(helpers, host);
		if (json_is_string(exact)) {
			*ret_helper = xstrdup(json_string_value(exact));
			return 2;
		}
		json_object_foreach(helpers, key, v) {
			if (json_is_string(v) && oci_cred_helper_key_matches(key, host)) {
				*ret_helper = xstrdup(json_string_value(v));
				return 2;
			}
		}
	}
	const char *store = NULL;
	if (json_get_string(cfg, "credsStore", &store) == 0 && *store) {
		*ret_helper = xstrdup(store);
		return 2;
	}
	return 0;
}

char *oci_docker_config_path(void)
{
	const char *d = getenv("DOCKER_CONFIG");
	if (d && *d)
		return path_join(d, "config.json");
	const char *home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : "/";
	}
	return xasprintf("%s/.docker/config.json", home);
}

/* Load the config; a missing file is an empty object. */
static int load_config(const char *path, json_t **ret)
{
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	int r = fs_read_full(path, CONFIG_CAP, &sb);
	if (r == -ENOENT) {
		*ret = json_object();
		return 0;
	}
	if (r < 0)
		return r;
	json_t *j = NULL;
	r = json_parse_buf(sb.buf, sb.len, &j);
	explicit_bzero(sb.buf, sb.len);
	if (r < 0)
		return r;
	if (!json_is_object(j)) {
		json_decref(j);
		return -EBADMSG;
	}
	*ret = j;
	return 0;
}

/*
 * Run docker-credential-<helper> <action> with input; output captured (capped). The helper
 * name comes from a config file: a '/' would turn the program name into a path relative to
 * the working directory instead of a PATH lookup, so it is refused (-EINVAL).
 */
static int run_helper(const char *helper, const char *action, const char *input,
		      struct strbuf *out, int *ret_status)
{
	if (!*helper || strchr(helper, '/'))
		return -EINVAL;
	_cleanup_strvec_ struct strvec argv = STRVEC_INIT;
	_cleanup_strbuf_ struct strbuf err = STRBUF_INIT;
	strbuf_init(&err, 4096);
	strvec_pushf(&argv, "docker-credential-%s", helper);
	strvec_push(&argv, action);
	return run_argv_input(&argv, input, strlen(input), out, &err, ret_status);
}

static bool helper_says_not_found(const struct strbuf *out)
{
	return strstr(out->buf, "not found") != NULL; /* "credentials not found" and kin */
}

/* A helper's failure text: its stdout (never carries secrets on failure), trimmed. */
static char *helper_failure(const char *helper, const char *action, int status, struct strbuf *out)
{
	strbuf_rtrim(out);
	return xasprintf("'docker-credential-%s %s' exited with status %d%s%.200s", helper, action,
			 status, out->len ? ": " : "", out->buf);
}

static int helper_get(const char *helper, const char *host, char **ret_user, char **ret_pass,
		      char **ret_err)
{
	_cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
	_cleanup_free_ char *input = xasprintf("%s\n", server_key(host));
	_cleanup_json_ json_t *j = NULL;
	const char *u = NULL, *s = NULL;
	int status = 0;
	strbuf_init(&out, HELPER_OUT_CAP);
	int r = run_helper(helper, "get", input, &out, &status);
	if (r < 0) {
		*ret_err = xasprintf("cannot run 'docker-credential-%s': %s", helper, strerror(-r));
		return -EIO; /* not -ENOENT: that means "no credentials stored" */
	}
	if (status != 0) {
		if (helper_says_not_found(&out))
			return -ENOENT;
		*ret_err = helper_failure(helper, "get", status, &out);
		return -EIO;
	}
	r = json_parse_buf(out.buf, out.len, &j);
	if (r >= 0 && (json_get_string(j, "Username", &u) < 0 || json_get_string(j, "Secret", &s) < 0))
		r = -EBADMSG;
	if (r < 0) {
		explicit_bzero(out.buf, out.len);
		*ret_err = xasprintf("'docker-credential-%s get' printed malformed JSON", helper);
		return r;
	}
	*ret_user = xstrdup(u);
	*ret_pass = xstrdup(s);
	explicit_bzero(out.buf, out.len);
	return 0;
}

static void warn_provider(const char *provider, const char *why)
{
	log_warning("Failed to retrieve credentials using %s, authentication may fail: %s", provider,
		    why);
}

int oci_credentials_lookup(const char *host, char **ret_user, char **ret_pass)
{
	const char *env_host = getenv("TART_REGISTRY_HOSTNAME");
	const char *env_user = getenv("TART_REGISTRY_USERNAME");
	const char *env_pass = getenv("TART_REGISTRY_PASSWORD");
	if ((!env_host || streq(env_host, host)) && env_user && env_pass) {
		*ret_user = xstrdup(env_user);
		*ret_pass = xstrdup(env_pass);
		return 0;
	}

	_cleanup_free_ char *path = oci_docker_config_path();
	_cleanup_json_ json_t *cfg = NULL;
	_cleanup_free_ char *helper = NULL, *err = NULL;
	char *u = NULL, *p = NULL;
	int r = load_config(path, &cfg);
	if (r < 0) {
		_cleanup_free_ char *why = xasprintf("cannot read '%s': %s", path, strerror(-r));
		warn_provider("Docker configuration", why);
		return -ENOENT;
	}
	r = oci_docker_config_find(cfg, host, &u, &p, &helper);
	if (r < 0) {
		_cleanup_free_ char *why = xasprintf("malformed \"auths\" entry for '%s' in '%s'",
						     host, path);
		warn_provider("Docker configuration", why);
		return -ENOENT;
	}
	if (r == 1) {
		*ret_user = u;
		*ret_pass = p;
		return 0;
	}
	if (r == 0)
		return -ENOENT;
	r = helper_get(helper, host, &u, &p, &err);
	if (r == -ENOENT)
		return r;
	if (r < 0) {
		warn_provider("Docker configuration", err);
		return -ENOENT;
	}
	*ret_user = u;
	*ret_pass = p;
	return 0;
}

static int save_config(const char *path, json_t *cfg)
{
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		int r = fs_mkdir_p(dir, 0700);
		if (r < 0)
			return log_error_errno(r, "cannot create '%s'", dir);
	}
	char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		return log_error_errno(-ENOMEM, "cannot serialise '%s'", path);
	size_t len = strlen(text);
	_cleanup_free_ char *data = xasprintf("%s\n", text);
	explicit_bzero(text, len);
	free(text);
	int r = fs_write_atomic(path, data, len + 1, 0600);
	explicit_bzero(data, len);
	if (r < 0)
		return log_error_errno(r, "cannot write '%s'", path);
	return 0;
}

/* The helper that stores host's credentials: credHelpers, then credsStore; NULL for none. */
static char *store_helper(const json_t *cfg, const char *host)
{
	json_t *helpers = json_object_get(cfg, "credHelpers");
	if (json_is_object(helpers)) {
		const char *key;
		json_t *v;
		json_object_foreach(helpers, key, v)
			if (json_is_string(v) && oci_cred_helper_key_matches(key, host))
				return xstrdup(json_string_value(v));
	}
	const char *store = NULL;
	if (json_get_string(cfg, "credsStore", &store) == 0 && *store)
		return xstrdup(store);
	return NULL;
}

static int load_config_logged(const char *path, json_t **ret)
{
	int r = load_config(path, ret);
	if (r < 0)
		return log_error_errno(r, "cannot read the Docker configuration '%s'", path);
	return 0;
}

/*
 * Run a credential helper's `store` or `erase` with input on stdin. Logs and returns -EIO on
 * failure (not the spawn's -ENOENT: that would read as "VM does not exist"). An `erase` of
 * credentials the helper does not have counts as done.
 */
static int helper_change(const char *helper, const char *action, const char *input)
{
	_cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
	int status = 0;
	strbuf_init(&out, HELPER_OUT_CAP);
	int r = run_helper(helper, action, input, &out, &status);
	if (r < 0) {
		log_error_errno(r, "cannot run 'docker-credential-%s'", helper);
		return -EIO;
	}
	if (status != 0 && !(streq(action, "erase") && helper_says_not_found(&out))) {
		_cleanup_free_ char *why = helper_failure(helper, action, status, &out);
		log_error("cannot %s the credentials: %s", action, why);
		return -EIO;
	}
	return 0;
}

int oci_credentials_store(const char *host, const char *user, const char *pass)
{
	_cleanup_free_ char *path = oci_docker_config_path();
	_cleanup_json_ json_t *cfg = NULL;
	int r = load_config_logged(path, &cfg);
	if (r < 0)
		return r;
	_cleanup_free_ char *helper = store_helper(cfg, host);
	if (helper) {
		_cleanup_json_ json_t *msg = json_pack("{s:s, s:s, s:s}", "ServerURL",
						       server_key(host), "Username", user, "Secret",
						       pass);
		char *input = json_dumps(msg, JSON_COMPACT);
		r = helper_change(helper, "store", input);
		explicit_bzero(input, strlen(input));
		free(input);
		return r;
	}
	json_t *auths = json_object_get(cfg, "auths");
	if (!json_is_object(auths)) {
		auths = json_object();
		json_object_set_new(cfg, "auths", auths);
	}
	_cleanup_free_ char *plain = xasprintf("%s:%s", user, pass);
	_cleanup_free_ char *b64 = oci_base64_encode(plain, strlen(plain));
	explicit_bzero(plain, strlen(plain));
	json_t *entry = json_object_get(auths, server_key(host));
	if (!json_is_object(entry)) {
		entry = json_object();
		json_object_set_new(auths, server_key(host), entry);
	}
	json_object_del(entry, "username");
	json_object_del(entry, "password");
	json_object_set_new(entry, "auth", json_string(b64));
	explicit_bzero(b64, strlen(b64));
	return save_config(path, cfg);
}

int oci_credentials_erase(const char *host)
{
	_cleanup_free_ char *path = oci_docker_config_path();
	_cleanup_json_ json_t *cfg = NULL;
	int r = load_config_logged(path, &cfg);
	if (r < 0)
		return r;
	_cleanup_free_ char *helper = store_helper(cfg, host);
	if (helper) {
		_cleanup_free_ char *input = xasprintf("%s\n", server_key(host));
		r = helper_change(helper, "erase", input);
		if (r < 0)
			return r;
	}
	json_t *auths = json_object_get(cfg, "auths");
	if (!json_is_object(auths))
		return 0;
	bool changed = false;
	const char *key;
	json_t *v;
	void *tmp;
	json_object_foreach_safe(auths, tmp, key, v) {
		if (streq(key, host) || auths_key_matches(key, host)) {
			json_object_del(auths, key);
			changed = true;
		}
	}
	return changed ? save_config(path, cfg) : 0;
}

int oci_credentials_check_host(const char *host)
{
	struct oci_ref ref = OCI_REF_INIT;
	_cleanup_free_ char *name = xasprintf("%s/x", host);
	bool ok = oci_ref_parse(name, &ref, NULL) >= 0 && streq(ref.host, host);
	oci_ref_release(&ref);
	if (ok)
		return 0;
	if (strncasecmp(host, "http://", 7) == 0 || strncasecmp(host, "https://", 8) == 0)
		log_error("improperly formatted host \"%s\" was provided, make sure that it doesn't "
			  "start with http:// or https://",
			  host);
	else
		log_error("improperly formatted host \"%s\" was provided", host);
	return -EINVAL;
}
