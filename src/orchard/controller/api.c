// SPDX-License-Identifier: Apache-2.0
/*
 * Orchard's REST routes that answer at once (everything but the WebSocket and waiting
 * ones, which http.c runs). Status codes, messages and JSON shapes follow Orchard's
 * internal/controller/api_*.go; where Orchard answers with an empty body we add a
 * {"message": ...} that says why.
 */
#include <errno.h>
#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci/auth.h"
#include "orchard/controller/internal.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/macro.h"

void api_resp_release(struct api_resp *r)
{
	strbuf_release(&r->body);
	free(r->next_cursor);
	if (r->vm) {
		orchard_vm_release(r->vm);
		free(r->vm);
	}
	*r = (struct api_resp){0};
}

void api_json(struct api_resp *r, int status, json_t *j)
{
	r->status = status;
	r->content_type = "application/json; charset=utf-8";
	char *s = orchard_json_dump(j);
	strbuf_reset(&r->body);
	strbuf_puts(&r->body, s);
	free(s);
	json_decref(j);
}

void api_error(struct api_resp *r, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	struct orchard_error e = {.message = msg};
	api_json(r, status, orchard_error_to_json(&e));
	free(msg);
}

void api_store_error(struct api_resp *r, int err, const char *what)
{
	switch (err) {
	case -ENOENT:
		api_error(r, 404, "%s not found", what);
		break;
	case -EEXIST:
		api_error(r, 409, "%s with this name already exists", what);
		break;
	case -ENOTCONN:
		api_error(r, 503, "the controller's store (etcd) is unavailable, try again later");
		break;
	case -EAGAIN:
		api_error(r, 503, "too many concurrent changes to %s, try again", what);
		break;
	default:
		log_error_errno(err, "store operation on %s failed", what);
		api_error(r, 500, "store operation failed: %s", strerror(-err));
	}
}

static bool has_role(const struct orchard_service_account *sa, const char *role)
{
	return orchard_strv_contains(&sa->roles, role);
}

bool api_authorize(const struct api_req *q, struct api_resp *r, bool any, const char *const *roles)
{
	if (q->c->o.insecure_auth_disabled)
		return true;
	if (!q->sa) {
		api_error(r, 401, "authentication required");
		return false;
	}
	bool ok = !any;
	size_t n = 0;
	for (; roles && roles[n]; n++) {
		bool h = has_role(q->sa, roles[n]);
		ok = any ? ok || h : ok && h;
	}
	if (n == 0 || ok)
		return true;
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < n; i++)
		strbuf_putf(&sb, "%s%s", i ? ", " : "", roles[i]);
	api_error(r, 401, "%s of the following roles must be present: %s", any ? "any" : "all",
		  sb.buf);
	strbuf_release(&sb);
	return false;
}

#define ROLES(...) ((const char *const[]){__VA_ARGS__, NULL})

int api_basic_credentials(const char *authorization, char **ret_name, char **ret_token)
{
	if (strncasecmp(authorization, "Basic ", 6) != 0)
		return -EACCES;
	const char *b = authorization + 6;
	while (*b == ' ')
		b++;
	_cleanup_free_ char *dec = NULL;
	size_t len;
	if (strlen(b) > 4096 || oci_base64_decode(b, &dec, &len) < 0 || strlen(dec) != len)
		return -EACCES;
	char *colon = strchr(dec, ':');
	if (!colon)
		return -EACCES;
	*colon = 0;
	if (orchard_name_validate(dec, "service account", NULL) < 0)
		return -EACCES;
	*ret_name = xstrdup(dec);
	*ret_token = xstrdup(colon + 1);
	return 0;
}

bool api_token_matches(const struct orchard_service_account *sa, const char *token)
{
	const char *want = sa->token ? sa->token : "";
	size_t wl = strlen(want), tl = strlen(token);
	/* constant time in the token's content; an empty stored token never matches */
	return wl == tl && wl > 0 && CRYPTO_memcmp(want, token, wl) == 0;
}

int api_authenticate(struct controller *c, const char *authorization,
		     struct orchard_service_account *ret)
{
	_cleanup_free_ char *name = NULL, *token = NULL;
	if (api_basic_credentials(authorization, &name, &token) < 0)
		return -EACCES;
	struct orchard_service_account sa = {0};
	int r = store_sa_get(c->store, name, &sa);
	if (r == -ENOENT || r == -EBADMSG)
		return -EACCES;
	if (r < 0)
		return r;
	if (!api_token_matches(&sa, token)) {
		orchard_service_account_release(&sa);
		return -EACCES;
	}
	*ret = sa;
	return 0;
}

char *api_query(const struct orchard_strv *args, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; args && i < args->n; i++) {
		const char *a = args->v[i];
		if (strncmp(a, name, nl) == 0 && (a[nl] == '=' || a[nl] == 0))
			return xstrdup(a[nl] ? a + nl + 1 : "");
	}
	return NULL;
}

/* Parse the request body as JSON; on failure r holds Orchard's 400. */
static json_t *body_json(const struct api_req *q, struct api_resp *r)
{
	json_error_t err;
	json_t *j = json_loadb(q->body ? q->body : "", q->body_len, JSON_REJECT_DUPLICATES, &err);
	if (!j)
		api_error(r, 400, "invalid JSON was provided: %s", err.text);
	return j;
}

#define PARSE_BODY(type, var)                                                                      \
	struct orchard_##type var = {0};                                                           \
	do {                                                                                       \
		json_t *_j = body_json(q, r);                                                      \
		if (!_j)                                                                           \
			return;                                                                    \
		char *_err = NULL;                                                                 \
		int _r = orchard_##type##_from_json(_j, ORCHARD_JSON_STRICT, &var, &_err);         \
		json_decref(_j);                                                                   \
		if (_r < 0) {                                                                      \
			api_error(r, 400, "invalid JSON was provided: %s", _err ? _err : "");      \
			free(_err);                                                                \
			return;                                                                    \
		}                                                                                  \
	} while (0)

/* ---- controller info, cluster settings ---- */

static void controller_info(struct api_req *q, struct api_resp *r)
{
	if (!api_authorize(q, r, false, NULL))
		return;
	struct orchard_controller_info ci = {.version = (char *)ORCHARD_VERSION_STRING,
					     .commit = (char *)ORCHARD_COMMIT_STRING};
	/* no rpc-v1: we serve no gRPC, so workers must take the WebSocket channel (rpc-v2) */
	const char *caps[] = {ORCHARD_CAP_VM_STATE_ENDPOINT, ORCHARD_CAP_RPC_V2};
	char *capv[2];
	memcpy(capv, caps, sizeof(capv));
	ci.capabilities.v = capv;
	ci.capabilities.n = q->c->o.no_rpc_v2 ? 1 : 2;
	api_json(r, 200, orchard_controller_info_to_json(&ci));
}

static void cluster_settings_get(struct api_req *q, struct api_resp *r)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_ADMIN_READ)))
		return;
	struct orchard_cluster_settings cs;
	int e = store_cluster_settings_get(q->c->store, &cs);
	if (e < 0)
		return api_store_error(r, e, "cluster settings");
	api_json(r, 200, orchard_cluster_settings_to_json(&cs));
	orchard_cluster_settings_release(&cs);
}

static void cluster_settings_put(struct api_req *q, struct api_resp *r)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_ADMIN_WRITE)))
		return;
	PARSE_BODY(cluster_settings, cs);
	char *err = NULL;
	if (orchard_cluster_settings_normalize(&cs, &err) < 0) {
		api_error(r, 400, "%s", err);
		free(err);
	} else {
		int e = store_cluster_settings_put(q->c->store, &cs);
		if (e < 0)
			api_store_error(r, e, "cluster settings");
		else
			api_json(r, 200, orchard_cluster_settings_to_json(&cs));
	}
	orchard_cluster_settings_release(&cs);
}

/* ---- service accounts ---- */

static bool check_name(struct api_resp *r, const char *name, const char *what)
{
	char *err = NULL;
	if (orchard_name_validate(name, what, &err) < 0) {
		api_error(r, 412, "%s", err);
		free(err);
		return false;
	}
	return true;
}

static bool check_sa(struct api_resp *r, const struct orchard_service_account *sa)
{
	if (!check_name(r, sa->meta.name, "service account"))
		return false;
	char *err = NULL;
	if (orchard_roles_validate(&sa->roles, &err) < 0) {
		api_error(r, 412, "%s", err);
		free(err);
		return false;
	}
	return true;
}

static void sa_create(struct api_req *q, struct api_resp *r)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_ADMIN_WRITE)))
		return;
	PARSE_BODY(service_account, sa);
	if (check_sa(r, &sa)) {
		if (!sa.token || !*sa.token) {
			char uuid[37];
			orchard_uuid(uuid);
			free(sa.token);
			sa.token = xstrdup(uuid);
		}
		sa.meta.created_at = orchard_now();
		sa.meta.version = 0;
		int e = store_sa_put(q->c->store, &sa, false);
		if (e < 0) {
			api_store_error(r, e, "service account");
		} else {
			accounts_wait(q->c, sa.meta.name, &sa);
			api_json(r, 200, orchard_service_account_to_json(&sa));
		}
	}
	orchard_service_account_release(&sa);
}

static void sa_update(struct api_req *q, struct api_resp *r, const char *name)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_ADMIN_WRITE)))
		return;
	PARSE_BODY(service_account, sa);
	if (!sa.meta.name || !*sa.meta.name)
		sa.meta.name = xstrdup(name);
	if (!streq(sa.meta.name, name)) {
		api_error(r, 412, "service account name in the body differs from the URL");
	} else if (check_sa(r, &sa)) {
		if (!sa.token || !*sa.token) {
			api_error(r, 412, "service account token is empty");
		} else {
			struct orchard_service_account out;
			int e = store_sa_update(q->c->store, &sa, &out);
			if (e < 0) {
				api_store_error(r, e, "service account");
			} else {
				accounts_wait(q->c, name, &out);
				api_json(r, 200, orchard_service_account_to_json(&out));
				orchard_service_account_release(&out);
			}
		}
	}
	orchard_service_account_release(&sa);
}

static void sa_get(struct api_req *q, struct api_resp *r, const char *name)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_ADMIN_READ)))
		return;
	struct orchard_service_account sa;
	int e = store_sa_get(q->c->store, name, &sa);
	if (e < 0)
		return api_store_error(r, e, "service account");
	api_json(r, 200, orchard_service_account_to_json(&sa));
	orchard_service_account_release(&sa);
}

static void sa_list(struct api_req *q, struct api_resp *r)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_ADMIN_READ)))
		return;
	struct orchard_service_account *v;
	size_t n;
	int e = store_sa_list(q->c->store, &v, &n);
	if (e < 0)
		return api_store_error(r, e, "service accounts");
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, orchard_service_account_to_json(&v[i]));
	orchard_service_account_list_free(v, n);
	api_json(r, 200, a);
}

static void sa_delete(struct api_req *q, struct api_resp *r, const char *name)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_ADMIN_WRITE)))
		return;
	int e = store_sa_delete(q->c->store, name);
	if (e < 0)
		return api_store_error(r, e, "service account");
	accounts_wait(q->c, name, NULL);
	r->status = 200;
}

/* ---- workers ---- */

static void worker_create(struct api_req *q, struct api_resp *r)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_COMPUTE_WRITE)))
		return;
	PARSE_BODY(worker, w);
	if (check_name(r, w.meta.name, "worker")) {
		if (!w.arch || !*w.arch) {
			free(w.arch);
			w.arch = xstrdup(ORCHARD_ARCH_ARM64);
		}
		if (!w.runtime || !*w.runtime) {
			free(w.runtime);
			w.runtime = xstrdup(ORCHARD_RUNTIME_TART);
		}
		int64_t now = orchard_now();
		if (w.last_seen == 0)
			w.last_seen = now;
		w.meta.created_at = now;
		w.meta.version = 0;
		struct orchard_worker out;
		int e =
		    store_worker_register(q->c->store, &w, q->c->o.worker_offline_timeout_s, &out);
		if (e == -EEXIST) {
			api_error(r, 409,
				  "this worker is managed from a different machine ID, delete "
				  "this worker first to be able to re-create it");
		} else if (e < 0) {
			api_store_error(r, e, "worker");
		} else {
			api_json(r, 200, orchard_worker_to_json(&out));
			orchard_worker_release(&out);
			controller_kick_scheduler(q->c);
		}
	}
	orchard_worker_release(&w);
}

static void worker_update(struct api_req *q, struct api_resp *r, const char *name)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_COMPUTE_WRITE)))
		return;
	PARSE_BODY(worker, w);
	if (w.meta.name && *w.meta.name && !streq(w.meta.name, name)) {
		api_error(r, 412, "worker name in the body differs from the URL");
	} else {
		free(w.meta.name);
		w.meta.name = xstrdup(name);
		struct orchard_worker out;
		int e =
		    store_worker_update(q->c->store, &w, q->c->o.worker_offline_timeout_s, &out);
		if (e < 0) {
			api_store_error(r, e, "worker");
		} else {
			api_json(r, 200, orchard_worker_to_json(&out));
			orchard_worker_release(&out);
		}
	}
	orchard_worker_release(&w);
}

static void worker_get(struct api_req *q, struct api_resp *r, const char *name)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_COMPUTE_READ)))
		return;
	struct orchard_worker w;
	int e = store_worker_get(q->c->store, name, &w, NULL);
	if (e < 0)
		return api_store_error(r, e, "worker");
	api_json(r, 200, orchard_worker_to_json(&w));
	orchard_worker_release(&w);
}

static void worker_list(struct api_req *q, struct api_resp *r)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_COMPUTE_READ)))
		return;
	struct orchard_worker *v;
	size_t n;
	int e = store_worker_list(q->c->store, 0, &v, &n, NULL, NULL);
	if (e < 0)
		return api_store_error(r, e, "workers");
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, orchard_worker_to_json(&v[i]));
	orchard_worker_list_free(v, n);
	api_json(r, 200, a);
}

static void worker_delete(struct api_req *q, struct api_resp *r, const char *name)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_COMPUTE_WRITE)))
		return;
	int e = store_worker_delete(q->c->store, name);
	if (e < 0)
		return api_store_error(r, e, "worker");
	r->status = 200;
	controller_kick_scheduler(q->c);
}

/* ---- VMs ---- */

static void vm_create(struct api_req *q, struct api_resp *r)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_COMPUTE_WRITE)))
		return;
	PARSE_BODY(vm, vm);
	char *err = NULL;
	char uid[37];
	orchard_uuid(uid);
	if (orchard_vm_prepare_create(&vm, uid, orchard_now(), &err) < 0) {
		api_error(r, 412, "%s", err);
		goto finish;
	}
	if (vm.host_dirs.n) {
		struct orchard_cluster_settings cs;
		int e = store_cluster_settings_get(q->c->store, &cs);
		if (e < 0) {
			api_store_error(r, e, "cluster settings");
			goto finish;
		}
		e = orchard_host_dirs_check(&cs.host_dir_policies, &vm.host_dirs, &err);
		orchard_cluster_settings_release(&cs);
		if (e < 0) {
			api_error(r, 400, "%s", err);
			goto finish;
		}
	}
	int e = store_vm_create(q->c->store, &vm);
	if (e < 0) {
		api_store_error(r, e, "VM");
		goto finish;
	}
	api_json(r, 200, orchard_vm_to_json(&vm));
	controller_kick_scheduler(q->c);
finish:
	free(err);
	orchard_vm_release(&vm);
}

struct vm_update_ctx {
	const struct orchard_vm *user;
	bool state; /* PUT /state (or an old worker on PUT /vms/:name) */
	char *error;
};

static int vm_update_fn(struct orchard_vm *vm, void *userdata)
{
	struct vm_update_ctx *u = userdata;
	free(u->error);
	u->error = NULL;
	if (u->state) {
		int r = orchard_vm_apply_state_update(vm, u->user, orchard_now(), &u->error);
		return r < 0 ? -EPERM : 1;
	}
	int r = orchard_vm_apply_spec_update(vm, u->user, &u->error);
	return r < 0 ? -EPERM : r;
}

static void vm_update(struct api_req *q, struct api_resp *r, const char *name, bool state)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_COMPUTE_WRITE)))
		return;
	PARSE_BODY(vm, user);
	struct vm_update_ctx u = {.user = &user, .state = state};
	struct orchard_vm out = {0};
	int e = store_vm_update(q->c->store, name, vm_update_fn, &u, &out);
	if (e == -EPERM) {
		api_error(r, 412, "%s", u.error ? u.error : "invalid update");
	} else if (e < 0) {
		api_store_error(r, e, "VM");
	} else {
		api_json(r, 200, orchard_vm_to_json(&out));
		orchard_vm_release(&out);
	}
	free(u.error);
	orchard_vm_release(&user);
}

static void vm_get(struct api_req *q, struct api_resp *r, const char *name)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_COMPUTE_READ)))
		return;
	struct orchard_vm vm;
	int e = store_vm_get(q->c->store, name, &vm, NULL);
	if (e < 0)
		return api_store_error(r, e, "VM");
	_cleanup_free_ char *watch = api_query(q->args, "watch");
	if (watch && streq(watch, "true")) {
		r->defer = API_DEFER_WATCH;
		r->vm = xmalloc(sizeof(*r->vm));
		*r->vm = vm;
		r->status = 200;
		return;
	}
	api_json(r, 200, orchard_vm_to_json(&vm));
	orchard_vm_release(&vm);
}

static void vm_list(struct api_req *q, struct api_resp *r)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_COMPUTE_READ)))
		return;
	_cleanup_free_ char *filter = api_query(q->args, "filter");
	struct orchard_strv paths = {0}, values = {0};
	if (filter && *filter) {
		char *save = NULL;
		for (char *f = strtok_r(filter, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(f, '=');
			if (!eq || eq == f) {
				api_error(r, 412, "invalid filter: %s",
					  eq ? "path cannot be empty" : "expected path=value");
				orchard_strv_release(&paths);
				orchard_strv_release(&values);
				return;
			}
			*eq = 0;
			orchard_strv_push(&paths, f);
			orchard_strv_push(&values, eq + 1);
		}
	}
	struct orchard_vm *v;
	size_t n;
	int e = store_vm_list(q->c->store, 0, &v, &n, NULL, NULL);
	if (e < 0) {
		orchard_strv_release(&paths);
		orchard_strv_release(&values);
		return api_store_error(r, e, "VMs");
	}
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		bool match = true;
		for (size_t k = 0; k < paths.n && match; k++)
			match = streq(paths.v[k], "worker") &&
				streq(v[i].worker ? v[i].worker : "", values.v[k]);
		if (match)
			json_array_append_new(a, orchard_vm_to_json(&v[i]));
	}
	orchard_vm_list_free(v, n);
	orchard_strv_release(&paths);
	orchard_strv_release(&values);
	api_json(r, 200, a);
}

static void vm_delete(struct api_req *q, struct api_resp *r, const char *name)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_COMPUTE_WRITE)))
		return;
	int e = store_vm_delete(q->c->store, name);
	if (e < 0)
		return api_store_error(r, e, "VM");
	r->status = 200;
	controller_kick_scheduler(q->c);
}

static void events_append(struct api_req *q, struct api_resp *r, const char *name)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_COMPUTE_WRITE)))
		return;
	json_t *j = body_json(q, r);
	if (!j)
		return;
	struct orchard_event *ev;
	size_t n;
	char *err = NULL;
	int e = orchard_event_list_from_json(j, ORCHARD_JSON_STRICT, &ev, &n, &err);
	json_decref(j);
	if (e < 0) {
		api_error(r, 400, "invalid JSON was provided: %s", err ? err : "");
		free(err);
		return;
	}
	/* etcd caps a transaction's operations (128 by default): append in batches */
	for (size_t i = 0; i < n && e == 0; i += 100)
		e = store_events_append(q->c->store, name, ev + i, MIN(100, n - i));
	orchard_event_list_free(ev, n);
	if (e < 0)
		return api_store_error(r, e, "VM");
	r->status = 200;
}

static void events_list(struct api_req *q, struct api_resp *r, const char *name)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_COMPUTE_READ)))
		return;
	_cleanup_free_ char *limit_s = api_query(q->args, "limit");
	_cleanup_free_ char *order = api_query(q->args, "order");
	_cleanup_free_ char *cursor_s = api_query(q->args, "cursor");
	uint64_t limit = 0;
	if (limit_s && *limit_s) {
		char *end;
		errno = 0;
		long long v = strtoll(limit_s, &end, 10);
		if (*end || errno || v <= 0)
			return api_error(r, 400, "invalid limit \"%s\": expected positive integer",
					 limit_s);
		limit = (uint64_t)v;
	}
	bool desc = false;
	if (order && *order) {
		if (streq(order, "desc"))
			desc = true;
		else if (!streq(order, "asc"))
			return api_error(r, 400,
					 "unsupported order \"%s\", expected \"asc\" or "
					 "\"desc\"",
					 order);
	}
	_cleanup_free_ char *cursor = NULL;
	if (cursor_s && *cursor_s) {
		size_t len;
		if (orchard_b64url_decode(cursor_s, &cursor, &len) < 0 || strlen(cursor) != len ||
		    strchr(cursor, '/'))
			return api_error(r, 400, "invalid cursor \"%s\"", cursor_s);
	}
	struct orchard_vm vm;
	int e = store_vm_get(q->c->store, name, &vm, NULL);
	if (e < 0)
		return api_store_error(r, e, "VM");
	struct store_events_page page;
	e = store_events_list(q->c->store, vm.uid ? vm.uid : "", limit, desc, cursor, &page);
	orchard_vm_release(&vm);
	if (e < 0)
		return api_store_error(r, e, "events");
	json_t *a = json_array();
	for (size_t i = 0; i < page.n; i++)
		json_array_append_new(a, orchard_event_to_json(&page.items[i]));
	if (page.next_cursor)
		r->next_cursor = orchard_b64url_encode(page.next_cursor, strlen(page.next_cursor));
	store_events_page_release(&page);
	api_json(r, 200, a);
}

/* GET /vms/:name/ip: check what can be checked now; the wait happens in http.c */
static void vm_ip(struct api_req *q, struct api_resp *r, const char *name)
{
	if (!api_authorize(q, r, true,
			   ROLES(ORCHARD_ROLE_COMPUTE_WRITE, ORCHARD_ROLE_COMPUTE_CONNECT)))
		return;
	_cleanup_free_ char *wait_s = api_query(q->args, "wait");
	uint64_t wait = 0;
	if (wait_s) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(wait_s, &end, 10);
		if (!*wait_s || *end || errno || v > 65535 || wait_s[0] == '-')
			return api_error(r, 400, "invalid wait \"%s\"", wait_s);
		wait = v;
	}
	struct orchard_vm vm;
	int e = store_vm_get(q->c->store, name, &vm, NULL);
	if (e < 0)
		return api_store_error(r, e, "VM");
	if (orchard_vm_is_failed(&vm)) {
		api_error(r, 417, "VM is in a terminal state '%s'", vm.status);
		orchard_vm_release(&vm);
		return;
	}
	r->defer = API_DEFER_IP;
	r->vm = xmalloc(sizeof(*r->vm));
	*r->vm = vm;
	r->wait_s = wait;
	r->status = 200;
}

static void resolve_ip(struct api_req *q, struct api_resp *r)
{
	if (!api_authorize(q, r, false, ROLES(ORCHARD_ROLE_COMPUTE_WRITE)))
		return;
	_cleanup_free_ char *session = api_query(q->args, "session");
	_cleanup_free_ char *ip = api_query(q->args, "ip");
	_cleanup_free_ char *err = api_query(q->args, "errorMessage");
	if (!session || orchard_name_validate(session, "session", NULL) < 0)
		return api_error(r, 400, "invalid session");
	int e = rpc_answer(q->c, session, ip ? ip : "", err ? err : "");
	if (e < 0)
		return api_store_error(r, e, "session");
	r->status = 200;
}

/* ---- routing ---- */

/* A WebSocket route asked without an upgrade: Orchard checks the credentials first (401). */
static void websocket_only(struct api_req *q, struct api_resp *r, bool any,
			   const char *const *roles)
{
	if (!api_authorize(q, r, any, roles))
		return;
	api_error(r, 400, "this endpoint needs a WebSocket upgrade");
}

static bool is(const struct api_req *q, int method, size_t nseg, const char *s0, const char *s2)
{
	return q->method == method && q->nseg == nseg && streq(q->seg[0], s0) &&
	       (!s2 || (nseg > 2 && streq(q->seg[2], s2)));
}

void api_handle(struct api_req *q, struct api_resp *r)
{
	strbuf_init(&r->body, 0);
	r->defer = API_NOW;
	if (q->nseg == 0) {
		if (q->method == LWSHUMETH_GET) {
			r->status = 200;
			return;
		}
		return api_error(r, 404, "not found");
	}
	const char *name = q->nseg > 1 ? q->seg[1] : NULL;
	if (q->nseg == 2 && streq(q->seg[0], "controller") && streq(q->seg[1], "info") &&
	    q->method == LWSHUMETH_GET)
		return controller_info(q, r);
	if (is(q, LWSHUMETH_GET, 1, "cluster-settings", NULL))
		return cluster_settings_get(q, r);
	if (is(q, LWSHUMETH_PUT, 1, "cluster-settings", NULL))
		return cluster_settings_put(q, r);
	if (is(q, LWSHUMETH_POST, 1, "service-accounts", NULL))
		return sa_create(q, r);
	if (is(q, LWSHUMETH_GET, 1, "service-accounts", NULL))
		return sa_list(q, r);
	if (is(q, LWSHUMETH_GET, 2, "service-accounts", NULL))
		return sa_get(q, r, name);
	if (is(q, LWSHUMETH_PUT, 2, "service-accounts", NULL))
		return sa_update(q, r, name);
	if (is(q, LWSHUMETH_DELETE, 2, "service-accounts", NULL))
		return sa_delete(q, r, name);
	if (is(q, LWSHUMETH_POST, 1, "workers", NULL))
		return worker_create(q, r);
	if (is(q, LWSHUMETH_GET, 1, "workers", NULL))
		return worker_list(q, r);
	if (is(q, LWSHUMETH_GET, 2, "workers", NULL))
		return worker_get(q, r, name);
	if (is(q, LWSHUMETH_PUT, 2, "workers", NULL))
		return worker_update(q, r, name);
	if (is(q, LWSHUMETH_DELETE, 2, "workers", NULL))
		return worker_delete(q, r, name);
	if (is(q, LWSHUMETH_POST, 1, "vms", NULL))
		return vm_create(q, r);
	if (is(q, LWSHUMETH_GET, 1, "vms", NULL))
		return vm_list(q, r);
	if (is(q, LWSHUMETH_GET, 2, "vms", NULL))
		return vm_get(q, r, name);
	if (is(q, LWSHUMETH_PUT, 2, "vms", NULL))
		return vm_update(q, r, name,
				 q->user_agent && strncmp(q->user_agent, "Orchard/0", 9) == 0);
	if (is(q, LWSHUMETH_DELETE, 2, "vms", NULL))
		return vm_delete(q, r, name);
	if (is(q, LWSHUMETH_PUT, 3, "vms", "state"))
		return vm_update(q, r, name, true);
	if (is(q, LWSHUMETH_GET, 3, "vms", "events"))
		return events_list(q, r, name);
	if (is(q, LWSHUMETH_POST, 3, "vms", "events"))
		return events_append(q, r, name);
	if (is(q, LWSHUMETH_GET, 3, "vms", "ip"))
		return vm_ip(q, r, name);
	if (is(q, LWSHUMETH_POST, 2, "rpc", NULL) && streq(q->seg[1], "resolve-ip"))
		return resolve_ip(q, r);
	if (is(q, LWSHUMETH_GET, 3, "vms", "port-forward") ||
	    is(q, LWSHUMETH_GET, 3, "vms", "exec"))
		return websocket_only(
		    q, r, true, ROLES(ORCHARD_ROLE_COMPUTE_WRITE, ORCHARD_ROLE_COMPUTE_CONNECT));
	if (is(q, LWSHUMETH_GET, 3, "workers", "port-forward"))
		return websocket_only(q, r, false, ROLES(ORCHARD_ROLE_ADMIN_WRITE));
	if (is(q, LWSHUMETH_GET, 2, "rpc", NULL))
		return websocket_only(q, r, false,
				      ROLES(streq(q->seg[1], "watch")
						? ORCHARD_ROLE_COMPUTE_READ
						: ORCHARD_ROLE_COMPUTE_WRITE));
	api_error(r, 404, "not found");
}

void api_job_free(struct api_job *j)
{
	if (!j)
		return;
	orchard_strv_release(&j->seg);
	orchard_strv_release(&j->args);
	free(j->body);
	free(j->authorization);
	free(j->user_agent);
	api_resp_release(&j->resp);
	free(j);
}

void api_run_job(struct controller *c, struct api_job *j)
{
	struct orchard_service_account sa = {0};
	bool has_sa = false;
	if (j->authorization) {
		int r = api_authenticate(c, j->authorization, &sa);
		if (r < 0) {
			strbuf_init(&j->resp.body, 0);
			if (r == -EACCES)
				api_error(&j->resp, 401, "invalid service account name or token");
			else
				api_store_error(&j->resp, r, "service account");
			return;
		}
		has_sa = true;
	}
	struct api_req q = {.c = c,
			    .method = j->method,
			    .seg = j->seg.v,
			    .nseg = j->seg.n,
			    .args = &j->args,
			    .body = j->body,
			    .body_len = j->body_len,
			    .sa = has_sa ? &sa : NULL,
			    .user_agent = j->user_agent};
	api_handle(&q, &j->resp);
	orchard_service_account_release(&sa);
}
