// SPDX-License-Identifier: Apache-2.0
/* `orchard create vm`, `get vm`, `logs vm`, `ip vm` (Orchard's internal/command/...). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "orchard/api.h"
#include "orchard/cli/cli.h"
#include "orchard/client.h"
#include "orchard/cmd/cmd.h"
#include "orchard/resource.h"
#include "util/alloc.h"
#include "util/json.h"

/*
 * Orchard's CLI defaults to macOS on Apple silicon; ours to what our workers run: a Linux
 * guest of the host's architecture, Cirrus Labs' Ubuntu image for it (the runner image Orchard's
 * own Linux tests use on amd64, the Tart image on arm64).
 */
static const char *default_image(void)
{
	const char *a = orchard_host_arch();
	return a && streq(a, "arm64") ? "ghcr.io/cirruslabs/ubuntu:latest"
				      : "ghcr.io/cirruslabs/ubuntu-runner-amd64:latest";
}

static json_t *strv_json(const struct strvec *v)
{
	json_t *a = json_array();
	for (size_t i = 0; i < v->nr; i++)
		json_array_append_new(a, json_string(v->v[i]));
	return a;
}

int orchard_cmd_create_vm(int argc, char **argv)
{
	const char *image = default_image(), *os = "linux", *arch = orchard_host_arch(),
		   *runtime = "tart", *bridged = "", *username = "admin", *password = "admin",
		   *restart = "Never", *script = "", *pull = "IfNotPresent";
	uint64_t cpu = 4, memory = 8192, disk = 0;
	bool softnet = false, headless = true, nested = false, suspendable = false, serial = false;
	_cleanup_strvec_ struct strvec allow = STRVEC_INIT, block = STRVEC_INIT, dirs = STRVEC_INIT,
				       args = STRVEC_INIT;
	_cleanup_json_ json_t *resources = json_object(), *labels = json_object();
	char def_image[128];
	snprintf(def_image, sizeof(def_image), "\"%s\"", image);
	const struct ocli_flag flags[] = {
	    {"image", 0, OCLI_STRING, &image, "image to use", def_image},
	    {"os", 0, OCLI_STRING, &os, "operating system of this VM: \"darwin\" or \"linux\"",
	     "\"linux\""},
	    {"arch", 0, OCLI_STRING, &arch,
	     "architecture of this VM: \"arm64\" or \"amd64\" (default: the host's)"},
	    {"runtime", 0, OCLI_STRING, &runtime,
	     "runtime to use for this VM: \"tart\" or \"vetu\"", "\"tart\""},
	    {"cpu", 0, OCLI_U64, &cpu, "number of CPUs to use", "4"},
	    {"memory", 0, OCLI_U64, &memory, "megabytes of memory to use", "8192"},
	    {"disk-size", 0, OCLI_U64, &disk,
	     "resize the VMs disk to the specified size in GB (no resizing is done by default "
	     "and VM's image default size is used)"},
	    {"net-softnet", 0, OCLI_BOOL, &softnet, "whether to use Softnet network isolation"},
	    {"net-softnet-allow", 0, OCLI_SLICE, &allow,
	     "comma-separated list of CIDRs to allow the traffic to when using Softnet "
	     "isolation; automatically enables --net-softnet",
	     "[]"},
	    {"net-softnet-block", 0, OCLI_SLICE, &block,
	     "comma-separated list of CIDRs to block the traffic to when using Softnet "
	     "isolation; automatically enables --net-softnet",
	     "[]"},
	    {"net-bridged", 0, OCLI_STRING, &bridged, "whether to use Bridged network mode"},
	    {"headless", 0, OCLI_BOOL, &headless, "whether to run without graphics", "true"},
	    {"nested", 0, OCLI_BOOL, &nested, "enable nested virtualization"},
	    {"suspendable", 0, OCLI_BOOL, &suspendable,
	     "treat the VM as suspendable: \"tart suspend\" instead of \"tart stop\" when VM's "
	     "specification is updated"},
	    {"username", 0, OCLI_STRING, &username,
	     "SSH username to use when executing a startup script on the VM", "\"admin\""},
	    {"password", 0, OCLI_STRING, &password,
	     "SSH password to use when executing a startup script on the VM", "\"admin\""},
	    {"resources", 0, OCLI_MAP_U64, resources, "resources to request for this VM", "[]"},
	    {"labels", 0, OCLI_MAP, labels, "labels required by this VM", "[]"},
	    {"random-serial", 0, OCLI_BOOL, &serial,
	     "generate a new random serial number if this is a macOS VM (no-op for Linux VMs)"},
	    {"restart-policy", 0, OCLI_STRING, &restart,
	     "restart policy for this VM: specify \"Never\" to never restart or \"OnFailure\" to "
	     "only restart when the VM fails",
	     "\"Never\""},
	    {"startup-script", 0, OCLI_STRING, &script,
	     "startup script (e.g. --startup-script=\"sync\") or a path to a script file prefixed "
	     "with \"@\" (e.g. \"--startup-script=@script.sh\")"},
	    {"host-dirs", 0, OCLI_SLICE, &dirs,
	     "directories on the Orchard Worker host to mount to a VM (name:path[:ro])", "[]"},
	    {"image-pull-policy", 0, OCLI_STRING, &pull,
	     "image pull policy for this VM: \"IfNotPresent\" or \"Always\"", "\"IfNotPresent\""},
	    {0},
	};
	const struct ocli_cmd c = {"create vm", "NAME", "Create a VM", flags, 1, 1};
	int r = ocli_parse(&c, argc, argv, &args);
	if (r != 0)
		return r > 0 ? 0 : 1;
	const char *name = args.v[0];
	_cleanup_free_ char *warn = NULL, *err = NULL, *text = NULL;
	if (orchard_name_validate_next(name, &warn) < 0)
		fprintf(stderr, "WARNING: %s\n", warn);
	if (!streq(os, "darwin") && !streq(os, "linux"))
		return ocli_fail("failed to create VM: unsupported OS: \"%s\"", os);
	if (!arch || (!streq(arch, "arm64") && !streq(arch, "amd64")))
		return ocli_fail("failed to create VM: unsupported architecture: \"%s\"",
				 arch ? arch : "");
	if (!streq(runtime, "tart") && !streq(runtime, "vetu"))
		return ocli_fail("failed to create VM: unsupported runtime: \"%s\"", runtime);
	if (!streq(pull, "IfNotPresent") && !streq(pull, "Always"))
		return ocli_fail("failed to create VM: unsupported image pull policy: \"%s\"",
				 pull);
	if (!streq(restart, "Never") && !streq(restart, "OnFailure"))
		return ocli_fail("failed to create VM: unsupported restart policy: \"%s\"",
				 restart);

	json_t *vm = json_object();
	json_object_set_new(vm, "name", json_string(name));
	json_object_set_new(vm, "image", json_string(image));
	json_object_set_new(vm, "imagePullPolicy", json_string(pull));
	json_object_set_new(vm, "cpu", json_integer((json_int_t)cpu));
	json_object_set_new(vm, "memory", json_integer((json_int_t)memory));
	if (disk)
		json_object_set_new(vm, "diskSize", json_integer((json_int_t)disk));
	if (*bridged)
		json_object_set_new(vm, "net-bridged", json_string(bridged));
	json_object_set_new(vm, "headless", json_boolean(headless));
	json_object_set_new(vm, "nested", json_boolean(nested));
	json_object_set_new(vm, "os", json_string(os));
	json_object_set_new(vm, "arch", json_string(arch));
	json_object_set_new(vm, "runtime", json_string(runtime));
	json_object_set_new(vm, "net-softnet", json_boolean(softnet));
	json_object_set_new(vm, "netSoftnet", json_boolean(softnet));
	if (allow.nr)
		json_object_set_new(vm, "netSoftnetAllow", strv_json(&allow));
	if (block.nr)
		json_object_set_new(vm, "netSoftnetBlock", strv_json(&block));
	json_object_set_new(vm, "suspendable", json_boolean(suspendable));
	json_object_set_new(vm, "username", json_string(username));
	json_object_set_new(vm, "password", json_string(password));
	json_object_set_new(vm, "randomSerial", json_boolean(serial));
	if (json_object_size(labels))
		json_object_set(vm, "labels", labels);
	if (json_object_size(resources))
		json_object_set(vm, "resources", resources);
	if (dirs.nr) {
		json_t *hd = json_array();
		for (size_t i = 0; i < dirs.nr; i++) {
			/* name:path[:ro] (Orchard's NewHostDirFromString) */
			_cleanup_free_ char *copy = xstrdup(dirs.v[i]);
			char *colon = strchr(copy, ':');
			if (!colon) {
				json_decref(hd);
				json_decref(vm);
				return ocli_fail("invalid host directory \"%s\": expected "
						 "name:path[:ro]",
						 dirs.v[i]);
			}
			*colon = 0;
			char *path = colon + 1;
			size_t pl = strlen(path);
			bool ro = pl > 3 && streq(path + pl - 3, ":ro");
			if (ro)
				path[pl - 3] = 0;
			json_array_append_new(
			    hd, json_pack("{s:s,s:s,s:b}", "name", copy, "path", path, "ro", ro));
		}
		json_object_set_new(vm, "hostDirs", hd);
	}
	json_object_set_new(vm, "restart_policy", json_string(restart));
	if (*script) {
		if (ocli_read_arg_file(script, &text) < 0) {
			json_decref(vm);
			return 1;
		}
		json_object_set_new(vm, "startup_script",
				    json_pack("{s:s}", "script_content", text));
	}
	struct orchard_client *cl = NULL;
	if (ocli_client(&cl) < 0) {
		json_decref(vm);
		return 1;
	}
	r = orchard_send(cl, "POST", "vms", vm, NULL, &err);
	json_decref(vm);
	orchard_client_free(cl);
	return r < 0 ? ocli_api_fail(r, err) : 0;
}

static const char *none(const char *s)
{
	return s && *s ? s : "none";
}

/* "orchard get vm NAME/path/to/field": the string at that JSON path. */
static int print_field(const json_t *obj, const char *path)
{
	_cleanup_free_ char *copy = xstrdup(path);
	char *save = NULL;
	const json_t *v = obj;
	for (char *k = strtok_r(copy, "/", &save); k && v; k = strtok_r(NULL, "/", &save))
		v = json_object_get(v, k);
	if (!json_is_string(v))
		return ocli_fail("get command failed: failed to find the specified field \"%s\" or "
				 "the field is not a string",
				 path);
	printf("%s\n", json_string_value(v));
	return 0;
}

int orchard_cmd_get_vm(int argc, char **argv)
{
	const struct ocli_cmd c = {"get vm", "NAME", "Retrieve a VM and it's fields", NULL, 1, 1};
	_cleanup_strvec_ struct strvec args = STRVEC_INIT, rows = STRVEC_INIT;
	int r = ocli_parse(&c, argc, argv, &args);
	if (r != 0)
		return r > 0 ? 0 : 1;
	_cleanup_free_ char *name = xstrdup(args.v[0]), *err = NULL;
	char *slash = strchr(name, '/');
	if (slash)
		*slash++ = 0;
	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	if (ocli_client(&cl) < 0)
		return 1;
	_cleanup_free_ char *path = ocli_path("vms", name, NULL);
	_cleanup_json_ json_t *vm = NULL;
	r = orchard_get(cl, path, NULL, &vm, &err);
	if (r < 0)
		return ocli_api_fail(r, err);
	if (slash)
		return print_field(vm, slash);
	time_t now = time(NULL);
	char created[64], restarted[64] = "never", num[32];
	orchard_reltime(orchard_json_time(vm, "createdAt"), now, created, sizeof(created));
	if (orchard_json_time(vm, "restarted_at"))
		orchard_reltime(orchard_json_time(vm, "restarted_at"), now, restarted,
				sizeof(restarted));
	uint64_t cpu = orchard_u64(vm, "cpu") ?: orchard_u64(vm, "assignedCPU");
	uint64_t mem = orchard_u64(vm, "memory") ?: orchard_u64(vm, "assignedMemory");
	_cleanup_free_ char *disk =
	    orchard_u64(vm, "diskSize")
		? xasprintf("%llu GB", (unsigned long long)orchard_u64(vm, "diskSize"))
		: xstrdup("VM image's default");
	_cleanup_free_ char *res = ocli_map_lines(json_object_get(vm, "resources"));
	_cleanup_free_ char *lab = ocli_map_lines(json_object_get(vm, "labels"));
	struct strvec allow = STRVEC_INIT, block = STRVEC_INIT, dirs = STRVEC_INIT;
	size_t i;
	json_t *x;
	json_array_foreach(json_object_get(vm, "netSoftnetAllow"), i, x)
	    strvec_push(&allow, json_string_value(x) ?: "");
	json_array_foreach(json_object_get(vm, "netSoftnetBlock"), i, x)
	    strvec_push(&block, json_string_value(x) ?: "");
	json_array_foreach(json_object_get(vm, "hostDirs"), i, x)
	    strvec_pushf(&dirs, "%s:%s%s", orchard_str(x, "name"), orchard_str(x, "path"),
			 orchard_bool(x, "ro") ? ":ro" : "");
	_cleanup_free_ char *allow_s = strvec_join(&allow, "\n"),
			    *block_s = strvec_join(&block, "\n"),
			    *dirs_s = strvec_join(&dirs, "\n");
	strvec_clear(&allow);
	strvec_clear(&block);
	strvec_clear(&dirs);
#define ROW(k, v) strvec_pushl(&rows, k, v, NULL)
#define BOOL(b) ((b) ? "true" : "false")
	ROW("Name", orchard_str(vm, "name"));
	ROW("Created", created);
	ROW("Image", orchard_str(vm, "image"));
	ROW("Image pull policy", orchard_str(vm, "imagePullPolicy"));
	snprintf(num, sizeof(num), "%llu", (unsigned long long)cpu);
	ROW("CPU", num);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)mem);
	ROW("Memory", num);
	ROW("Disk size", disk);
	ROW("Softnet enabled",
	    BOOL(orchard_bool(vm, "net-softnet") || orchard_bool(vm, "netSoftnet")));
	ROW("Softnet allowed CIDRs", allow_s);
	ROW("Softnet blocked CIDRs", block_s);
	ROW("Bridged networking interface", none(orchard_str(vm, "net-bridged")));
	ROW("Headless mode", BOOL(orchard_bool(vm, "headless")));
	ROW("Nested virtualization", BOOL(orchard_bool(vm, "nested")));
	ROW("Status", orchard_str(vm, "status"));
	ROW("Status message", orchard_str(vm, "status_message"));
	ROW("Assigned worker", none(orchard_str(vm, "worker")));
	ROW("Restart policy", orchard_str(vm, "restart_policy"));
	ROW("Restarted", restarted);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)orchard_u64(vm, "restart_count"));
	ROW("Restart count", num);
	ROW("Resources", none(res));
	ROW("Labels", none(lab));
	ROW("Random serial", BOOL(orchard_bool(vm, "randomSerial")));
	ROW("Host directories", none(dirs_s));
#undef ROW
#undef BOOL
	ocli_print_rows((const char *const *)rows.v, rows.nr / 2);
	return 0;
}

int orchard_cmd_logs_vm(int argc, char **argv)
{
	uint64_t tail = 0;
	const struct ocli_flag flags[] = {
	    {"tail", 0, OCLI_U64, &tail, "Number of log lines to show from the end (newest first)"},
	    {0},
	};
	const struct ocli_cmd c = {"logs vm", "NAME", "Retrieve VM logs", flags, 1, 1};
	_cleanup_strvec_ struct strvec args = STRVEC_INIT;
	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	int r = ocli_begin(&c, argc, argv, &args, &cl);
	if (r != 0)
		return r > 0 ? 0 : 1;
	_cleanup_free_ char *path = ocli_path("vms", args.v[0], "events");
	_cleanup_free_ char *cursor = NULL;
	for (;;) {
		_cleanup_free_ char *q = NULL, *err = NULL, *next = NULL, *cur = NULL;
		if (tail)
			q = xasprintf("limit=%llu&order=desc", (unsigned long long)tail);
		else if (cursor)
			q = xasprintf("cursor=%s", (cur = orchard_escape(cursor)));
		struct orchard_call call = {
		    .method = "GET", .path = path, .query = q, .header_name = "X-Next-Cursor"};
		_cleanup_json_ json_t *events = NULL;
		r = orchard_client_call(cl, &call, &events, NULL, &next, &err);
		if (r < 0)
			return ocli_api_fail(r, err);
		size_t i;
		json_t *e;
		json_array_foreach(events, i, e) if (streq(orchard_str(e, "kind"), "log_line"))
		    printf("%s\n", orchard_str(e, "payload"));
		/* all of them without --tail: follow the pages */
		if (tail || !next || !json_array_size(events))
			break;
		free(cursor);
		cursor = TAKE_PTR(next);
	}
	return 0;
}

int orchard_cmd_ip_vm(int argc, char **argv)
{
	uint64_t wait = 0;
	const struct ocli_flag flags[] = {
	    {"wait", 't', OCLI_U64, &wait,
	     "Amount of seconds to wait for the VM to start running if it's not running already",
	     "0"},
	    {0},
	};
	const struct ocli_cmd c = {"ip vm", "NAME", "Retrieve a VM's IP address", flags, 1, 1};
	_cleanup_strvec_ struct strvec args = STRVEC_INIT;
	_cleanup_orchard_client_ struct orchard_client *cl = NULL;
	int r = ocli_begin(&c, argc, argv, &args, &cl);
	if (r != 0)
		return r > 0 ? 0 : 1;
	_cleanup_free_ char *err = NULL, *path = ocli_path("vms", args.v[0], "ip");
	_cleanup_free_ char *q = xasprintf("wait=%llu", (unsigned long long)wait);
	struct orchard_call call = {
	    .method = "GET", .path = path, .query = q, .timeout_s = (long)wait + 90};
	_cleanup_json_ json_t *j = NULL;
	r = orchard_client_call(cl, &call, &j, NULL, NULL, &err);
	if (r < 0)
		return ocli_api_fail(r, err);
	printf("%s\n", orchard_str(j, "ip"));
	return 0;
}
