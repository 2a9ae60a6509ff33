// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd/cmd.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/table.h"
#include "util/time.h"
#include "vm/storage.h"

static const struct cmd_help help = {
	.name = "list",
	.overview = "List created VMs",
	.usage = "list [--source <source>] [--format <format>] [--quiet]",
	.details = "OPTIONS:\n"
		   "  --source <source>       Only display VMs from the specified source (e.g. "
		   "--source local, --source oci).\n"
		   "  --format <format>       Output format: text or json (default: text)\n"
		   "  -q, --quiet             Only display VM names.\n"
		   "  -h, --help              Show help information.\n",
};

struct row {
	const char *source;
	const char *name;
	uint64_t disk_gb, size_gb;
	time_t accessed;
	const char *state;
};

static void row_fill(const struct vm_entry *e, struct row *r)
{
	struct vm_dir d = {.path = e->path, .name = e->name};
	uint64_t ap = 0, al = 0;
	(void)vm_dir_sizes(&d, &ap, &al);
	r->source = e->oci ? "OCI" : "local";
	r->name = e->name;
	r->disk_gb = ap / 1000000000ULL;
	r->size_gb = al / 1000000000ULL;
	r->accessed = 0;
	(void)vm_dir_accessed(&d, &r->accessed);
	r->state = vm_state_to_string(e->oci ? VM_STATE_STOPPED : vm_dir_state(&d));
}

static void print_json(const struct row *rows, size_t n)
{
	_cleanup_json_ json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		char iso[32];
		format_iso8601_utc(rows[i].accessed, iso, sizeof(iso));
		json_t *o = json_object();
		json_object_set_new(o, "Source", json_string(rows[i].source));
		json_object_set_new(o, "Name", json_string(rows[i].name));
		json_object_set_new(o, "Disk", json_integer((json_int_t)rows[i].disk_gb));
		json_object_set_new(o, "Size", json_integer((json_int_t)rows[i].size_gb));
		json_object_set_new(o, "Accessed", json_string(iso));
		json_object_set_new(o, "Running", json_boolean(streq(rows[i].state, "running")));
		json_object_set_new(o, "State", json_string(rows[i].state));
		json_array_append_new(a, o);
	}
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	json_dump_swift(a, JSON_SWIFT_PRETTY, &sb);
	printf("%s\n", sb.buf);
}

static void print_text(const struct row *rows, size_t n)
{
	static const char *const header[] = {"Source", "Name", "Disk", "Size", "Accessed", "State"};
	size_t nc = ARRAY_SIZE(header);
	char **cells = xcalloc((n + 1) * nc, sizeof(char *));
	time_t now = time(NULL);
	for (size_t c = 0; c < nc; c++)
		cells[c] = xstrdup(header[c]);
	for (size_t i = 0; i < n; i++) {
		char rel[64];
		char **row = cells + (i + 1) * nc;
		format_relative(rows[i].accessed, now, rel, sizeof(rel));
		row[0] = xstrdup(rows[i].source);
		row[1] = xstrdup(rows[i].name);
		row[2] = xasprintf("%llu", (unsigned long long)rows[i].disk_gb);
		row[3] = xasprintf("%llu", (unsigned long long)rows[i].size_gb);
		row[4] = xstrdup(rel);
		row[5] = xstrdup(rows[i].state);
	}
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	if (n > 0)
		table_format((const char *const *)cells, n + 1, nc, &sb);
	printf("%s\n", sb.buf);
	for (size_t i = 0; i < (n + 1) * nc; i++)
		free(cells[i]);
	free(cells);
}

static void print_quiet(const struct vm_entry_list *l, const struct vm_entry_list *o)
{
	for (size_t i = 0; i < l->nr; i++)
		printf("%s\n", l->v[i].name);
	for (size_t i = 0; i < o->nr; i++)
		printf("%s\n", o->v[i].name);
}

/* Local VMs first, then the OCI cache, each sorted by name: Tart's order. */
static void print_rows(const struct vm_entry_list *l, const struct vm_entry_list *o, bool json)
{
	size_t n = l->nr + o->nr;
	struct row *rows = xcalloc(n ? n : 1, sizeof(*rows));
	for (size_t i = 0; i < l->nr; i++)
		row_fill(&l->v[i], &rows[i]);
	for (size_t i = 0; i < o->nr; i++)
		row_fill(&o->v[i], &rows[l->nr + i]);
	if (json)
		print_json(rows, n);
	else
		print_text(rows, n);
	free(rows);
}

enum { ARG_SOURCE = 0x100, ARG_FORMAT };

struct list_opts {
	bool local, oci, json, quiet;
};

static int list_opt(int c, const char *arg, void *userdata)
{
	struct list_opts *o = userdata;
	switch (c) {
	case 'q':
		o->quiet = true;
		return 0;
	case ARG_SOURCE:
		/* repeated: the last one wins, as with swift-argument-parser */
		if (!streq(arg, "local") && !streq(arg, "oci"))
			return cmd_usage_error(&help, "'%s' is not a valid <source>", arg);
		o->local = streq(arg, "local");
		o->oci = !o->local;
		return 0;
	case ARG_FORMAT:
		return cmd_parse_format(&help, arg, &o->json);
	default:
		return CMD_EUSAGE;
	}
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{"source", required_argument, NULL, ARG_SOURCE},
		{"format", required_argument, NULL, ARG_FORMAT},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const struct cmd_spec spec = {
	    .help = &help, .shortopts = "hq", .longopts = opts, .on_opt = list_opt};
	struct list_opts o = {.local = true, .oci = true};
	int r = cmd_parse(&spec, argc, argv, &o);
	if (r <= 0)
		return r;

	_cleanup_vm_entry_list_ struct vm_entry_list local = {0}, oci = {0};
	if (o.local && (r = vm_storage_list_local(&local)) < 0)
		return r;
	if (o.oci && (r = vm_storage_list_oci(&oci)) < 0)
		return r;
	if (o.quiet)
		print_quiet(&local, &oci);
	else
		print_rows(&local, &oci, o.json);
	return 0;
}
