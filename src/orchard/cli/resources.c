// SPDX-License-Identifier: Apache-2.0
/*
 * The plain resource commands: list vms|workers|service-accounts, get worker|service-account|
 * bootstrap-token, delete vm|worker|service-account, create service-account, pause|resume
 * worker (Orchard's internal/command/{list,get,deletecmd,create,pause,resume}).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "orchard/api.h"
#include "orchard/cli/cli.h"
#include "orchard/client.h"
#include "orchard/cmd/cmd.h"
#include "orchard/config.h"
#include "orchard/resource.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/time.h"

/* Parse NAME-taking commands and GET or DELETE <kind>/<name>; 0 on success. */
static int one(int argc, char **argv, const char *path, const char *help, const char *kind,
	       const char *method, struct orchard_client **ret_client, json_t **ret,
	       struct strvec *args)
{
	const struct ocli_cmd c = {path, "NAME", help, NULL, 1, 1};
	int r = ocli_parse(&c, argc, argv, args);
	if (r != 0)
		return r > 0 ? 1 : -EINVAL;
	if (ocli_client(ret_client) < 0)
		return -EINVAL;
	_cleanup_free_ char *err = NULL, *p = ocli_path(kind, args->v[0], NULL);
	r = orchard_send(*ret_client, method, p, NULL, ret, &err);
	if (r < 0) {
		ocli_api_fail(r, err);
		return -EINVAL;
	}
	return 0;
}

static int simple(int argc, char **argv, const char *path, const char *help, const char *kind,
		  const char *method)
{
	_cleanup_strvec_ struct strvec args = STRVEC_INIT;
	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	_cleanup_json_ json_t *j = NULL;
	int r = one(argc, argv, path, help, kind, method, &cl, &j, &args);
	return r < 0 ? 1 : 0;
}

int orchard_cmd_delete_vm(int argc, char **argv)
{
	return simple(argc, argv, "delete vm", "Delete a VM", "vms", "DELETE");
}

int orchard_cmd_delete_worker(int argc, char **argv)
{
	return simple(argc, argv, "delete worker", "Delete a worker", "workers", "DELETE");
}

int orchard_cmd_delete_service_account(int argc, char **argv)
{
	return simple(argc, argv, "delete service-account", "Delete a service account",
		      "service-accounts", "DELETE");
}

/* list: -q prints names only; otherwise the table that columns() fills. */
static int list(int argc, char **argv, const char *path, const char *help, const char *kind,
		void (*columns)(const json_t *item, struct strvec *cells), const char *const *hdr,
		size_t ncols)
{
	bool quiet = false;
	const struct ocli_flag flags[] = {
	    {"quiet", 'q', OCLI_BOOL, &quiet, "only show resource names"},
	    {0},
	};
	const struct ocli_cmd c = {path, NULL, help, flags, 0, 0};
	_cleanup_strvec_ struct strvec args = STRVEC_INIT, cells = STRVEC_INIT;
	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	int r = ocli_begin(&c, argc, argv, &args, &cl);
	if (r != 0)
		return r > 0 ? 0 : 1;
	_cleanup_json_ json_t *items = NULL;
	_cleanup_free_ char *err = NULL;
	r = orchard_get(cl, kind, NULL, &items, &err);
	if (r < 0)
		return ocli_api_fail(r, err);
	size_t i;
	json_t *x;
	if (quiet) {
		json_array_foreach(items, i, x) printf("%s\n", orchard_str(x, "name"));
		return 0;
	}
	for (size_t k = 0; k < ncols; k++)
		strvec_push(&cells, hdr[k]);
	json_array_foreach(items, i, x) columns(x, &cells);
	struct strbuf out = STRBUF_INIT;
	orchard_table((const char *const *)cells.v, cells.nr / ncols, ncols, &out);
	printf("%s\n", out.buf);
	strbuf_release(&out);
	return 0;
}

static void vm_columns(const json_t *vm, struct strvec *cells)
{
	char created[64];
	orchard_reltime(orchard_json_time(vm, "createdAt"), time(NULL), created, sizeof(created));
	strvec_pushl(cells, orchard_str(vm, "name"), created, orchard_str(vm, "image"),
		     orchard_str(vm, "status"), NULL);
	strvec_pushf(cells, "%s (%llu restarts)", orchard_str(vm, "restart_policy"),
		     (unsigned long long)orchard_u64(vm, "restart_count"));
	strvec_push(cells, orchard_str(vm, "worker"));
}

int orchard_cmd_list_vms(int argc, char **argv)
{
	static const char *const hdr[] = {"Name",   "Created",	      "Image",
					  "Status", "Restart policy", "Assigned worker"};
	return list(argc, argv, "list vms", "List VMs", "vms", vm_columns, hdr, 6);
}

static void worker_columns(const json_t *w, struct strvec *cells)
{
	char seen[64];
	orchard_reltime(orchard_json_time(w, "last_seen"), time(NULL), seen, sizeof(seen));
	strvec_pushl(cells, orchard_str(w, "name"), seen,
		     orchard_bool(w, "scheduling_paused") ? "true" : "false", NULL);
}

int orchard_cmd_list_workers(int argc, char **argv)
{
	static const char *const hdr[] = {"Name", "Last seen", "Scheduling paused"};
	return list(argc, argv, "list workers", "List workers", "workers", worker_columns, hdr, 3);
}

static void sa_columns(const json_t *sa, struct strvec *cells)
{
	struct strvec roles = STRVEC_INIT;
	size_t i;
	json_t *x;
	json_array_foreach(json_object_get(sa, "roles"), i, x)
	    strvec_push(&roles, json_string_value(x) ?: "");
	char *r = strvec_join(&roles, ", ");
	strvec_pushl(cells, orchard_str(sa, "name"), r, NULL);
	free(r);
	strvec_clear(&roles);
}

int orchard_cmd_list_service_accounts(int argc, char **argv)
{
	static const char *const hdr[] = {"Name", "Roles"};
	return list(argc, argv, "list service-accounts", "List service accounts",
		    "service-accounts", sa_columns, hdr, 2);
}

int orchard_cmd_get_worker(int argc, char **argv)
{
	_cleanup_strvec_ struct strvec args = STRVEC_INIT, rows = STRVEC_INIT;
	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	_cleanup_json_ json_t *w = NULL;
	int r = one(argc, argv, "get worker", "Retrieve a worker and it's fields", "workers", "GET",
		    &cl, &w, &args);
	if (r != 0)
		return r > 0 ? 0 : 1;
	char created[64], seen[64], cpu[32], mem[32];
	time_t now = time(NULL);
	orchard_reltime(orchard_json_time(w, "createdAt"), now, created, sizeof(created));
	orchard_reltime(orchard_json_time(w, "last_seen"), now, seen, sizeof(seen));
	snprintf(cpu, sizeof(cpu), "%llu", (unsigned long long)orchard_u64(w, "defaultCPU"));
	snprintf(mem, sizeof(mem), "%llu", (unsigned long long)orchard_u64(w, "defaultMemory"));
	_cleanup_free_ char *res = ocli_map_lines(json_object_get(w, "resources"));
	_cleanup_free_ char *lab = ocli_map_lines(json_object_get(w, "labels"));
	strvec_pushl(&rows, "Name", orchard_str(w, "name"), "Created", created, "Last seen", seen,
		     "Machine ID", orchard_str(w, "machine_id"), "Scheduling paused",
		     orchard_bool(w, "scheduling_paused") ? "true" : "false", "Default CPU", cpu,
		     "Default memory", mem, "Resources", *res ? res : "none", "Labels",
		     *lab ? lab : "none", NULL);
	ocli_print_rows((const char *const *)rows.v, rows.nr / 2);
	return 0;
}

int orchard_cmd_get_service_account(int argc, char **argv)
{
	_cleanup_strvec_ struct strvec args = STRVEC_INIT, rows = STRVEC_INIT, cells = STRVEC_INIT;
	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	_cleanup_json_ json_t *sa = NULL;
	int r = one(argc, argv, "get service-account", "Retrieve a service account",
		    "service-accounts", "GET", &cl, &sa, &args);
	if (r != 0)
		return r > 0 ? 0 : 1;
	sa_columns(sa, &cells);
	strvec_pushl(&rows, "Name", cells.v[0], "Token", orchard_str(sa, "token"), "Roles",
		     cells.v[1], NULL);
	ocli_print_rows((const char *const *)rows.v, rows.nr / 2);
	return 0;
}

int orchard_cmd_get_bootstrap_token(int argc, char **argv)
{
	_cleanup_strvec_ struct strvec args = STRVEC_INIT;
	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	_cleanup_json_ json_t *sa = NULL;
	int r = one(argc, argv, "get bootstrap-token",
		    "Retrieve a bootstrap token for the specified service account",
		    "service-accounts", "GET", &cl, &sa, &args);
	if (r != 0)
		return r > 0 ? 0 : 1;
	struct orchard_context ctx;
	_cleanup_free_ char *err = NULL;
	if (orchard_config_current(&ctx, &err) < 0)
		return ocli_fail("%s", err);
	_cleanup_free_ char *t = orchard_bootstrap_token_format(
	    orchard_str(sa, "name"), orchard_str(sa, "token"), ctx.cert_pem);
	orchard_context_release(&ctx);
	if (!t)
		return ocli_fail("failed to create bootstrap token: empty service account name or "
				 "token");
	printf("%s\n", t);
	return 0;
}

int orchard_cmd_create_service_account(int argc, char **argv)
{
	const char *token = "";
	_cleanup_strvec_ struct strvec roles = STRVEC_INIT, args = STRVEC_INIT;
	_cleanup_free_ char *roles_help = NULL, *err = NULL;
	struct strvec all = STRVEC_INIT;
	for (const char *const *p = orchard_all_roles; *p; p++)
		strvec_push(&all, *p);
	char *joined = strvec_join(&all, ", ");
	roles_help =
	    xasprintf("roles to grant to this service account (supported roles: %s)", joined);
	free(joined);
	strvec_clear(&all);
	const struct ocli_flag flags[] = {
	    {"token", 0, OCLI_STRING, &token,
	     "token to use for this service account (autogenerated by the API server if left "
	     "empty)"},
	    {"roles", 0, OCLI_ARRAY, &roles, roles_help, "[]"},
	    {0},
	};
	const struct ocli_cmd c = {
	    "create service-account", "NAME", "Create a service account", flags, 1, 1};
	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	int r = ocli_begin(&c, argc, argv, &args, &cl);
	if (r != 0)
		return r > 0 ? 0 : 1;
	json_t *sa = json_pack("{s:s}", "name", args.v[0]);
	if (*token)
		json_object_set_new(sa, "token", json_string(token));
	json_t *rl = json_array();
	for (size_t i = 0; i < roles.nr; i++)
		json_array_append_new(rl, json_string(roles.v[i]));
	json_object_set_new(sa, "roles", rl);
	r = orchard_send(cl, "POST", "service-accounts", sa, NULL, &err);
	json_decref(sa);
	return r < 0 ? ocli_api_fail(r, err) : 0;
}

/* pause/resume worker: GET, flip scheduling_paused, PUT. */
static int set_paused(int argc, char **argv, const char *path, const char *help, bool paused)
{
	_cleanup_strvec_ struct strvec args = STRVEC_INIT;
	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	_cleanup_json_ json_t *w = NULL;
	int r = one(argc, argv, path, help, "workers", "GET", &cl, &w, &args);
	if (r != 0)
		return r > 0 ? 0 : 1;
	json_object_set_new(w, "scheduling_paused", json_boolean(paused));
	_cleanup_free_ char *err = NULL, *p = ocli_path("workers", args.v[0], NULL);
	r = orchard_send(cl, "PUT", p, w, NULL, &err);
	return r < 0 ? ocli_api_fail(r, err) : 0;
}

int orchard_cmd_pause_worker(int argc, char **argv)
{
	return set_paused(argc, argv, "pause worker", "Pause a worker", true);
}

int orchard_cmd_resume_worker(int argc, char **argv)
{
	return set_paused(argc, argv, "resume worker", "Resume a worker", false);
}

int orchard_cmd_get_cluster_settings(int argc, char **argv)
{
	const struct ocli_cmd c = {
	    "get cluster-settings", NULL, "Retrieve cluster settings", NULL, 0, 0};
	_cleanup_strvec_ struct strvec args = STRVEC_INIT, rows = STRVEC_INIT, pol = STRVEC_INIT;
	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	int r = ocli_begin(&c, argc, argv, &args, &cl);
	if (r != 0)
		return r > 0 ? 0 : 1;
	_cleanup_json_ json_t *cs = NULL;
	_cleanup_free_ char *err = NULL;
	r = orchard_get(cl, "cluster-settings", NULL, &cs, &err);
	if (r < 0)
		return ocli_api_fail(r, err);
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(cs, "hostDirPolicies"), i, p) strvec_pushf(
	    &pol, "%s%s", orchard_str(p, "pathPrefix"), orchard_bool(p, "ro") ? ":ro" : "");
	_cleanup_free_ char *pols = strvec_join(&pol, ",");
	strvec_pushl(&rows, "Key", "Value", "hostDir policies", *pols ? pols : "none",
		     "Scheduler profile", orchard_str(cs, "schedulerProfile"), NULL);
	ocli_print_rows((const char *const *)rows.v, rows.nr / 2);
	return 0;
}

/* Orchard's NewHostDirPolicyFromString: PREFIX[:ro], URLs taken whole. */
static int host_dir_policy(const char *s, json_t **ret)
{
	bool url = strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
	size_t n = strlen(s);
	bool ro = n > 3 && streq(s + n - 3, ":ro");
	_cleanup_free_ char *prefix = xstrndup(s, ro ? n - 3 : n);
	if (!url) {
		const char *colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			return ocli_fail(
				   "invalid hostDir policy: hostDir policy should contain 2 parts "
				   "at max"),
			       -EINVAL;
		if (colon && !ro)
			return ocli_fail(
				   "invalid hostDir policy: hostDir policy's second part can only "
				   "be \"ro\", found \"%s\"",
				   colon + 1),
			       -EINVAL;
		if (!*prefix)
			return ocli_fail("invalid hostDir policy: path prefix cannot be empty"),
			       -EINVAL;
	}
	*ret = json_pack("{s:s,s:b}", "pathPrefix", prefix, "ro", ro);
	return 0;
}

int orchard_cmd_set_cluster_settings(int argc, char **argv)
{
	_cleanup_strvec_ struct strvec policies = STRVEC_INIT, args = STRVEC_INIT;
	const char *profile = NULL;
	bool set_pol = false, set_prof = false;
	const struct ocli_flag flags[] = {
	    {"host-dir-policies", 0, OCLI_SLICE, &policies,
	     "comma-separated list of hostDir policies containing an allowed path prefix and an "
	     "optional \":ro\" modifier to only allow read-only mounts for that path prefix "
	     "(for example, --host-dir-policies=/Users/ci/sources:ro,/tmp)",
	     "[]", false, &set_pol},
	    {"scheduler-profile", 0, OCLI_STRING, &profile,
	     "scheduler profile to use: optimize-utilization (the busiest worker that fits first) "
	     "or distribute-load (the least occupied first)",
	     NULL, false, &set_prof},
	    {0},
	};
	const struct ocli_cmd c = {
	    "set cluster-settings", NULL, "Set cluster settings", flags, 0, 0};
	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	int r = ocli_begin(&c, argc, argv, &args, &cl);
	if (r != 0)
		return r > 0 ? 0 : 1;
	if (!set_pol && !set_prof)
		return ocli_fail("failed to set cluster settings: you need to specify at least one "
				 "setting to update");
	if (set_prof && !streq(profile, "optimize-utilization") &&
	    !streq(profile, "distribute-load"))
		return ocli_fail("unsupported scheduler profile: \"%s\"", profile);
	_cleanup_json_ json_t *cs = NULL;
	_cleanup_free_ char *err = NULL;
	r = orchard_get(cl, "cluster-settings", NULL, &cs, &err);
	if (r < 0)
		return ocli_api_fail(r, err);
	if (set_pol) {
		/* Orchard appends to the policies that are there */
		json_t *arr = json_object_get(cs, "hostDirPolicies");
		if (!json_is_array(arr)) {
			arr = json_array();
			json_object_set_new(cs, "hostDirPolicies", arr);
		}
		for (size_t i = 0; i < policies.nr; i++) {
			json_t *p;
			if (host_dir_policy(policies.v[i], &p) < 0)
				return 1;
			json_array_append_new(arr, p);
		}
	}
	if (set_prof)
		json_object_set_new(cs, "schedulerProfile", json_string(profile));
	free(err);
	err = NULL;
	r = orchard_send(cl, "PUT", "cluster-settings", cs, NULL, &err);
	return r < 0 ? ocli_api_fail(r, err) : 0;
}
