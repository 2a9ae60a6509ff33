// SPDX-License-Identifier: Apache-2.0
#include "orchard/resource.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "util/alloc.h"
#include "util/fs.h"
#include "util/macro.h"
#include "util/strbuf.h"

/*
 * One table per struct drives parsing, writing, releasing and copying: a field's JSON key, its
 * kind, its offset in the struct and, for nested objects, the table of the element. The
 * tables list the fields in Orchard's order, which is the order Go writes them in.
 */
enum kind {
	K_STR,
	K_U64,
	K_I64,
	K_BOOL,
	K_TIME,
	K_STRV,
	K_LABELS,
	K_RESOURCES,
	K_ARRAY,  /* {T *v; size_t n} of a sub-schema */
	K_OBJPTR, /* T * of a sub-schema, NULL when absent */
	K_EMPTY,  /* bool written as {} (syncVMsAction) */
	K_OS,	  /* K_STR restricted like Orchard's unmarshalers */
	K_ARCH,
	K_RUNTIME,
};

enum { F_OMITEMPTY = 1 << 0 };

struct schema;
struct field {
	const char *key;
	unsigned char kind;
	unsigned char flags;
	size_t off;
	const struct schema *sub;
	uint64_t max; /* K_U64: 0 = INT64_MAX */
};
struct schema {
	size_t size;
	const struct field *fields;
	size_t nfields;
};

struct any_array {
	void *v;
	size_t n;
};

#define FLD(T, k, kind, member, flags)                                                             \
	{                                                                                          \
		k, kind, flags, offsetof(T, member), NULL, 0                                       \
	}
#define SUB(T, k, kind, member, flags, sub)                                                        \
	{                                                                                          \
		k, kind, flags, offsetof(T, member), &sub, 0                                       \
	}
#define SCHEMA(T, fields)                                                                          \
	{                                                                                          \
		sizeof(T), fields, ARRAY_SIZE(fields)                                              \
	}
#define O F_OMITEMPTY

static const struct field condition_fields[] = {
    FLD(struct orchard_condition, "type", K_STR, type, 0),
    FLD(struct orchard_condition, "state", K_STR, state, 0),
};
static const struct schema condition_schema = SCHEMA(struct orchard_condition, condition_fields);

static const struct field host_dir_fields[] = {
    FLD(struct orchard_host_dir, "name", K_STR, name, O),
    FLD(struct orchard_host_dir, "path", K_STR, path, O),
    FLD(struct orchard_host_dir, "ro", K_BOOL, ro, O),
};
static const struct schema host_dir_schema = SCHEMA(struct orchard_host_dir, host_dir_fields);

static const struct field script_fields[] = {
    FLD(struct orchard_script, "script_content", K_STR, script_content, O),
    FLD(struct orchard_script, "env", K_LABELS, env, O),
};
static const struct schema script_schema = SCHEMA(struct orchard_script, script_fields);

#define META_FIELDS(T)                                                                             \
	FLD(T, "name", K_STR, meta.name, O), FLD(T, "createdAt", K_TIME, meta.created_at, O),      \
	    FLD(T, "version", K_U64, meta.version, O)

#define V struct orchard_vm
static const struct field vm_fields[] = {
    FLD(V, "image", K_STR, image, O),
    FLD(V, "imagePullPolicy", K_STR, image_pull_policy, O),
    FLD(V, "cpu", K_U64, cpu, O),
    FLD(V, "memory", K_U64, memory, O),
    FLD(V, "diskSize", K_U64, disk_size, O),
    FLD(V, "net-bridged", K_STR, net_bridged, O),
    FLD(V, "headless", K_BOOL, headless, O),
    FLD(V, "nested", K_BOOL, nested, O),
    FLD(V, "os", K_OS, os, O),
    FLD(V, "arch", K_ARCH, arch, O),
    FLD(V, "runtime", K_RUNTIME, runtime, O),
    FLD(V, "net-softnet", K_BOOL, net_softnet_deprecated, O),
    FLD(V, "netSoftnet", K_BOOL, net_softnet, O),
    FLD(V, "netSoftnetAllow", K_STRV, net_softnet_allow, O),
    FLD(V, "netSoftnetBlock", K_STRV, net_softnet_block, O),
    FLD(V, "suspendable", K_BOOL, suspendable, O),
    FLD(V, "powerState", K_STR, power_state, O),
    FLD(V, "localName", K_STR, local_name, O),
    FLD(V, "tartName", K_STR, tart_name, O),
    FLD(V, "observedGeneration", K_U64, observed_generation, 0),
    SUB(V, "conditions", K_ARRAY, conditions, O, condition_schema),
    FLD(V, "status", K_STR, status, O),
    FLD(V, "status_message", K_STR, status_message, O),
    FLD(V, "worker", K_STR, worker, O),
    FLD(V, "assignedCPU", K_U64, assigned_cpu, O),
    FLD(V, "assignedMemory", K_U64, assigned_memory, O),
    FLD(V, "username", K_STR, username, O),
    FLD(V, "password", K_STR, password, O),
    SUB(V, "startup_script", K_OBJPTR, startup_script, O, script_schema),
    FLD(V, "restart_policy", K_STR, restart_policy, O),
    FLD(V, "restarted_at", K_TIME, restarted_at, O),
    FLD(V, "restart_count", K_U64, restart_count, O),
    FLD(V, "randomSerial", K_BOOL, random_serial, O),
    FLD(V, "uid", K_STR, uid, O),
    FLD(V, "resources", K_RESOURCES, resources, O),
    FLD(V, "labels", K_LABELS, labels, O),
    SUB(V, "hostDirs", K_ARRAY, host_dirs, O, host_dir_schema),
    FLD(V, "image_fqn", K_STR, image_fqn, O),
    FLD(V, "scheduled_at", K_TIME, scheduled_at, O),
    FLD(V, "started_at", K_TIME, started_at, O),
    FLD(V, "generation", K_U64, generation, 0),
    META_FIELDS(V),
};
#undef V
static const struct schema vm_schema = SCHEMA(struct orchard_vm, vm_fields);

/* The VMSpec fields, for comparing specs (keys of vm_fields). */
static const char *const vm_spec_keys[] = {
    "os",
    "arch",
    "runtime",
    "net-softnet",
    "netSoftnet",
    "netSoftnetAllow",
    "netSoftnetBlock",
    "suspendable",
    "powerState",
};

#define W struct orchard_worker
static const struct field worker_fields[] = {
    FLD(W, "last_seen", K_TIME, last_seen, O),
    FLD(W, "machine_id", K_STR, machine_id, O),
    FLD(W, "scheduling_paused", K_BOOL, scheduling_paused, O),
    FLD(W, "resources", K_RESOURCES, resources, O),
    FLD(W, "labels", K_LABELS, labels, O),
    FLD(W, "defaultCPU", K_U64, default_cpu, O),
    FLD(W, "defaultMemory", K_U64, default_memory, O),
    FLD(W, "arch", K_ARCH, arch, O),
    FLD(W, "runtime", K_RUNTIME, runtime, O),
    META_FIELDS(W),
};
#undef W
static const struct schema worker_schema = SCHEMA(struct orchard_worker, worker_fields);

#define S struct orchard_service_account
static const struct field service_account_fields[] = {
    FLD(S, "token", K_STR, token, O),
    FLD(S, "roles", K_STRV, roles, O),
    META_FIELDS(S),
};
#undef S
static const struct schema service_account_schema =
    SCHEMA(struct orchard_service_account, service_account_fields);

static const struct field policy_fields[] = {
    FLD(struct orchard_host_dir_policy, "pathPrefix", K_STR, path_prefix, O),
    FLD(struct orchard_host_dir_policy, "ro", K_BOOL, ro, O),
};
static const struct schema policy_schema = SCHEMA(struct orchard_host_dir_policy, policy_fields);

static const struct field cluster_settings_fields[] = {
    SUB(struct orchard_cluster_settings, "hostDirPolicies", K_ARRAY, host_dir_policies, O,
	policy_schema),
    FLD(struct orchard_cluster_settings, "schedulerProfile", K_STR, scheduler_profile, O),
};
static const struct schema cluster_settings_schema =
    SCHEMA(struct orchard_cluster_settings, cluster_settings_fields);

static const struct field event_fields[] = {
    FLD(struct orchard_event, "kind", K_STR, kind, O),
    FLD(struct orchard_event, "timestamp", K_I64, timestamp, O),
    FLD(struct orchard_event, "payload", K_STR, payload, O),
};
static const struct schema event_schema = SCHEMA(struct orchard_event, event_fields);

static const struct field controller_info_fields[] = {
    FLD(struct orchard_controller_info, "version", K_STR, version, O),
    FLD(struct orchard_controller_info, "commit", K_STR, commit, O),
    FLD(struct orchard_controller_info, "capabilities", K_STRV, capabilities, O),
};
static const struct schema controller_info_schema =
    SCHEMA(struct orchard_controller_info, controller_info_fields);

static const struct field port_forward_fields[] = {
    FLD(struct orchard_port_forward_action, "session", K_STR, session, 0),
    FLD(struct orchard_port_forward_action, "vmUID", K_STR, vm_uid, 0),
    {"port", K_U64, 0, offsetof(struct orchard_port_forward_action, port), NULL, 65535},
};
static const struct schema port_forward_schema =
    SCHEMA(struct orchard_port_forward_action, port_forward_fields);

static const struct field resolve_ip_fields[] = {
    FLD(struct orchard_resolve_ip_action, "session", K_STR, session, 0),
    FLD(struct orchard_resolve_ip_action, "vmUID", K_STR, vm_uid, 0),
};
static const struct schema resolve_ip_schema =
    SCHEMA(struct orchard_resolve_ip_action, resolve_ip_fields);

static const struct field watch_instruction_fields[] = {
    SUB(struct orchard_watch_instruction, "portForwardAction", K_OBJPTR, port_forward, O,
	port_forward_schema),
    FLD(struct orchard_watch_instruction, "syncVMsAction", K_EMPTY, sync_vms, O),
    SUB(struct orchard_watch_instruction, "resolveIPAction", K_OBJPTR, resolve_ip, O,
	resolve_ip_schema),
};
static const struct schema watch_instruction_schema =
    SCHEMA(struct orchard_watch_instruction, watch_instruction_fields);

static const struct field error_fields[] = {
    FLD(struct orchard_error, "message", K_STR, message, 0),
};
static const struct schema error_schema = SCHEMA(struct orchard_error, error_fields);
#undef O

/* ---- helpers ---- */

static int set_error(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
static int set_error(char **ret_error, int r, const char *fmt, ...)
{
	if (ret_error) {
		va_list ap;
		va_start(ap, fmt);
		free(*ret_error);
		*ret_error = xvasprintf(fmt, ap);
		va_end(ap);
	}
	return r;
}

static inline void *at(const void *obj, size_t off)
{
	return (char *)obj + off;
}

static bool str_empty(const char *s)
{
	return !s || !*s;
}

static void set_str(char **dst, const char *s)
{
	char *n = s ? xstrdup(s) : NULL;
	free(*dst);
	*dst = n;
}

void orchard_strv_push(struct orchard_strv *v, const char *s)
{
	v->v = xrealloc(v->v, (v->n + 1) * sizeof(char *));
	v->v[v->n++] = xstrdup(s);
}

void orchard_strv_release(struct orchard_strv *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

bool orchard_strv_contains(const struct orchard_strv *v, const char *s)
{
	for (size_t i = 0; i < v->n; i++)
		if (streq(v->v[i], s))
			return true;
	return false;
}

static void labels_release(struct orchard_labels *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void resources_release(struct orchard_resources *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].key);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

/* Index of key in a sorted map, or -(insertion point)-1. Both maps start with char *key. */
#define MAP_FIND(m, k)                                                                             \
	({                                                                                         \
		ssize_t _lo = 0, _hi = (ssize_t)(m)->n - 1, _res = -1;                             \
		bool _hit = false;                                                                 \
		while (_lo <= _hi) {                                                               \
			ssize_t _mid = (_lo + _hi) / 2;                                            \
			int _c = strcmp((m)->v[_mid].key, (k));                                    \
			if (_c == 0) {                                                             \
				_res = _mid;                                                       \
				_hit = true;                                                       \
				break;                                                             \
			}                                                                          \
			if (_c < 0)                                                                \
				_lo = _mid + 1;                                                    \
			else                                                                       \
				_hi = _mid - 1;                                                    \
		}                                                                                  \
		_hit ? _res : -_lo - 1;                                                            \
	})

const char *orchard_labels_get(const struct orchard_labels *l, const char *key)
{
	ssize_t i = MAP_FIND(l, key);
	return i >= 0 ? l->v[i].value : NULL;
}

void orchard_labels_set(struct orchard_labels *l, const char *key, const char *value)
{
	ssize_t i = MAP_FIND(l, key);
	if (i >= 0) {
		set_str(&l->v[i].value, value);
		return;
	}
	size_t pos = (size_t)(-i - 1);
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	memmove(&l->v[pos + 1], &l->v[pos], (l->n - pos) * sizeof(*l->v));
	l->v[pos].key = xstrdup(key);
	l->v[pos].value = xstrdup(value ? value : "");
	l->n++;
}

bool orchard_labels_contains(const struct orchard_labels *super, const struct orchard_labels *sub)
{
	for (size_t i = 0; i < sub->n; i++) {
		const char *v = orchard_labels_get(super, sub->v[i].key);
		/* Go reads a missing key as "": a required empty label matches an absent one */
		if (!streq(v ? v : "", sub->v[i].value ? sub->v[i].value : ""))
			return false;
	}
	return true;
}

uint64_t orchard_resources_get(const struct orchard_resources *r, const char *key, bool *ret_found)
{
	ssize_t i = MAP_FIND(r, key);
	if (ret_found)
		*ret_found = i >= 0;
	return i >= 0 ? r->v[i].value : 0;
}

void orchard_resources_set(struct orchard_resources *r, const char *key, uint64_t value)
{
	ssize_t i = MAP_FIND(r, key);
	if (i >= 0) {
		r->v[i].value = value;
		return;
	}
	size_t pos = (size_t)(-i - 1);
	r->v = xrealloc(r->v, (r->n + 1) * sizeof(*r->v));
	memmove(&r->v[pos + 1], &r->v[pos], (r->n - pos) * sizeof(*r->v));
	r->v[pos].key = xstrdup(key);
	r->v[pos].value = value;
	r->n++;
}

void orchard_resources_add(struct orchard_resources *acc, const struct orchard_resources *o)
{
	for (size_t i = 0; i < o->n; i++) {
		uint64_t cur = orchard_resources_get(acc, o->v[i].key, NULL);
		uint64_t sum = cur + o->v[i].value;
		orchard_resources_set(acc, o->v[i].key, sum < cur ? UINT64_MAX : sum);
	}
}

bool orchard_resources_can_fit(const struct orchard_resources *avail,
			       const struct orchard_resources *need)
{
	for (size_t i = 0; i < need->n; i++)
		if (need->v[i].value > orchard_resources_get(avail, need->v[i].key, NULL))
			return false;
	return true;
}

void orchard_resources_subtracted(const struct orchard_resources *avail,
				  const struct orchard_resources *used,
				  struct orchard_resources *ret)
{
	struct orchard_resources out = {0};
	for (size_t i = 0; i < avail->n; i++) {
		uint64_t u = orchard_resources_get(used, avail->v[i].key, NULL);
		orchard_resources_set(&out, avail->v[i].key,
				      u > avail->v[i].value ? 0 : avail->v[i].value - u);
	}
	*ret = out;
}

bool orchard_resources_equal(const struct orchard_resources *a, const struct orchard_resources *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!streq(a->v[i].key, b->v[i].key) || a->v[i].value != b->v[i].value)
			return false;
	return true;
}

static void conditions_release(struct orchard_conditions *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].type);
		free(c->v[i].state);
	}
	free(c->v);
	*c = (struct orchard_conditions){0};
}

bool orchard_conditions_set(struct orchard_conditions *c, const char *type, const char *state)
{
	for (size_t i = 0; i < c->n; i++) {
		if (!streq(c->v[i].type ? c->v[i].type : "", type))
			continue;
		if (c->v[i].state && streq(c->v[i].state, state))
			return false;
		set_str(&c->v[i].state, state);
		return true;
	}
	c->v = xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
	c->v[c->n].type = xstrdup(type);
	c->v[c->n].state = xstrdup(state);
	c->n++;
	return true;
}

bool orchard_condition_exists(const struct orchard_conditions *c, const char *type)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].type && streq(c->v[i].type, type))
			return true;
	return false;
}

bool orchard_condition_is(const struct orchard_conditions *c, const char *type, const char *state)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].type && streq(c->v[i].type, type))
			return c->v[i].state && streq(c->v[i].state, state);
	return false;
}

bool orchard_vm_is_scheduled(const struct orchard_vm *vm)
{
	if (orchard_condition_exists(&vm->conditions, ORCHARD_COND_SCHEDULED))
		return orchard_condition_is(&vm->conditions, ORCHARD_COND_SCHEDULED, ORCHARD_TRUE);
	return !str_empty(vm->worker);
}

bool orchard_vm_is_failed(const struct orchard_vm *vm)
{
	return vm->status && streq(vm->status, ORCHARD_STATUS_FAILED);
}

/* ---- time ---- */

int64_t orchard_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void orchard_time_format(int64_t ns, char buf[ORCHARD_TIME_MAX])
{
	if (ns == 0) {
		snprintf(buf, ORCHARD_TIME_MAX, "0001-01-01T00:00:00Z");
		return;
	}
	time_t sec = (time_t)(ns / 1000000000);
	long frac = (long)(ns % 1000000000);
	if (frac < 0) {
		frac += 1000000000;
		sec--;
	}
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t n = strftime(buf, ORCHARD_TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
	if (frac) {
		char f[11];
		snprintf(f, sizeof(f), ".%09ld", frac);
		size_t l = strlen(f);
		while (f[l - 1] == '0')
			f[--l] = 0;
		snprintf(buf + n, ORCHARD_TIME_MAX - n, "%sZ", f);
	} else {
		snprintf(buf + n, ORCHARD_TIME_MAX - n, "Z");
	}
}

static int parse_digits(const char **p, int n, int *ret)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -EINVAL;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*ret = v;
	return 0;
}

static int expect(const char **p, char c)
{
	if (**p != c)
		return -EINVAL;
	(*p)++;
	return 0;
}

int orchard_time_parse(const char *s, int64_t *ret_ns)
{
	const char *p = s;
	int Y, M, D, h, m, sec;
	if (parse_digits(&p, 4, &Y) < 0 || expect(&p, '-') < 0 || parse_digits(&p, 2, &M) < 0 ||
	    expect(&p, '-') < 0 || parse_digits(&p, 2, &D) < 0)
		return -EINVAL;
	if (*p != 'T' && *p != 't')
		return -EINVAL;
	p++;
	if (parse_digits(&p, 2, &h) < 0 || expect(&p, ':') < 0 || parse_digits(&p, 2, &m) < 0 ||
	    expect(&p, ':') < 0 || parse_digits(&p, 2, &sec) < 0)
		return -EINVAL;
	if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 59)
		return -EINVAL;
	int64_t frac = 0;
	if (*p == '.') {
		p++;
		int digits = 0;
		while (*p >= '0' && *p <= '9') {
			if (digits < 9) {
				frac = frac * 10 + (*p - '0');
				digits++;
			}
			p++;
		}
		if (digits == 0)
			return -EINVAL;
		while (digits++ < 9)
			frac *= 10;
	}
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '+' ? 1 : -1, oh, om;
		p++;
		if (parse_digits(&p, 2, &oh) < 0 || expect(&p, ':') < 0 ||
		    parse_digits(&p, 2, &om) < 0 || oh > 23 || om > 59)
			return -EINVAL;
		off = sign * (oh * 3600 + om * 60);
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	if (Y == 1 && M == 1 && D == 1 && h == 0 && m == 0 && sec == 0 && frac == 0 && off == 0) {
		*ret_ns = 0;
		return 0;
	}
	struct tm tm = {.tm_year = Y - 1900,
			.tm_mon = M - 1,
			.tm_mday = D,
			.tm_hour = h,
			.tm_min = m,
			.tm_sec = sec};
	time_t t = timegm(&tm);
	int64_t secs = (int64_t)t - off;
	/* int64 nanoseconds reach from 1677 to 2262 */
	if (secs < -9223372035LL || secs > 9223372035LL)
		return -ERANGE;
	*ret_ns = secs * 1000000000 + frac;
	return 0;
}

void orchard_uuid(char ret[37])
{
	fs_random_uuid(ret);
	for (char *p = ret; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
}

const char *orchard_host_arch(void)
{
	struct utsname u;
	if (uname(&u) < 0)
		return NULL;
	if (streq(u.machine, "x86_64"))
		return ORCHARD_ARCH_AMD64;
	if (streq(u.machine, "aarch64") || streq(u.machine, "arm64"))
		return ORCHARD_ARCH_ARM64;
	return NULL;
}

/* ---- generic (de)serialisation ---- */

static void schema_release(const struct schema *s, void *obj);

static void release_field(const struct field *f, void *obj)
{
	void *p = at(obj, f->off);
	switch (f->kind) {
	case K_STR:
	case K_OS:
	case K_ARCH:
	case K_RUNTIME:
		free(*(char **)p);
		*(char **)p = NULL;
		break;
	case K_STRV:
		orchard_strv_release(p);
		break;
	case K_LABELS:
		labels_release(p);
		break;
	case K_RESOURCES:
		resources_release(p);
		break;
	case K_ARRAY: {
		struct any_array *a = p;
		for (size_t i = 0; i < a->n; i++)
			schema_release(f->sub, (char *)a->v + i * f->sub->size);
		free(a->v);
		a->v = NULL;
		a->n = 0;
		break;
	}
	case K_OBJPTR: {
		void **pp = p;
		if (*pp) {
			schema_release(f->sub, *pp);
			free(*pp);
			*pp = NULL;
		}
		break;
	}
	default:
		break;
	}
}

static void schema_release(const struct schema *s, void *obj)
{
	for (size_t i = 0; i < s->nfields; i++)
		release_field(&s->fields[i], obj);
	memset(obj, 0, s->size);
}

static int schema_from_json(const struct schema *s, const json_t *j, unsigned flags, void *obj,
			    char **ret_error);

static int type_error(char **ret_error, const char *key, const char *what)
{
	return set_error(ret_error, -EBADMSG, "field \"%s\": expected %s", key, what);
}

static int parse_platform(const struct field *f, const char *v, char **ret_error)
{
	static const char *const os[] = {ORCHARD_OS_DARWIN, ORCHARD_OS_LINUX, NULL};
	static const char *const arch[] = {ORCHARD_ARCH_ARM64, ORCHARD_ARCH_AMD64, NULL};
	static const char *const rt[] = {ORCHARD_RUNTIME_TART, ORCHARD_RUNTIME_VETU, NULL};
	const char *const *allowed = f->kind == K_OS ? os : f->kind == K_ARCH ? arch : rt;
	const char *what = f->kind == K_OS ? "OS" : f->kind == K_ARCH ? "architecture" : "runtime";
	if (!*v)
		return 0;
	for (size_t i = 0; allowed[i]; i++)
		if (streq(v, allowed[i]))
			return 0;
	return set_error(ret_error, -EBADMSG, "field \"%s\": unsupported %s: \"%s\"", f->key, what,
			 v);
}

static int parse_field(const struct field *f, const json_t *v, unsigned flags, void *obj,
		       char **ret_error)
{
	void *p = at(obj, f->off);
	if (json_is_null(v))
		return 0;
	switch (f->kind) {
	case K_STR:
	case K_OS:
	case K_ARCH:
	case K_RUNTIME: {
		if (!json_is_string(v))
			return type_error(ret_error, f->key, "a string");
		if (strlen(json_string_value(v)) != json_string_length(v))
			return type_error(ret_error, f->key, "a string without NUL characters");
		if (f->kind != K_STR) {
			int r = parse_platform(f, json_string_value(v), ret_error);
			if (r < 0)
				return r;
		}
		set_str(p, json_string_value(v));
		return 0;
	}
	case K_U64: {
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return type_error(ret_error, f->key, "an unsigned integer");
		uint64_t x = (uint64_t)json_integer_value(v);
		if (f->max && x > f->max)
			return set_error(ret_error, -EBADMSG,
					 "field \"%s\": %" PRIu64 " exceeds %" PRIu64, f->key, x,
					 f->max);
		*(uint64_t *)p = x;
		return 0;
	}
	case K_I64:
		if (!json_is_integer(v))
			return type_error(ret_error, f->key, "an integer");
		*(int64_t *)p = json_integer_value(v);
		return 0;
	case K_BOOL:
		if (!json_is_boolean(v))
			return type_error(ret_error, f->key, "a boolean");
		*(bool *)p = json_is_true(v);
		return 0;
	case K_TIME:
		if (!json_is_string(v) || orchard_time_parse(json_string_value(v), p) < 0)
			return type_error(ret_error, f->key, "an RFC 3339 time");
		return 0;
	case K_STRV: {
		if (!json_is_array(v))
			return type_error(ret_error, f->key, "an array of strings");
		struct orchard_strv *sv = p;
		size_t i;
		json_t *e;
		orchard_strv_release(sv);
		json_array_foreach(v, i, e)
		{
			if (!json_is_string(e) ||
			    strlen(json_string_value(e)) != json_string_length(e))
				return type_error(ret_error, f->key, "an array of strings");
			orchard_strv_push(sv, json_string_value(e));
		}
		return 0;
	}
	case K_LABELS:
	case K_RESOURCES: {
		if (!json_is_object(v))
			return type_error(ret_error, f->key, "an object");
		const char *k;
		json_t *e;
		json_object_foreach((json_t *)v, k, e)
		{
			if (f->kind == K_LABELS) {
				if (!json_is_string(e) ||
				    strlen(json_string_value(e)) != json_string_length(e))
					return type_error(ret_error, f->key,
							  "an object of strings");
				orchard_labels_set(p, k, json_string_value(e));
			} else {
				if (!json_is_integer(e) || json_integer_value(e) < 0)
					return type_error(ret_error, f->key,
							  "an object of unsigned integers");
				orchard_resources_set(p, k, (uint64_t)json_integer_value(e));
			}
		}
		return 0;
	}
	case K_ARRAY: {
		if (!json_is_array(v))
			return type_error(ret_error, f->key, "an array of objects");
		struct any_array *a = p;
		size_t n = json_array_size(v);
		release_field(f, obj);
		if (n == 0)
			return 0;
		a->v = xcalloc(n, f->sub->size);
		for (size_t i = 0; i < n; i++) {
			int r = schema_from_json(f->sub, json_array_get(v, i), flags,
						 (char *)a->v + i * f->sub->size, ret_error);
			a->n = i + 1; /* so that release frees what was parsed */
			if (r < 0)
				return r;
		}
		return 0;
	}
	case K_OBJPTR: {
		release_field(f, obj);
		void *sub = xcalloc(1, f->sub->size);
		*(void **)p = sub;
		return schema_from_json(f->sub, v, flags, sub, ret_error);
	}
	case K_EMPTY:
		if (!json_is_object(v))
			return type_error(ret_error, f->key, "an object");
		if ((flags & ORCHARD_JSON_STRICT) && json_object_size(v) != 0)
			return set_error(ret_error, -EBADMSG, "field \"%s\": expected {}", f->key);
		*(bool *)p = true;
		return 0;
	}
	return -EINVAL;
}

static const struct field *find_field(const struct schema *s, const char *key)
{
	for (size_t i = 0; i < s->nfields; i++)
		if (streq(s->fields[i].key, key))
			return &s->fields[i];
	return NULL;
}

static int schema_from_json(const struct schema *s, const json_t *j, unsigned flags, void *obj,
			    char **ret_error)
{
	if (!json_is_object(j))
		return set_error(ret_error, -EBADMSG, "expected a JSON object");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)j, k, v)
	{
		const struct field *f = find_field(s, k);
		if (!f) {
			if (flags & ORCHARD_JSON_STRICT)
				return set_error(ret_error, -EBADMSG, "unknown field \"%s\"", k);
			continue;
		}
		int r = parse_field(f, v, flags, obj, ret_error);
		if (r < 0)
			return r;
	}
	return 0;
}

static json_t *schema_to_json(const struct schema *s, const void *obj);

static json_t *field_to_json(const struct field *f, const void *obj)
{
	const void *p = at(obj, f->off);
	bool omit = f->flags & F_OMITEMPTY;
	switch (f->kind) {
	case K_STR:
	case K_OS:
	case K_ARCH:
	case K_RUNTIME: {
		const char *s = *(char *const *)p;
		if (omit && str_empty(s))
			return NULL;
		return json_string(s ? s : "");
	}
	case K_U64: {
		uint64_t x = *(const uint64_t *)p;
		if (omit && x == 0)
			return NULL;
		return json_integer(x > INT64_MAX ? INT64_MAX : (json_int_t)x);
	}
	case K_I64: {
		int64_t x = *(const int64_t *)p;
		if (omit && x == 0)
			return NULL;
		return json_integer(x);
	}
	case K_BOOL:
		if (omit && !*(const bool *)p)
			return NULL;
		return json_boolean(*(const bool *)p);
	case K_TIME: {
		char buf[ORCHARD_TIME_MAX];
		orchard_time_format(*(const int64_t *)p, buf);
		return json_string(buf);
	}
	case K_STRV: {
		const struct orchard_strv *sv = p;
		if (omit && sv->n == 0)
			return NULL;
		json_t *a = json_array();
		for (size_t i = 0; i < sv->n; i++)
			json_array_append_new(a, json_string(sv->v[i]));
		return a;
	}
	case K_LABELS: {
		const struct orchard_labels *l = p;
		if (omit && l->n == 0)
			return NULL;
		json_t *o = json_object();
		for (size_t i = 0; i < l->n; i++)
			json_object_set_new(o, l->v[i].key, json_string(l->v[i].value));
		return o;
	}
	case K_RESOURCES: {
		const struct orchard_resources *r = p;
		if (omit && r->n == 0)
			return NULL;
		json_t *o = json_object();
		for (size_t i = 0; i < r->n; i++)
			json_object_set_new(o, r->v[i].key,
					    json_integer(r->v[i].value > INT64_MAX
							     ? INT64_MAX
							     : (json_int_t)r->v[i].value));
		return o;
	}
	case K_ARRAY: {
		const struct any_array *a = p;
		if (omit && a->n == 0)
			return NULL;
		json_t *arr = json_array();
		for (size_t i = 0; i < a->n; i++)
			json_array_append_new(
			    arr, schema_to_json(f->sub, (char *)a->v + i * f->sub->size));
		return arr;
	}
	case K_OBJPTR: {
		const void *sub = *(void *const *)p;
		if (!sub)
			return omit ? NULL : json_null();
		return schema_to_json(f->sub, sub);
	}
	case K_EMPTY:
		if (!*(const bool *)p)
			return omit ? NULL : json_null();
		return json_object();
	}
	return NULL;
}

static json_t *schema_to_json(const struct schema *s, const void *obj)
{
	json_t *o = json_object();
	for (size_t i = 0; i < s->nfields; i++) {
		json_t *v = field_to_json(&s->fields[i], obj);
		if (v)
			json_object_set_new(o, s->fields[i].key, v);
	}
	return o;
}

char *orchard_json_dump(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		abort();
	return s;
}

static int schema_parse_into(const struct schema *s, const json_t *j, unsigned flags, void *ret,
			     char **ret_error)
{
	void *tmp = xcalloc(1, s->size);
	int r = schema_from_json(s, j, flags, tmp, ret_error);
	if (r < 0) {
		schema_release(s, tmp);
		free(tmp);
		return r;
	}
	memcpy(ret, tmp, s->size);
	free(tmp);
	return 0;
}

static void schema_copy(const struct schema *s, const void *src, void *ret)
{
	json_t *j = schema_to_json(s, src);
	memset(ret, 0, s->size);
	/* what we wrote we can read: a failure here is a bug */
	if (schema_from_json(s, j, 0, ret, NULL) < 0)
		abort();
	json_decref(j);
}

static int schema_list_from_json(const struct schema *s, const json_t *j, unsigned flags,
				 void **ret, size_t *ret_n, char **ret_error)
{
	if (!json_is_array(j))
		return set_error(ret_error, -EBADMSG, "expected a JSON array");
	size_t n = json_array_size(j);
	char *v = n ? xcalloc(n, s->size) : NULL;
	for (size_t i = 0; i < n; i++) {
		int r =
		    schema_from_json(s, json_array_get(j, i), flags, v + i * s->size, ret_error);
		if (r < 0) {
			for (size_t k = 0; k <= i; k++)
				schema_release(s, v + k * s->size);
			free(v);
			return r;
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static void schema_list_free(const struct schema *s, void *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		schema_release(s, (char *)v + i * s->size);
	free(v);
}

#define ORCHARD_RESOURCE_DEFINE(type)                                                              \
	int orchard_##type##_from_json(const json_t *j, unsigned flags,                            \
				       struct orchard_##type *ret, char **ret_error)               \
	{                                                                                          \
		return schema_parse_into(&type##_schema, j, flags, ret, ret_error);                \
	}                                                                                          \
	json_t *orchard_##type##_to_json(const struct orchard_##type *x)                           \
	{                                                                                          \
		return schema_to_json(&type##_schema, x);                                          \
	}                                                                                          \
	void orchard_##type##_release(struct orchard_##type *x)                                    \
	{                                                                                          \
		schema_release(&type##_schema, x);                                                 \
	}                                                                                          \
	void orchard_##type##_copy(const struct orchard_##type *src, struct orchard_##type *ret)   \
	{                                                                                          \
		schema_copy(&type##_schema, src, ret);                                             \
	}                                                                                          \
	int orchard_##type##_list_from_json(const json_t *j, unsigned flags,                       \
					    struct orchard_##type **ret, size_t *ret_n,            \
					    char **ret_error)                                      \
	{                                                                                          \
		return schema_list_from_json(&type##_schema, j, flags, (void **)ret, ret_n,        \
					     ret_error);                                           \
	}                                                                                          \
	void orchard_##type##_list_free(struct orchard_##type *v, size_t n)                        \
	{                                                                                          \
		schema_list_free(&type##_schema, v, n);                                            \
	}

ORCHARD_RESOURCE_DEFINE(vm)
ORCHARD_RESOURCE_DEFINE(worker)
ORCHARD_RESOURCE_DEFINE(service_account)
ORCHARD_RESOURCE_DEFINE(cluster_settings)
ORCHARD_RESOURCE_DEFINE(event)
ORCHARD_RESOURCE_DEFINE(controller_info)
ORCHARD_RESOURCE_DEFINE(watch_instruction)
ORCHARD_RESOURCE_DEFINE(error)

/* ---- names ---- */

int orchard_name_validate(const char *name, const char *what, char **ret_error)
{
	if (str_empty(name))
		return set_error(ret_error, -EINVAL, "%s name is empty", what);
	for (const char *p = name; *p; p++) {
		char c = *p;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == ':' || c == '-' || c == '_' || c == '.')
			continue;
		return set_error(ret_error, -EINVAL,
				 "%s name name contains restricted characters, please only use "
				 "[A-Za-z0-9:-_.]",
				 what);
	}
	if (strlen(name) > ORCHARD_NAME_MAX)
		return set_error(ret_error, -EINVAL, "%s name is longer than %d characters", what,
				 ORCHARD_NAME_MAX);
	return 0;
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int orchard_name_validate_next(const char *s, char **ret_warning)
{
	if (str_empty(s))
		return set_error(ret_warning, -EINVAL, "name cannot be empty");
	size_t n = strlen(s);
	if (n > 63)
		return set_error(
		    ret_warning, -EINVAL,
		    "names with more than 63 characters will be depreacted in the future");
	if (!is_lower_alnum(s[0]))
		return set_error(ret_warning, -EINVAL,
				 "names not starting with an alphanumeric character will be "
				 "deprecated in the future");
	if (!is_lower_alnum(s[n - 1]))
		return set_error(ret_warning, -EINVAL,
				 "names not ending with an alphanumeric character will be "
				 "deprecated in the future");
	for (size_t i = 0; i < n; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return set_error(ret_warning, -EINVAL,
					 "names with characters other than [a-z0-9-] will be "
					 "deprecated in the future");
	return 0;
}

char *orchard_local_name(const char *name, const char *uid, uint64_t restart_count)
{
	return xasprintf("orchard-%s-%s-%" PRIu64, name ? name : "", uid ? uid : "", restart_count);
}

int orchard_local_name_parse(const char *s, char **ret_name, char **ret_uid,
			     uint64_t *ret_restart_count)
{
	if (!strneq(s, "orchard-", 8))
		return -ENOENT;
	/* from the end: <restartCount>, then the UUID's 5 dash-separated parts */
	const char *dash[6];
	const char *end = s + strlen(s);
	int found = 0;
	for (const char *p = end - 1; p >= s + 7 && found < 6; p--)
		if (*p == '-')
			dash[found++] = p;
	if (found < 6 || dash[5] <= s + 7)
		return -EINVAL; /* needs 8 parts: orchard, a non-empty name, 5 UUID parts, count */
	const char *count = dash[0] + 1;
	if (!*count)
		return -EINVAL;
	uint64_t rc = 0;
	for (const char *p = count; *p; p++) {
		if (*p < '0' || *p > '9' || rc > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		rc = rc * 10 + (uint64_t)(*p - '0');
	}
	if (ret_name)
		*ret_name = xstrndup(s + 8, (size_t)(dash[5] - (s + 8)));
	if (ret_uid)
		*ret_uid = xstrndup(dash[5] + 1, (size_t)(dash[0] - dash[5] - 1));
	if (ret_restart_count)
		*ret_restart_count = rc;
	return 0;
}

/* ---- validation ---- */

int orchard_vm_validate(const struct orchard_vm *vm, char **ret_error)
{
	if (!vm->runtime || !streq(vm->runtime, ORCHARD_RUNTIME_VETU))
		return 0;
	const char *bad = NULL;
	if (vm->net_softnet_deprecated || vm->net_softnet)
		bad = "netSoftnet";
	else if (vm->net_softnet_allow.n)
		bad = "netSoftnetAllow";
	else if (vm->net_softnet_block.n)
		bad = "netSoftnetBlock";
	else if (vm->host_dirs.n)
		bad = "hostDirs";
	else if (vm->suspendable)
		bad = "suspendable";
	if (bad)
		return set_error(ret_error, -EINVAL, "runtime \"%s\" does not support field \"%s\"",
				 vm->runtime, bad);
	return 0;
}

static void normalize_softnet(struct orchard_vm *vm)
{
	if (vm->net_softnet_deprecated || vm->net_softnet || vm->net_softnet_allow.n ||
	    vm->net_softnet_block.n) {
		vm->net_softnet_deprecated = true;
		vm->net_softnet = true;
	}
}

static void default_str(char **s, const char *def)
{
	if (str_empty(*s))
		set_str(s, def);
}

int orchard_vm_prepare_create(struct orchard_vm *vm, const char *uid, int64_t now_ns,
			      char **ret_error)
{
	int r = orchard_name_validate(vm->meta.name, "VM", ret_error);
	if (r < 0)
		return r;
	if (str_empty(vm->image))
		return set_error(ret_error, -EINVAL, "VM image is empty");

	set_str(&vm->status, ORCHARD_STATUS_PENDING);
	vm->meta.created_at = now_ns;
	vm->meta.version = 0;
	vm->restarted_at = 0;
	vm->restart_count = 0;
	set_str(&vm->uid, uid);
	set_str(&vm->power_state, ORCHARD_POWER_RUNNING);
	char *ln = orchard_local_name(vm->meta.name, uid, 0);
	set_str(&vm->local_name, ln);
	set_str(&vm->tart_name, ln);
	free(ln);
	vm->generation = 0;
	vm->observed_generation = 0;
	conditions_release(&vm->conditions);
	/* fields the controller and the worker own: a client cannot preset them */
	set_str(&vm->worker, NULL);
	set_str(&vm->status_message, NULL);
	set_str(&vm->image_fqn, NULL);
	vm->assigned_cpu = vm->assigned_memory = 0;
	vm->scheduled_at = vm->started_at = 0;
	orchard_conditions_set(&vm->conditions, ORCHARD_COND_SCHEDULED, ORCHARD_FALSE);

	default_str(&vm->os, ORCHARD_OS_DARWIN);
	default_str(&vm->arch, ORCHARD_ARCH_ARM64);
	default_str(&vm->runtime, ORCHARD_RUNTIME_TART);
	r = orchard_vm_validate(vm, ret_error);
	if (r < 0)
		return r;
	normalize_softnet(vm);
	if (streq(vm->os, ORCHARD_OS_DARWIN) && streq(vm->runtime, ORCHARD_RUNTIME_TART)) {
		bool found;
		orchard_resources_get(&vm->resources, ORCHARD_RESOURCE_TART_VMS, &found);
		if (!found)
			orchard_resources_set(&vm->resources, ORCHARD_RESOURCE_TART_VMS, 1);
	}
	if (!str_empty(vm->image_pull_policy)) {
		if (!streq(vm->image_pull_policy, ORCHARD_PULL_IF_NOT_PRESENT) &&
		    !streq(vm->image_pull_policy, ORCHARD_PULL_ALWAYS))
			return set_error(ret_error, -EINVAL,
					 "unsupported image pull policy: \"%s\"",
					 vm->image_pull_policy);
	} else {
		set_str(&vm->image_pull_policy, ORCHARD_PULL_IF_NOT_PRESENT);
	}
	if (!str_empty(vm->restart_policy)) {
		if (!streq(vm->restart_policy, ORCHARD_RESTART_NEVER) &&
		    !streq(vm->restart_policy, ORCHARD_RESTART_ON_FAILURE))
			return set_error(ret_error, -EINVAL, "unsupported restart policy: \"%s\"",
					 vm->restart_policy);
	} else {
		set_str(&vm->restart_policy, ORCHARD_RESTART_NEVER);
	}
	return 0;
}

static bool str_eq0(const char *a, const char *b)
{
	return streq(a ? a : "", b ? b : "");
}

static bool power_state_valid(const char *s)
{
	return s && (streq(s, ORCHARD_POWER_RUNNING) || streq(s, ORCHARD_POWER_STOPPED) ||
		     streq(s, ORCHARD_POWER_SUSPENDED));
}

/* The VMSpec part of a VM as JSON, for comparing (Go's cmp.Equal of VMSpec). */
static json_t *vm_spec_json(const struct orchard_vm *vm)
{
	json_t *all = orchard_vm_to_json(vm), *spec = json_object();
	for (size_t i = 0; i < ARRAY_SIZE(vm_spec_keys); i++) {
		json_t *v = json_object_get(all, vm_spec_keys[i]);
		if (v)
			json_object_set(spec, vm_spec_keys[i], v);
	}
	json_decref(all);
	return spec;
}

int orchard_vm_apply_spec_update(struct orchard_vm *db, const struct orchard_vm *user_in,
				 char **ret_error)
{
	if (orchard_vm_is_failed(db))
		return set_error(ret_error, -EINVAL, "cannot update VM in a terminal state");
	if (!str_eq0(db->os, user_in->os) || !str_eq0(db->arch, user_in->arch) ||
	    !str_eq0(db->runtime, user_in->runtime))
		return set_error(ret_error, -EINVAL,
				 "\"os\", \"arch\" and \"runtime\" fields cannot be modified");
	int r = orchard_vm_validate(user_in, ret_error);
	if (r < 0)
		return r;
	struct orchard_vm user;
	orchard_vm_copy(user_in, &user);
	normalize_softnet(&user);
	if (db->suspendable && !user.suspendable)
		r = set_error(ret_error, -EINVAL,
			      "\"suspendable\" cannot be toggled for suspendable VMs");
	else if (db->suspendable && db->net_softnet != user.net_softnet)
		r = set_error(ret_error, -EINVAL,
			      "\"netSoftnet\" cannot be toggled for suspendable VMs");
	else if (!power_state_valid(user.power_state))
		r = set_error(ret_error, -EINVAL, "invalid \"powerState\" value: %s",
			      user.power_state ? user.power_state : "");
	else if (!db->power_state || !streq(db->power_state, ORCHARD_POWER_RUNNING))
		r = set_error(
		    ret_error, -EINVAL,
		    "invalid \"powerState\" transition: cannot transition from a terminal "
		    "power state");
	else if (!db->suspendable && streq(user.power_state, ORCHARD_POWER_SUSPENDED))
		r = set_error(ret_error, -EINVAL,
			      "invalid \"powerState\" transition: only suspendable VMs can be "
			      "suspended");
	if (r < 0) {
		orchard_vm_release(&user);
		return r;
	}
	json_t *a = vm_spec_json(db), *b = vm_spec_json(&user);
	bool equal = json_equal(a, b);
	json_decref(a);
	json_decref(b);
	if (!equal) {
		set_str(&db->os, user.os);
		set_str(&db->arch, user.arch);
		set_str(&db->runtime, user.runtime);
		db->net_softnet_deprecated = user.net_softnet_deprecated;
		db->net_softnet = user.net_softnet;
		orchard_strv_release(&db->net_softnet_allow);
		orchard_strv_release(&db->net_softnet_block);
		db->net_softnet_allow = user.net_softnet_allow;
		db->net_softnet_block = user.net_softnet_block;
		user.net_softnet_allow = (struct orchard_strv){0};
		user.net_softnet_block = (struct orchard_strv){0};
		db->suspendable = user.suspendable;
		set_str(&db->power_state, user.power_state);
		db->generation++;
	}
	orchard_vm_release(&user);
	return equal ? 0 : 1;
}

int orchard_vm_apply_state_update(struct orchard_vm *db, const struct orchard_vm *user,
				  int64_t now_ns, char **ret_error)
{
	if (orchard_vm_is_failed(db) && !str_eq0(db->status, user->status))
		return set_error(ret_error, -EINVAL,
				 "cannot update status for a VM in a terminal state");
	if (user->status && streq(user->status, ORCHARD_STATUS_RUNNING) && db->started_at == 0)
		db->started_at = now_ns;
	set_str(&db->status, user->status);
	set_str(&db->status_message, user->status_message);
	set_str(&db->image_fqn, user->image_fqn);
	db->observed_generation = user->observed_generation;
	conditions_release(&db->conditions);
	for (size_t i = 0; i < user->conditions.n; i++)
		orchard_conditions_set(
		    &db->conditions, user->conditions.v[i].type ? user->conditions.v[i].type : "",
		    user->conditions.v[i].state ? user->conditions.v[i].state : "");
	return 0;
}

bool orchard_host_dir_policy_allows(const struct orchard_host_dir_policy *p, const char *path,
				    bool ro)
{
	if (strstr(path, ".."))
		return false;
	if (p->ro && !ro)
		return false;
	const char *prefix = p->path_prefix ? p->path_prefix : "";
	size_t pl = strlen(prefix), l = strlen(path);
	if (pl && prefix[pl - 1] == '/')
		pl--;
	if (l && path[l - 1] == '/')
		l--;
	return pl <= l && strncmp(path, prefix, pl) == 0;
}

int orchard_host_dirs_check(const struct orchard_host_dir_policies *policies,
			    const struct orchard_host_dirs *dirs, char **ret_error)
{
	for (size_t i = 0; i < dirs->n; i++) {
		const struct orchard_host_dir *d = &dirs->v[i];
		if (str_empty(d->name))
			return set_error(ret_error, -EINVAL,
					 "hostDir volume's \"name\" field cannot be empty");
		if (str_empty(d->path))
			return set_error(ret_error, -EINVAL,
					 "hostDir volume's \"path\" field cannot be empty");
		bool ok = false;
		for (size_t k = 0; k < policies->n && !ok; k++)
			ok = orchard_host_dir_policy_allows(&policies->v[k], d->path, d->ro);
		if (!ok)
			return set_error(
			    ret_error, -EINVAL,
			    "host directory \"%s:%s%s\" is disallowed by policy, check "
			    "your cluster settings",
			    d->name, d->path, d->ro ? ":ro" : "");
	}
	return 0;
}

int orchard_cluster_settings_normalize(struct orchard_cluster_settings *cs, char **ret_error)
{
	for (size_t i = 0; i < cs->host_dir_policies.n; i++)
		if (str_empty(cs->host_dir_policies.v[i].path_prefix))
			return set_error(ret_error, -EINVAL, "pathPrefix field cannot be empty");
	if (str_empty(cs->scheduler_profile)) {
		set_str(&cs->scheduler_profile, ORCHARD_PROFILE_OPTIMIZE_UTILIZATION);
		return 0;
	}
	if (!streq(cs->scheduler_profile, ORCHARD_PROFILE_OPTIMIZE_UTILIZATION) &&
	    !streq(cs->scheduler_profile, ORCHARD_PROFILE_DISTRIBUTE_LOAD))
		return set_error(ret_error, -EINVAL, "unsupported scheduler profile: \"%s\"",
				 cs->scheduler_profile);
	return 0;
}

const char *const orchard_all_roles[] = {
    ORCHARD_ROLE_COMPUTE_READ, ORCHARD_ROLE_COMPUTE_WRITE, ORCHARD_ROLE_COMPUTE_CONNECT,
    ORCHARD_ROLE_ADMIN_READ,   ORCHARD_ROLE_ADMIN_WRITE,   NULL,
};

bool orchard_role_valid(const char *role)
{
	for (size_t i = 0; orchard_all_roles[i]; i++)
		if (streq(role, orchard_all_roles[i]))
			return true;
	return false;
}

int orchard_roles_validate(const struct orchard_strv *roles, char **ret_error)
{
	for (size_t i = 0; i < roles->n; i++)
		if (!orchard_role_valid(roles->v[i]))
			return set_error(ret_error, -EINVAL, "unsupported role \"%s\"",
					 roles->v[i]);
	return 0;
}

/* ---- base64url and the bootstrap token ---- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *orchard_b64url_encode(const void *data, size_t len)
{
	const unsigned char *in = data;
	char *out = xmalloc(len / 3 * 4 + 5), *o = out;
	size_t i = 0;
	for (; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*o++ = b64url[v >> 18 & 63];
		*o++ = b64url[v >> 12 & 63];
		*o++ = b64url[v >> 6 & 63];
		*o++ = b64url[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		*o++ = b64url[v >> 18 & 63];
		*o++ = b64url[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*o++ = b64url[v >> 18 & 63];
		*o++ = b64url[v >> 12 & 63];
		*o++ = b64url[v >> 6 & 63];
	}
	*o = 0;
	return out;
}

int orchard_b64url_decode(const char *s, char **ret, size_t *ret_len)
{
	size_t n = strlen(s);
	while (n && s[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -EINVAL;
	char *out = xmalloc(n / 4 * 3 + 4);
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		const char *p = s[i] ? strchr(b64url, s[i]) : NULL;
		if (!p) {
			free(out);
			return -EINVAL;
		}
		acc = acc << 6 | (uint32_t)(p - b64url);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)(acc >> bits & 0xff);
		}
	}
	/* leftover bits must be zero (canonical encoding, as Go's strict decoder wants) */
	if (bits && (acc & ((1u << bits) - 1))) {
		free(out);
		return -EINVAL;
	}
	out[o] = 0;
	*ret = out;
	if (ret_len)
		*ret_len = o;
	return 0;
}

#define BOOTSTRAP_PREFIX "orchard-bootstrap-token-v0"

char *orchard_bootstrap_token_format(const char *name, const char *token, const char *cert_pem)
{
	if (str_empty(name) || str_empty(token))
		return NULL;
	_cleanup_free_ char *n = orchard_b64url_encode(name, strlen(name));
	_cleanup_free_ char *t = orchard_b64url_encode(token, strlen(token));
	if (str_empty(cert_pem))
		return xasprintf(BOOTSTRAP_PREFIX ".%s.%s", n, t);
	_cleanup_free_ char *c = orchard_b64url_encode(cert_pem, strlen(cert_pem));
	return xasprintf(BOOTSTRAP_PREFIX ".%s.%s.%s", n, t, c);
}

int orchard_bootstrap_token_parse(const char *s, char **ret_name, char **ret_token,
				  char **ret_cert_pem, char **ret_error)
{
	const char *prefix_err = "invalid bootstrap token format: invalid version string or "
				 "unsupported version";
	size_t pl = strlen(BOOTSTRAP_PREFIX);
	if (!strneq(s, BOOTSTRAP_PREFIX, pl) || (s[pl] != '.' && s[pl] != 0))
		return set_error(ret_error, -EINVAL, "%s", prefix_err);
	char *parts[4] = {0};
	size_t np = 0;
	const char *p = s[pl] ? s + pl + 1 : NULL;
	while (p) {
		const char *dot = strchr(p, '.');
		if (np == 3) {
			for (size_t i = 0; i < np; i++)
				free(parts[i]);
			return set_error(ret_error, -EINVAL,
					 "invalid bootstrap token format: extraneous data");
		}
		parts[np++] = dot ? xstrndup(p, (size_t)(dot - p)) : xstrdup(p);
		p = dot ? dot + 1 : NULL;
	}
	int r = 0;
	char *dec[3] = {0};
	static const char *const what[] = {"service account name", "service account token",
					   "certificate"};
	if (np < 2) {
		r = set_error(
		    ret_error, -EINVAL,
		    "invalid bootstrap token format: missing service account credentials");
		goto finish;
	}
	for (size_t i = 0; i < np; i++) {
		size_t len;
		if (orchard_b64url_decode(parts[i], &dec[i], &len) < 0 || strlen(dec[i]) != len ||
		    (i < 2 && len == 0)) {
			r = set_error(ret_error, -EINVAL,
				      "invalid bootstrap token format: failed to decode %s",
				      what[i]);
			goto finish;
		}
	}
	if (ret_name)
		*ret_name = TAKE_PTR(dec[0]);
	if (ret_token)
		*ret_token = TAKE_PTR(dec[1]);
	if (ret_cert_pem)
		*ret_cert_pem = TAKE_PTR(dec[2]);
finish:
	for (size_t i = 0; i < 3; i++)
		free(dec[i]);
	for (size_t i = 0; i < np; i++)
		free(parts[i]);
	return r;
}
