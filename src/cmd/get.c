// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/strbuf.h"
#include "util/table.h"
#include "vm/storage.h"

static const struct cmd_help help = {
	.name = "get",
	.overview = "Get a VM's configuration",
	.usage = "get <name> [--format <format>]",
	.details = "ARGUMENTS:\n"
		   "  <name>                  VM name.\n\n"
		   "OPTIONS:\n"
		   "  --format <format>       Output format: text or json (default: text)\n"
		   "  -h, --help              Show help information.\n",
};

/* What `get` shows, formatted as Tart does: Size is a string with 3 decimals. */
struct get_fields {
	const struct vm_config *cfg;
	uint64_t disk_gb;
	char cpu[24], mem[24], disk[24], size[32], display[48];
	enum vm_state state;
};

static void get_fields_fill(const struct vm_dir *d, const struct vm_config *cfg,
			    struct get_fields *f)
{
	uint64_t ap = 0, al = 0;
	(void)vm_dir_sizes(d, &ap, &al);
	f->cfg = cfg;
	snprintf(f->cpu, sizeof(f->cpu), "%llu", (unsigned long long)cfg->cpu_count);
	snprintf(f->mem, sizeof(f->mem), "%llu", (unsigned long long)(cfg->memory_size >> 20));
	f->disk_gb = ap / 1000000000ULL;
	snprintf(f->disk, sizeof(f->disk), "%llu", (unsigned long long)f->disk_gb);
	snprintf(f->size, sizeof(f->size), "%.3f", (double)al / 1e9);
	snprintf(f->display, sizeof(f->display), "%llux%llu%s",
		 (unsigned long long)cfg->display_width, (unsigned long long)cfg->display_height,
		 cfg->display_unit);
	f->state = vm_dir_state(d);
}

static void print_json(const struct get_fields *f)
{
	_cleanup_json_ json_t *o = json_object();
	json_object_set_new(o, "OS", json_string(f->cfg->os));
	json_object_set_new(o, "CPU", json_integer((json_int_t)f->cfg->cpu_count));
	json_object_set_new(o, "Memory", json_integer((json_int_t)(f->cfg->memory_size >> 20)));
	json_object_set_new(o, "Disk", json_integer((json_int_t)f->disk_gb));
	json_object_set_new(o, "DiskFormat", json_string(f->cfg->disk_format));
	json_object_set_new(o, "Size", json_string(f->size));
	json_object_set_new(o, "Display", json_string(f->display));
	json_object_set_new(o, "Running", json_boolean(f->state == VM_STATE_RUNNING));
	json_object_set_new(o, "State", json_string(vm_state_to_string(f->state)));
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	json_dump_swift(o, JSON_SWIFT_PRETTY, &sb);
	printf("%s\n", sb.buf);
}

/* Tart's text table drops Running (a JSON-only field). */
static void print_text(const struct get_fields *f)
{
	/* clang-format off */
	const char *cells[] = {
		"OS", "CPU", "Memory", "Disk", "DiskFormat", "Size", "Display", "State",
		f->cfg->os, f->cpu, f->mem, f->disk, f->cfg->disk_format, f->size, f->display,
		vm_state_to_string(f->state),
	};
	/* clang-format on */
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	table_format(cells, 2, ARRAY_SIZE(cells) / 2, &sb);
	printf("%s\n", sb.buf);
}

enum { ARG_FORMAT = 0x100 };

static int get_opt(int c, const char *arg, void *userdata)
{
	return c == ARG_FORMAT ? cmd_parse_format(&help, arg, userdata) : CMD_EUSAGE;
}

int cmd_get(int argc, char **argv)
{
	static const struct option opts[] = {
		{"format", required_argument, NULL, ARG_FORMAT},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *const names[] = {"<name>"};
	static const struct cmd_spec spec = {.help = &help, .longopts = opts, .on_opt = get_opt,
					     .min_args = 1, .max_args = 1, .arg_names = names};
	bool json = false;
	int a = cmd_parse(&spec, argc, argv, &json);
	if (a <= 0)
		return a;

	_cleanup_vm_dir_ struct vm_dir d = {0};
	int r = vm_storage_open(argv[a], &d);
	if (r < 0)
		return r;
	struct vm_config cfg;
	r = vm_dir_load_config(&d, &cfg);
	if (r < 0)
		return r;
	struct get_fields f;
	get_fields_fill(&d, &cfg, &f);
	if (json)
		print_json(&f);
	else
		print_text(&f);
	vm_config_release(&cfg);
	return 0;
}
