// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "orchard/resource.h"
#include "util/json.h"

static json_t *parse(const char *s)
{
	json_t *j = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	assert_non_null(j);
	return j;
}

/* A VM as Orchard's own controller returns it (keys and order from pkg/resource/v1). */
static const char vm_wire[] =
    "{\"image\":\"ghcr.io/cirruslabs/debian:latest\",\"imagePullPolicy\":\"IfNotPresent\","
    "\"cpu\":2,\"memory\":2048,\"headless\":true,\"os\":\"linux\",\"arch\":\"amd64\","
    "\"runtime\":\"tart\",\"netSoftnetAllow\":[\"10.0.0.0/8\"],\"powerState\":\"running\","
    "\"localName\":\"orchard-vm1-0d1a5d3e-6f4b-4c8e-9a9a-1c2d3e4f5a6b-0\","
    "\"observedGeneration\":0,\"conditions\":[{\"type\":\"scheduled\",\"state\":\"false\"}],"
    "\"status\":\"pending\",\"startup_script\":{\"script_content\":\"echo hi\","
    "\"env\":{\"B\":\"2\",\"A\":\"1\"}},\"restart_policy\":\"OnFailure\","
    "\"restarted_at\":\"0001-01-01T00:00:00Z\",\"uid\":\"0d1a5d3e-6f4b-4c8e-9a9a-1c2d3e4f5a6b\","
    "\"resources\":{\"org.cirruslabs.tart-vms\":1},\"labels\":{\"gpu\":\"no\"},"
    "\"hostDirs\":[{\"name\":\"src\",\"path\":\"/srv/src\",\"ro\":true}],"
    "\"scheduled_at\":\"0001-01-01T00:00:00Z\",\"started_at\":\"0001-01-01T00:00:00Z\","
    "\"generation\":3,\"name\":\"vm1\",\"createdAt\":\"2026-12-06T22:40:01.123456789+01:00\","
    "\"version\":7}";

static void test_vm_round_trip(void **state)
{
	(void)state;
	json_t *j = parse(vm_wire);
	struct orchard_vm vm = {0};
	char *err = NULL;
	assert_int_equal(orchard_vm_from_json(j, ORCHARD_JSON_STRICT, &vm, &err), 0);
	assert_string_equal(vm.image, "ghcr.io/cirruslabs/debian:latest");
	assert_int_equal(vm.cpu, 2);
	assert_true(vm.headless);
	assert_string_equal(vm.arch, "amd64");
	assert_int_equal(vm.net_softnet_allow.n, 1);
	assert_string_equal(vm.startup_script->env.v[0].key, "A"); /* maps are kept sorted */
	assert_int_equal(vm.generation, 3);
	assert_int_equal(vm.meta.version, 7);
	/* +01:00 becomes UTC */
	assert_int_equal(vm.meta.created_at, 1796593201123456789LL);
	assert_int_equal(vm.restarted_at, 0);
	assert_true(orchard_condition_is(&vm.conditions, "scheduled", "false"));
	assert_false(orchard_vm_is_scheduled(&vm));

	json_t *out = orchard_vm_to_json(&vm);
	char *s = orchard_json_dump(out);
	/* Go's field order, zero times written, createdAt in UTC, env sorted */
	assert_non_null(
	    strstr(s, "{\"image\":\"ghcr.io/cirruslabs/debian:latest\",\"imagePullPolicy\""));
	assert_non_null(strstr(s, "\"env\":{\"A\":\"1\",\"B\":\"2\"}"));
	assert_non_null(
	    strstr(s, "\"createdAt\":\"2026-12-06T21:40:01.123456789Z\",\"version\":7}"));
	assert_non_null(strstr(s, "\"restarted_at\":\"0001-01-01T00:00:00Z\""));
	assert_non_null(strstr(s, "\"observedGeneration\":0"));
	assert_null(strstr(s, "\"worker\"")); /* omitempty */
	assert_null(strstr(s, "\"diskSize\""));

	/* what we write reads back equal */
	struct orchard_vm again = {0};
	assert_int_equal(orchard_vm_from_json(out, ORCHARD_JSON_STRICT, &again, NULL), 0);
	json_t *out2 = orchard_vm_to_json(&again);
	assert_true(json_equal(out, out2));

	struct orchard_vm copy;
	orchard_vm_copy(&vm, &copy);
	orchard_vm_release(&vm);
	json_t *out3 = orchard_vm_to_json(&copy);
	assert_true(json_equal(out, out3));
	orchard_vm_release(&copy);
	orchard_vm_release(&again);
	assert_null(vm.image);
	free(s);
	free(err);
	json_decref(j);
	json_decref(out);
	json_decref(out2);
	json_decref(out3);
}

static void expect_bad_vm(const char *doc, unsigned flags, const char *msg_part)
{
	json_t *j = parse(doc);
	struct orchard_vm vm = {0};
	char *err = NULL;
	assert_int_equal(orchard_vm_from_json(j, flags, &vm, &err), -EBADMSG);
	assert_non_null(err);
	if (!strstr(err, msg_part))
		fail_msg("message '%s' lacks '%s'", err, msg_part);
	assert_null(vm.image); /* *ret untouched */
	free(err);
	json_decref(j);
}

static void test_vm_bad_json(void **state)
{
	(void)state;
	expect_bad_vm("{\"image\":\"x\",\"bogus\":1}", ORCHARD_JSON_STRICT,
		      "unknown field \"bogus\"");
	expect_bad_vm("{\"image\":\"x\",\"cpu\":\"2\"}", 0, "field \"cpu\"");
	expect_bad_vm("{\"image\":\"x\",\"cpu\":-1}", 0, "unsigned");
	expect_bad_vm("{\"image\":\"x\",\"cpu\":1.5}", 0, "unsigned");
	expect_bad_vm("{\"image\":\"x\",\"os\":\"windows\"}", 0, "unsupported OS");
	expect_bad_vm("{\"image\":\"x\",\"arch\":\"riscv64\"}", 0, "unsupported architecture");
	expect_bad_vm("{\"image\":\"x\",\"runtime\":\"qemu\"}", 0, "unsupported runtime");
	expect_bad_vm("{\"image\":\"x\",\"labels\":{\"a\":1}}", 0, "labels");
	expect_bad_vm("{\"image\":\"x\",\"resources\":{\"a\":-3}}", 0, "resources");
	expect_bad_vm("{\"image\":\"x\",\"conditions\":[{\"type\":\"a\",\"x\":1}]}",
		      ORCHARD_JSON_STRICT, "unknown field \"x\"");
	expect_bad_vm("{\"image\":\"x\",\"createdAt\":\"yesterday\"}", 0, "RFC 3339");
	expect_bad_vm("[1,2]", 0, "object");
	expect_bad_vm("{\"image\":\"a\\u0000b\"}", 0, "NUL");

	/* lenient mode skips unknown keys; null is the zero value */
	json_t *j = parse("{\"image\":\"x\",\"future\":{\"a\":1},\"cpu\":null}");
	struct orchard_vm vm = {0};
	assert_int_equal(orchard_vm_from_json(j, 0, &vm, NULL), 0);
	assert_int_equal(vm.cpu, 0);
	orchard_vm_release(&vm);
	json_decref(j);
}

static void test_time(void **state)
{
	(void)state;
	char buf[ORCHARD_TIME_MAX];
	int64_t ns;
	orchard_time_format(0, buf);
	assert_string_equal(buf, "0001-01-01T00:00:00Z");
	orchard_time_format(1500000000LL * 1000000000 + 500000000, buf);
	assert_string_equal(buf, "2017-07-14T02:40:00.5Z");
	orchard_time_format(1500000000LL * 1000000000, buf);
	assert_string_equal(buf, "2017-07-14T02:40:00Z");
	assert_int_equal(orchard_time_parse("2017-07-14T04:40:00.5+02:00", &ns), 0);
	assert_int_equal(ns, 1500000000LL * 1000000000 + 500000000);
	assert_int_equal(orchard_time_parse("0001-01-01T00:00:00Z", &ns), 0);
	assert_int_equal(ns, 0);
	assert_int_equal(orchard_time_parse("2017-07-14 04:40:00Z", &ns), -EINVAL);
	assert_int_equal(orchard_time_parse("2017-07-14T04:40:00", &ns), -EINVAL);
	assert_int_equal(orchard_time_parse("2017-13-14T04:40:00Z", &ns), -EINVAL);
	assert_int_equal(orchard_time_parse("2017-07-14T04:40:00.Z", &ns), -EINVAL);
}

static void test_names(void **state)
{
	(void)state;
	char *err = NULL;
	assert_int_equal(orchard_name_validate("vm-1:a_b.c", "VM", &err), 0);
	assert_int_equal(orchard_name_validate("", "VM", &err), -EINVAL);
	assert_string_equal(err, "VM name is empty");
	assert_int_equal(orchard_name_validate("a/b", "worker", &err), -EINVAL);
	assert_string_equal(err, "worker name name contains restricted characters, please only use "
				 "[A-Za-z0-9:-_.]");
	assert_int_equal(orchard_name_validate("a b", "VM", &err), -EINVAL);
	assert_int_equal(orchard_name_validate("\xc3\xa9", "VM", &err), -EINVAL);
	char longname[ORCHARD_NAME_MAX + 2];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	assert_int_equal(orchard_name_validate(longname, "VM", &err), -EINVAL);
	longname[ORCHARD_NAME_MAX] = 0;
	assert_int_equal(orchard_name_validate(longname, "VM", &err), 0);

	assert_int_equal(orchard_name_validate_next("ok-name-1", &err), 0);
	assert_int_equal(orchard_name_validate_next("Bad", &err), -EINVAL);
	assert_int_equal(orchard_name_validate_next("-x", &err), -EINVAL);
	assert_int_equal(orchard_name_validate_next("x_y", &err), -EINVAL);
	free(err);

	char *ln = orchard_local_name("my-vm", "0d1a5d3e-6f4b-4c8e-9a9a-1c2d3e4f5a6b", 12);
	assert_string_equal(ln, "orchard-my-vm-0d1a5d3e-6f4b-4c8e-9a9a-1c2d3e4f5a6b-12");
	char *name, *uid;
	uint64_t rc;
	assert_int_equal(orchard_local_name_parse(ln, &name, &uid, &rc), 0);
	assert_string_equal(name, "my-vm");
	assert_string_equal(uid, "0d1a5d3e-6f4b-4c8e-9a9a-1c2d3e4f5a6b");
	assert_int_equal(rc, 12);
	free(name);
	free(uid);
	free(ln);
	assert_int_equal(orchard_local_name_parse("debian", NULL, NULL, NULL), -ENOENT);
	assert_int_equal(orchard_local_name_parse("orchard-x-1-2-3", NULL, NULL, NULL), -EINVAL);
	assert_int_equal(orchard_local_name_parse("orchard-x-a-b-c-d-e-zz", NULL, NULL, NULL),
			 -EINVAL);
	assert_int_equal(orchard_local_name_parse("orchard-a-b-c-d-e-1", NULL, NULL, NULL),
			 -EINVAL);
}

static void test_maps(void **state)
{
	(void)state;
	struct orchard_resources avail = {0}, need = {0}, used = {0}, left;
	orchard_resources_set(&avail, "org.cirruslabs.tart-vms", 2);
	orchard_resources_set(&avail, "gpu", 1);
	orchard_resources_set(&need, "org.cirruslabs.tart-vms", 1);
	assert_true(orchard_resources_can_fit(&avail, &need));
	orchard_resources_add(&used, &need);
	orchard_resources_add(&used, &need);
	orchard_resources_add(&used, &need);
	assert_int_equal(orchard_resources_get(&used, "org.cirruslabs.tart-vms", NULL), 3);
	orchard_resources_subtracted(&avail, &used, &left);
	assert_int_equal(orchard_resources_get(&left, "org.cirruslabs.tart-vms", NULL), 0);
	assert_int_equal(orchard_resources_get(&left, "gpu", NULL), 1);
	assert_false(orchard_resources_can_fit(&left, &need));
	orchard_resources_set(&need, "missing", 1); /* a key the worker lacks counts as 0 */
	assert_false(orchard_resources_can_fit(&avail, &need));
	orchard_resources_set(&need, "missing", 0);
	assert_true(orchard_resources_can_fit(&avail, &need));

	struct orchard_labels w = {0}, v = {0};
	orchard_labels_set(&w, "os", "linux");
	orchard_labels_set(&w, "gpu", "yes");
	orchard_labels_set(&v, "gpu", "yes");
	assert_true(orchard_labels_contains(&w, &v));
	orchard_labels_set(&v, "gpu", "no");
	assert_false(orchard_labels_contains(&w, &v));
	assert_string_equal(w.v[0].key, "gpu");

	/* release through a struct that owns them */
	struct orchard_worker wk = {0};
	wk.resources = avail;
	wk.labels = w;
	orchard_worker_release(&wk);
	struct orchard_vm vm = {0};
	vm.resources = need;
	vm.labels = v;
	orchard_vm_release(&vm);
	wk.resources = used;
	wk.labels = (struct orchard_labels){0};
	orchard_worker_release(&wk);
	wk.resources = left;
	orchard_worker_release(&wk);
}

static void test_prepare_create(void **state)
{
	(void)state;
	json_t *j = parse("{\"name\":\"vm1\",\"image\":\"img\",\"worker\":\"sneaky\","
			  "\"netSoftnetBlock\":[\"1.2.3.4/32\"],\"status\":\"running\"}");
	struct orchard_vm vm = {0};
	char *err = NULL;
	assert_int_equal(orchard_vm_from_json(j, ORCHARD_JSON_STRICT, &vm, NULL), 0);
	assert_int_equal(orchard_vm_prepare_create(&vm, "u-1", 42, &err), 0);
	assert_string_equal(vm.status, "pending");
	assert_null(vm.worker);
	assert_string_equal(vm.os, "darwin"); /* Orchard's API defaults */
	assert_string_equal(vm.arch, "arm64");
	assert_string_equal(vm.runtime, "tart");
	assert_true(vm.net_softnet && vm.net_softnet_deprecated);
	assert_int_equal(orchard_resources_get(&vm.resources, ORCHARD_RESOURCE_TART_VMS, NULL), 1);
	assert_string_equal(vm.local_name, "orchard-vm1-u-1-0");
	assert_string_equal(vm.image_pull_policy, "IfNotPresent");
	assert_string_equal(vm.restart_policy, "Never");
	assert_string_equal(vm.power_state, "running");
	assert_true(orchard_condition_is(&vm.conditions, "scheduled", "false"));
	assert_int_equal(vm.meta.created_at, 42);
	orchard_vm_release(&vm);
	json_decref(j);

	/* linux VMs get no tart-vms resource */
	struct orchard_vm lin = {0};
	lin.meta.name = strdup("l");
	lin.image = strdup("img");
	lin.os = strdup("linux");
	lin.arch = strdup("amd64");
	assert_int_equal(orchard_vm_prepare_create(&lin, "u", 1, &err), 0);
	assert_int_equal(lin.resources.n, 0);
	orchard_vm_release(&lin);

	static const struct {
		const char *doc, *msg;
	} bad[] = {
	    {"{\"image\":\"i\"}", "VM name is empty"},
	    {"{\"name\":\"a b\",\"image\":\"i\"}", "restricted characters"},
	    {"{\"name\":\"a\"}", "VM image is empty"},
	    {"{\"name\":\"a\",\"image\":\"i\",\"restart_policy\":\"Always\"}",
	     "unsupported restart policy: \"Always\""},
	    {"{\"name\":\"a\",\"image\":\"i\",\"imagePullPolicy\":\"Never\"}",
	     "unsupported image pull policy"},
	    {"{\"name\":\"a\",\"image\":\"i\",\"runtime\":\"vetu\",\"suspendable\":true}",
	     "runtime \"vetu\" does not support field \"suspendable\""},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *b = parse(bad[i].doc);
		struct orchard_vm x = {0};
		assert_int_equal(orchard_vm_from_json(b, ORCHARD_JSON_STRICT, &x, NULL), 0);
		assert_int_equal(orchard_vm_prepare_create(&x, "u", 1, &err), -EINVAL);
		if (!strstr(err, bad[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].msg);
		orchard_vm_release(&x);
		json_decref(b);
	}
	free(err);
}

static void test_updates(void **state)
{
	(void)state;
	struct orchard_vm db = {0}, user = {0};
	char *err = NULL;
	db.meta.name = strdup("v");
	db.image = strdup("i");
	assert_int_equal(orchard_vm_prepare_create(&db, "u", 1, &err), 0);
	orchard_vm_copy(&db, &user);

	/* nothing changed: 0, generation kept */
	assert_int_equal(orchard_vm_apply_spec_update(&db, &user, &err), 0);
	assert_int_equal(db.generation, 0);
	free(user.power_state);
	user.power_state = strdup("stopped");
	assert_int_equal(orchard_vm_apply_spec_update(&db, &user, &err), 1);
	assert_int_equal(db.generation, 1);
	assert_string_equal(db.power_state, "stopped");
	/* from a terminal power state nothing goes */
	free(user.power_state);
	user.power_state = strdup("running");
	assert_int_equal(orchard_vm_apply_spec_update(&db, &user, &err), -EINVAL);
	assert_non_null(strstr(err, "terminal power state"));
	free(db.power_state);
	db.power_state = strdup("running");
	free(user.power_state);
	user.power_state = strdup("suspended");
	assert_int_equal(orchard_vm_apply_spec_update(&db, &user, &err), -EINVAL);
	assert_non_null(strstr(err, "only suspendable VMs"));
	free(user.power_state);
	user.power_state = strdup("running");
	free(user.os);
	user.os = strdup("linux");
	assert_int_equal(orchard_vm_apply_spec_update(&db, &user, &err), -EINVAL);
	assert_non_null(strstr(err, "cannot be modified"));
	free(user.os);
	user.os = strdup("darwin");

	/* state: started_at on first running, failed is terminal */
	free(user.status);
	user.status = strdup("running");
	orchard_conditions_set(&user.conditions, "running", "true");
	user.observed_generation = 1;
	assert_int_equal(orchard_vm_apply_state_update(&db, &user, 99, &err), 0);
	assert_int_equal(db.started_at, 99);
	assert_int_equal(db.observed_generation, 1);
	assert_true(orchard_condition_is(&db.conditions, "running", "true"));
	assert_int_equal(orchard_vm_apply_state_update(&db, &user, 100, &err), 0);
	assert_int_equal(db.started_at, 99);
	free(db.status);
	db.status = strdup("failed");
	assert_int_equal(orchard_vm_apply_state_update(&db, &user, 100, &err), -EINVAL);
	assert_string_equal(err, "cannot update status for a VM in a terminal state");
	assert_int_equal(orchard_vm_apply_spec_update(&db, &user, &err), -EINVAL);
	assert_string_equal(err, "cannot update VM in a terminal state");
	orchard_vm_release(&db);
	orchard_vm_release(&user);
	free(err);
}

static void test_settings_and_roles(void **state)
{
	(void)state;
	char *err = NULL;
	struct orchard_cluster_settings cs = {0};
	json_t *j = parse("{\"hostDirPolicies\":[{\"pathPrefix\":\"/srv/\",\"ro\":true},"
			  "{\"pathPrefix\":\"https://\"}]}");
	assert_int_equal(orchard_cluster_settings_from_json(j, ORCHARD_JSON_STRICT, &cs, NULL), 0);
	assert_int_equal(orchard_cluster_settings_normalize(&cs, &err), 0);
	assert_string_equal(cs.scheduler_profile, "optimize-utilization");
	struct orchard_host_dir d[] = {
	    {(char *)"a", (char *)"/srv/x", true},
	    {(char *)"b", (char *)"/srv/x", false},
	    {(char *)"c", (char *)"/srv/../etc", true},
	    {(char *)"d", (char *)"/srv", true},
	    {(char *)"e", (char *)"https://example/x.tar", false},
	};
	assert_true(orchard_host_dir_policy_allows(&cs.host_dir_policies.v[0], d[0].path, true));
	assert_false(orchard_host_dir_policy_allows(&cs.host_dir_policies.v[0], d[1].path, false));
	assert_false(orchard_host_dir_policy_allows(&cs.host_dir_policies.v[0], d[2].path, true));
	assert_true(orchard_host_dir_policy_allows(&cs.host_dir_policies.v[0], d[3].path, true));
	struct orchard_host_dirs dirs = {d, 1};
	assert_int_equal(orchard_host_dirs_check(&cs.host_dir_policies, &dirs, &err), 0);
	dirs.v = &d[1];
	assert_int_equal(orchard_host_dirs_check(&cs.host_dir_policies, &dirs, &err), -EINVAL);
	assert_string_equal(err, "host directory \"b:/srv/x\" is disallowed by policy, check your "
				 "cluster settings");
	dirs.v = &d[4];
	assert_int_equal(orchard_host_dirs_check(&cs.host_dir_policies, &dirs, &err), 0);
	free(cs.scheduler_profile);
	cs.scheduler_profile = strdup("random");
	assert_int_equal(orchard_cluster_settings_normalize(&cs, &err), -EINVAL);
	orchard_cluster_settings_release(&cs);
	json_decref(j);

	struct orchard_strv roles = {0};
	orchard_strv_push(&roles, "compute:read");
	orchard_strv_push(&roles, "admin:write");
	assert_int_equal(orchard_roles_validate(&roles, &err), 0);
	orchard_strv_push(&roles, "root");
	assert_int_equal(orchard_roles_validate(&roles, &err), -EINVAL);
	assert_string_equal(err, "unsupported role \"root\"");
	orchard_strv_release(&roles);
	free(err);
}

static void test_watch_instruction(void **state)
{
	(void)state;
	struct orchard_watch_instruction wi = {0};
	struct orchard_port_forward_action pf = {(char *)"s-1", (char *)"", 22};
	wi.port_forward = &pf;
	json_t *j = orchard_watch_instruction_to_json(&wi);
	char *s = orchard_json_dump(j);
	assert_string_equal(
	    s, "{\"portForwardAction\":{\"session\":\"s-1\",\"vmUID\":\"\",\"port\":22}}");
	free(s);
	json_decref(j);
	wi = (struct orchard_watch_instruction){.sync_vms = true};
	j = orchard_watch_instruction_to_json(&wi);
	s = orchard_json_dump(j);
	assert_string_equal(s, "{\"syncVMsAction\":{}}");
	free(s);
	json_decref(j);

	j = parse("{\"resolveIPAction\":{\"session\":\"x\",\"vmUID\":\"u\"}}");
	assert_int_equal(orchard_watch_instruction_from_json(j, ORCHARD_JSON_STRICT, &wi, NULL), 0);
	assert_string_equal(wi.resolve_ip->vm_uid, "u");
	assert_null(wi.port_forward);
	orchard_watch_instruction_release(&wi);
	json_decref(j);
	j = parse("{\"portForwardAction\":{\"session\":\"x\",\"vmUID\":\"u\",\"port\":70000}}");
	assert_int_equal(orchard_watch_instruction_from_json(j, 0, &wi, NULL), -EBADMSG);
	json_decref(j);
}

static void test_lists_and_events(void **state)
{
	(void)state;
	json_t *j = parse("[{\"kind\":\"log_line\",\"timestamp\":1700000000,\"payload\":\"a\"},"
			  "{\"kind\":\"log_line\",\"timestamp\":1700000001,\"payload\":\"b\"}]");
	struct orchard_event *ev;
	size_t n;
	assert_int_equal(orchard_event_list_from_json(j, ORCHARD_JSON_STRICT, &ev, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_string_equal(ev[1].payload, "b");
	assert_int_equal(ev[1].timestamp, 1700000001);
	orchard_event_list_free(ev, n);
	json_decref(j);
	j = parse("[{\"kind\":\"log_line\"},{\"nope\":1}]");
	assert_int_equal(orchard_event_list_from_json(j, ORCHARD_JSON_STRICT, &ev, &n, NULL),
			 -EBADMSG);
	json_decref(j);
	j = parse("[]");
	assert_int_equal(orchard_event_list_from_json(j, 0, &ev, &n, NULL), 0);
	assert_int_equal(n, 0);
	json_decref(j);
}

static void test_bootstrap_token(void **state)
{
	(void)state;
	char *t = orchard_bootstrap_token_format("bootstrap-admin", "s3cr?t", NULL);
	assert_string_equal(t, "orchard-bootstrap-token-v0.Ym9vdHN0cmFwLWFkbWlu.czNjcj90");
	char *name, *token, *cert, *err = NULL;
	assert_int_equal(orchard_bootstrap_token_parse(t, &name, &token, &cert, &err), 0);
	assert_string_equal(name, "bootstrap-admin");
	assert_string_equal(token, "s3cr?t");
	assert_null(cert);
	free(name);
	free(token);
	free(t);
	const char pem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
	t = orchard_bootstrap_token_format("w", "tok", pem);
	assert_int_equal(orchard_bootstrap_token_parse(t, &name, &token, &cert, &err), 0);
	assert_string_equal(cert, pem);
	free(name);
	free(token);
	free(cert);
	free(t);
	assert_null(orchard_bootstrap_token_format("", "x", NULL));

	static const char *const bad[] = {
	    "orchard-bootstrap-token-v1.YQ.Yg",	 "orchard-bootstrap-token-v0.YQ",
	    "orchard-bootstrap-token-v0",	 "orchard-bootstrap-token-v0.YQ.Yg.Yw.ZA",
	    "orchard-bootstrap-token-v0.Y!.Yg",	 "orchard-bootstrap-token-v0..Yg",
	    "orchard-bootstrap-token-v00.YQ.Yg",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (orchard_bootstrap_token_parse(bad[i], NULL, NULL, NULL, &err) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
	free(err);

	char *dec;
	size_t len;
	assert_int_equal(orchard_b64url_decode("YWI=", &dec, &len), 0); /* padded is fine too */
	assert_string_equal(dec, "ab");
	free(dec);
	assert_int_equal(orchard_b64url_decode("YWJ", &dec, &len), -EINVAL); /* non-canonical */
}

static void test_uuid_arch(void **state)
{
	(void)state;
	char a[37], b[37];
	orchard_uuid(a);
	orchard_uuid(b);
	assert_int_equal(strlen(a), 36);
	assert_string_not_equal(a, b);
	for (const char *p = a; *p; p++)
		assert_false(*p >= 'A' && *p <= 'Z');
	assert_int_equal(a[14], '4');
	const char *arch = orchard_host_arch();
	assert_non_null(arch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vm_round_trip),
	    cmocka_unit_test(test_vm_bad_json),
	    cmocka_unit_test(test_time),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_maps),
	    cmocka_unit_test(test_prepare_create),
	    cmocka_unit_test(test_updates),
	    cmocka_unit_test(test_settings_and_roles),
	    cmocka_unit_test(test_watch_instruction),
	    cmocka_unit_test(test_lists_and_events),
	    cmocka_unit_test(test_bootstrap_token),
	    cmocka_unit_test(test_uuid_arch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
