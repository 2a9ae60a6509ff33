/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Orchard's resources (pkg/resource/v1 in Orchard) as C structs, with their JSON shapes.
 *
 * JSON: keys are Orchard's exactly (camelCase and snake_case mixed as Orchard has them), in
 * Orchard's order, with Go's `omitempty` semantics: an empty string, 0, false, an empty list or
 * map and a NULL pointer are left out; timestamps are always written (Go cannot omit a
 * time.Time), the zero time as "0001-01-01T00:00:00Z"; `generation`, `observedGeneration`
 * and the fields of a condition or an action are always written.
 *
 * Every struct is valid when zero-initialised (`= {0}`): NULL strings read as "", empty
 * lists and maps have v == NULL and n == 0. Strings are owned by the struct; x_release() frees
 * everything and leaves a zeroed struct. Maps (labels, env, resources) are kept sorted by key,
 * with unique keys, as Go writes them.
 *
 * Parsing (x_from_json) takes a jansson value and fills *ret only on success. With
 * ORCHARD_JSON_STRICT an unknown key is an error (the controller's API refuses it; Orchard
 * ignores it); without it unknown keys are skipped (a client reading a newer server). A JSON
 * null counts as the zero value, as in Go. Type errors (a string for a number, a negative or
 * fractional count, an unsupported os/arch/runtime as Orchard's own unmarshalers refuse them)
 * are errors. Errors return -EBADMSG and, when ret_error is not NULL, an allocated message
 * naming the key ("field \"cpu\": expected an unsigned integer").
 *
 * Timestamps are int64 nanoseconds since the Unix epoch in UTC; 0 is Go's zero time. Counts
 * are uint64 but limited to 2^63-1 on the wire (jansson's integer range).
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ORCHARD_OS_DARWIN "darwin"
#define ORCHARD_OS_LINUX "linux"
#define ORCHARD_ARCH_ARM64 "arm64"
#define ORCHARD_ARCH_AMD64 "amd64"
#define ORCHARD_RUNTIME_TART "tart"
#define ORCHARD_RUNTIME_VETU "vetu"

#define ORCHARD_STATUS_PENDING "pending"
#define ORCHARD_STATUS_RUNNING "running"
#define ORCHARD_STATUS_FAILED "failed"

#define ORCHARD_POWER_RUNNING "running"
#define ORCHARD_POWER_STOPPED "stopped"
#define ORCHARD_POWER_SUSPENDED "suspended"

#define ORCHARD_PULL_IF_NOT_PRESENT "IfNotPresent"
#define ORCHARD_PULL_ALWAYS "Always"
#define ORCHARD_RESTART_NEVER "Never"
#define ORCHARD_RESTART_ON_FAILURE "OnFailure"

#define ORCHARD_COND_SCHEDULED "scheduled"
#define ORCHARD_COND_RUNNING "running"
#define ORCHARD_COND_CLONING "cloning"
#define ORCHARD_COND_SUSPENDING "suspending"
#define ORCHARD_COND_STOPPING "stopping"
#define ORCHARD_TRUE "true"
#define ORCHARD_FALSE "false"

#define ORCHARD_ROLE_COMPUTE_READ "compute:read"
#define ORCHARD_ROLE_COMPUTE_WRITE "compute:write"
#define ORCHARD_ROLE_COMPUTE_CONNECT "compute:connect"
#define ORCHARD_ROLE_ADMIN_READ "admin:read"
#define ORCHARD_ROLE_ADMIN_WRITE "admin:write"

#define ORCHARD_PROFILE_OPTIMIZE_UTILIZATION "optimize-utilization"
#define ORCHARD_PROFILE_DISTRIBUTE_LOAD "distribute-load"

#define ORCHARD_RESOURCE_TART_VMS "org.cirruslabs.tart-vms"
#define ORCHARD_RESOURCE_LOGICAL_CORES "org.cirruslabs.logical-cores"
#define ORCHARD_RESOURCE_MEMORY_MIB "org.cirruslabs.memory-mib"

#define ORCHARD_CAP_RPC_V1 "rpc-v1"
#define ORCHARD_CAP_RPC_V2 "rpc-v2"
#define ORCHARD_CAP_VM_STATE_ENDPOINT "vm-state-endpoint"

#define ORCHARD_EVENT_LOG_LINE "log_line"

/* The assigned CPU and memory when neither the VM nor its worker says (Orchard's). */
#define ORCHARD_DEFAULT_CPU 4
#define ORCHARD_DEFAULT_MEMORY 8192

/* Our cap on names (Orchard has none): they become etcd keys and on-disk VM names. */
#define ORCHARD_NAME_MAX 200

enum orchard_json_flags {
	ORCHARD_JSON_STRICT = 1 << 0, /* unknown keys are an error */
};

struct orchard_strv {
	char **v;
	size_t n;
};

struct orchard_label {
	char *key;
	char *value;
};
/* labels {string: string}; also a startup script's env */
struct orchard_labels {
	struct orchard_label *v;
	size_t n;
};

struct orchard_resource {
	char *key;
	uint64_t value;
};
/* resources {string: uint64}: opaque counters */
struct orchard_resources {
	struct orchard_resource *v;
	size_t n;
};

struct orchard_condition {
	char *type;  /* ORCHARD_COND_* */
	char *state; /* "true" | "false" */
};
struct orchard_conditions {
	struct orchard_condition *v;
	size_t n;
};

struct orchard_host_dir {
	char *name;
	char *path;
	bool ro;
};
struct orchard_host_dirs {
	struct orchard_host_dir *v;
	size_t n;
};

struct orchard_script {
	char *script_content;
	struct orchard_labels env;
};

/* Meta, embedded at the end of every named resource: name, createdAt, version. */
struct orchard_meta {
	char *name;
	int64_t created_at;
	uint64_t version; /* VMs: the etcd mod_revision of the object, set by the store */
};

struct orchard_vm {
	char *image;
	char *image_pull_policy;
	uint64_t cpu;
	uint64_t memory;    /* MiB */
	uint64_t disk_size; /* GB */
	char *net_bridged;
	bool headless;
	bool nested;
	/* VMSpec: what PUT /vms/:name may change */
	char *os;
	char *arch;
	char *runtime;
	bool net_softnet_deprecated; /* "net-softnet" */
	bool net_softnet;
	struct orchard_strv net_softnet_allow;
	struct orchard_strv net_softnet_block;
	bool suspendable;
	char *power_state;
	/* VMSpecReadOnly */
	char *local_name;
	char *tart_name;
	/* VMState: what the worker reports */
	uint64_t observed_generation;
	struct orchard_conditions conditions;

	char *status;
	char *status_message;
	char *worker;
	uint64_t assigned_cpu;
	uint64_t assigned_memory;
	char *username;
	char *password;
	struct orchard_script *startup_script;
	char *restart_policy;
	int64_t restarted_at;
	uint64_t restart_count;
	bool random_serial;
	char *uid;
	struct orchard_resources resources;
	struct orchard_labels labels;
	struct orchard_host_dirs host_dirs;
	char *image_fqn;
	int64_t scheduled_at;
	int64_t started_at;
	uint64_t generation;
	struct orchard_meta meta;
};

struct orchard_worker {
	int64_t last_seen;
	char *machine_id;
	bool scheduling_paused;
	struct orchard_resources resources;
	struct orchard_labels labels;
	uint64_t default_cpu;
	uint64_t default_memory;
	char *arch;
	char *runtime;
	struct orchard_meta meta;
};

struct orchard_service_account {
	char *token;
	struct orchard_strv roles;
	struct orchard_meta meta;
};

struct orchard_host_dir_policy {
	char *path_prefix;
	bool ro;
};
struct orchard_host_dir_policies {
	struct orchard_host_dir_policy *v;
	size_t n;
};

struct orchard_cluster_settings {
	struct orchard_host_dir_policies host_dir_policies;
	char *scheduler_profile;
};

struct orchard_event {
	char *kind;	   /* ORCHARD_EVENT_LOG_LINE */
	int64_t timestamp; /* Unix seconds */
	char *payload;
};

struct orchard_controller_info {
	char *version;
	char *commit;
	struct orchard_strv capabilities;
};

struct orchard_port_forward_action {
	char *session;
	char *vm_uid; /* "vmUID"; empty: the worker's own localhost */
	uint64_t port;
};
struct orchard_resolve_ip_action {
	char *session;
	char *vm_uid;
};
/* Exactly one action is set in a well-formed instruction. */
struct orchard_watch_instruction {
	struct orchard_port_forward_action *port_forward; /* "portForwardAction" */
	bool sync_vms;					  /* "syncVMsAction": {} */
	struct orchard_resolve_ip_action *resolve_ip;	  /* "resolveIPAction" */
};

/* Error body of every failed API call: {"message": "..."} */
struct orchard_error {
	char *message;
};

/* ---- (de)serialisation: one set per resource; contracts in the comment at the top ---- */
#define ORCHARD_RESOURCE_DECLARE(type)                                                             \
	int orchard_##type##_from_json(const json_t *j, unsigned flags,                            \
				       struct orchard_##type *ret, char **ret_error);              \
	json_t *orchard_##type##_to_json(const struct orchard_##type *x);                          \
	void orchard_##type##_release(struct orchard_##type *x);                                   \
	void orchard_##type##_copy(const struct orchard_##type *src, struct orchard_##type *ret);  \
	int orchard_##type##_list_from_json(const json_t *j, unsigned flags,                       \
					    struct orchard_##type **ret, size_t *ret_n,            \
					    char **ret_error);                                     \
	void orchard_##type##_list_free(struct orchard_##type *v, size_t n);

ORCHARD_RESOURCE_DECLARE(vm)
ORCHARD_RESOURCE_DECLARE(worker)
ORCHARD_RESOURCE_DECLARE(service_account)
ORCHARD_RESOURCE_DECLARE(cluster_settings)
ORCHARD_RESOURCE_DECLARE(event)
ORCHARD_RESOURCE_DECLARE(controller_info)
ORCHARD_RESOURCE_DECLARE(watch_instruction)
ORCHARD_RESOURCE_DECLARE(error)
/*
 * x_to_json returns a new reference (never NULL); x_copy makes a deep copy into *ret (which
 * is overwritten, not released); x_list_from_json parses a JSON array into an allocated array
 * (*ret NULL when empty) that x_list_free releases.
 */

/* json_dumps of a value, compact, keys in insertion order; allocated, never NULL. */
char *orchard_json_dump(const json_t *j);

/* ---- small values ---- */

/* Go's RFC 3339 with nanoseconds, in UTC ("2026-12-06T22:40:01.5Z"); 0 prints Go's zero time. */
#define ORCHARD_TIME_MAX 40
void orchard_time_format(int64_t ns, char buf[ORCHARD_TIME_MAX]);
/* RFC 3339 with optional fraction and a Z or ±hh:mm offset; Go's zero time gives 0. */
int orchard_time_parse(const char *s, int64_t *ret_ns);
/* Now, in ns since the epoch (CLOCK_REALTIME). */
int64_t orchard_now(void);
/* A random version-4 UUID in lower case, as Go's uuid package prints it. */
void orchard_uuid(char ret[37]);
/* The host's architecture in Orchard's words: "amd64", "arm64", or NULL when neither. */
const char *orchard_host_arch(void);

/*
 * Orchard's name rule (simplename): non-empty, [A-Za-z0-9:_.-] only; ours also caps the
 * length at ORCHARD_NAME_MAX. `what` prefixes the message as Orchard words it ("VM",
 * "worker", "service account"): "VM name is empty", "VM name name contains restricted
 * characters, please only use [A-Za-z0-9:-_.]". -EINVAL with *ret_error on failure.
 */
int orchard_name_validate(const char *name, const char *what, char **ret_error);
/*
 * The stricter future rule Orchard's CLI warns about ([a-z0-9-], <= 63, alphanumeric at both
 * ends): 0 when it holds, -EINVAL with the warning text otherwise.
 */
int orchard_name_validate_next(const char *name, char **ret_warning);

/* The on-disk name of a VM: "orchard-<name>-<uid>-<restartCount>". Allocated. */
char *orchard_local_name(const char *name, const char *uid, uint64_t restart_count);
/*
 * Parse an on-disk name back: -ENOENT when it does not start with "orchard-" (not ours),
 * -EINVAL when it is malformed. Outputs (allocated) may be NULL.
 */
int orchard_local_name_parse(const char *s, char **ret_name, char **ret_uid,
			     uint64_t *ret_restart_count);

/* ---- maps and lists ---- */
const char *orchard_labels_get(const struct orchard_labels *l, const char *key);
void orchard_labels_set(struct orchard_labels *l, const char *key, const char *value);
/* Every label of `sub` is in `super` with the same value (Orchard's Labels.Contains). */
bool orchard_labels_contains(const struct orchard_labels *super, const struct orchard_labels *sub);

/* A missing key reads as 0; *ret_found (may be NULL) says whether it was there. */
uint64_t orchard_resources_get(const struct orchard_resources *r, const char *key, bool *ret_found);
void orchard_resources_set(struct orchard_resources *r, const char *key, uint64_t value);
/* acc[k] += o[k] for every k of o (saturating). */
void orchard_resources_add(struct orchard_resources *acc, const struct orchard_resources *o);
/* Every counter of `need` is <= the same counter of `avail` (missing counts as 0). */
bool orchard_resources_can_fit(const struct orchard_resources *avail,
			       const struct orchard_resources *need);
/* avail - used, per key of avail, floored at 0 (Orchard's Subtracted, without wrap-around). */
void orchard_resources_subtracted(const struct orchard_resources *avail,
				  const struct orchard_resources *used,
				  struct orchard_resources *ret);
bool orchard_resources_equal(const struct orchard_resources *a, const struct orchard_resources *b);

bool orchard_strv_contains(const struct orchard_strv *v, const char *s);
void orchard_strv_push(struct orchard_strv *v, const char *s);
void orchard_strv_release(struct orchard_strv *v);

/* Set a condition's state; returns true when something changed (Orchard's ConditionsSet). */
bool orchard_conditions_set(struct orchard_conditions *c, const char *type, const char *state);
bool orchard_condition_exists(const struct orchard_conditions *c, const char *type);
bool orchard_condition_is(const struct orchard_conditions *c, const char *type, const char *state);

/* scheduled=true, or (no scheduled condition and a worker set), as Orchard's IsScheduled. */
bool orchard_vm_is_scheduled(const struct orchard_vm *vm);
/* status == failed */
bool orchard_vm_is_failed(const struct orchard_vm *vm);

/* ---- validation and defaults (messages are Orchard's; the controller answers 412) ---- */

/* Runtime-specific restrictions (vetu: no softnet, hostDirs, suspendable). */
int orchard_vm_validate(const struct orchard_vm *vm, char **ret_error);
/*
 * Everything POST /vms does to a VM before it is stored, except the host-dir policy check:
 * name and image present and valid, status pending, the given uid and createdAt, restart
 * fields cleared, powerState running, localName/tartName, generation 0, conditions
 * [scheduled=false], platform defaults (darwin/arm64/tart, Orchard's), softnet flags, the
 * tart-vms resource for darwin+tart, pull and restart policies checked and defaulted. Also
 * clears what a client may not set on create (worker, assigned values, timestamps, status
 * message, image_fqn). -EINVAL with Orchard's message (HTTP 412) on failure; vm may then be
 * half-modified.
 */
int orchard_vm_prepare_create(struct orchard_vm *vm, const char *uid, int64_t now_ns,
			      char **ret_error);
/*
 * PUT /vms/:name: apply the VMSpec of `user` to `db` with Orchard's checks (terminal VM,
 * immutable os/arch/runtime, suspendable and powerState rules). Returns 1 when the spec
 * changed (generation was incremented), 0 when it was equal, -EINVAL with a message (412).
 */
int orchard_vm_apply_spec_update(struct orchard_vm *db, const struct orchard_vm *user,
				 char **ret_error);
/*
 * PUT /vms/:name/state: status, status_message, image_fqn and the whole VMState of `user`
 * into `db`; started_at set on the first "running". A failed VM cannot change status:
 * -EINVAL with Orchard's message (412). Returns 0.
 */
int orchard_vm_apply_state_update(struct orchard_vm *db, const struct orchard_vm *user,
				  int64_t now_ns, char **ret_error);
/* A path allowed by one of the policies (no "..", ro policies need ro mounts, prefix match). */
bool orchard_host_dir_policy_allows(const struct orchard_host_dir_policy *p, const char *path,
				    bool ro);
/* Every host dir named, with a path, and allowed by a policy; -EINVAL (Orchard: 400). */
int orchard_host_dirs_check(const struct orchard_host_dir_policies *policies,
			    const struct orchard_host_dirs *dirs, char **ret_error);
/* PUT /cluster-settings: non-empty prefixes, a known profile (empty becomes the default). */
int orchard_cluster_settings_normalize(struct orchard_cluster_settings *cs, char **ret_error);
/* A known role name. */
bool orchard_role_valid(const char *role);
/* Every role valid: -EINVAL with "unsupported role \"x\"" otherwise. */
int orchard_roles_validate(const struct orchard_strv *roles, char **ret_error);
/* NULL-terminated list of all roles, in Orchard's order. */
extern const char *const orchard_all_roles[];

/* ---- bootstrap token: orchard-bootstrap-token-v0.<b64url name>.<b64url token>[.<b64url PEM>] */
/* Allocated; cert_pem may be NULL or "" (no certificate part). NULL when name or token is empty. */
char *orchard_bootstrap_token_format(const char *name, const char *token, const char *cert_pem);
/*
 * Parse a token; -EINVAL with a message for a wrong prefix, a wrong number of parts or bad
 * base64 (padded or unpadded base64url accepted). *ret_cert_pem is NULL when absent. The
 * certificate is not parsed here (the TLS layer does it).
 */
int orchard_bootstrap_token_parse(const char *s, char **ret_name, char **ret_token,
				  char **ret_cert_pem, char **ret_error);

/* base64url without padding (Go's RawURLEncoding); allocated. */
char *orchard_b64url_encode(const void *data, size_t len);
/* Decode base64url, padded or not; -EINVAL on bad input. *ret is NUL-terminated. */
int orchard_b64url_decode(const char *s, char **ret, size_t *ret_len);
