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

int cmd_get(int argc, char **argv)
{
	enum { ARG_FORMAT = 0x100 };
	static const struct option opts[] = {
		{"format", required_argument, NULL, ARG_FORMAT},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *const names[] = {"<name>"};
	bool json = false;
	int c;

	cmd_getopt_init();
	while ((c = cmd_getopt(&help, argc, argv, "h", opts)) != -1) {
		switch (c) {
		case 'h':
			return 0;
		case ARG_FORMAT:
			if (!streq(optarg, "json") && !streq(optarg, "text"))
				return cmd_usage_error(&help, "'%s' is not a valid <format>", optarg);
			json = streq(optarg, "json");
			break;
		default:
			return c < 0 ? c : CMD_EUSAGE;
		}
	}
	int r = cmd_need_args(&help, argc - optind, 1, 1, argv + optind, names);
	if (r < 0)
		return r;

	_cleanup_vm_dir_ struct vm_dir d = {0};
	r = vm_storage_open(argv[optind], &d);
	if (r < 0)
		return r;
	struct vm_config cfg;
	r = vm_dir_load_config(&d, &cfg);
	if (r < 0)
		return r;
	uint64_t ap = 0, al = 0;
	(void)vm_dir_sizes(&d, &ap, &al);
	enum vm_state st = vm_dir_state(&d);
	_cleanup_free_ char *display = xasprintf("%llux%llu%s", (unsigned long long)cfg.display_width,
						 (unsigned long long)cfg.display_height,
						 cfg.display_unit);
	_cleanup_free_ char *size = xasprintf("%.3f", (double)al / 1e9);
	_cleanup_free_ char *cpu = xasprintf("%llu", (unsigned long long)cfg.cpu_count);
	_cleanup_free_ char *mem =
		xasprintf("%llu", (unsigned long long)(cfg.memory_size / (1024 * 1024)));
	_cleanup_free_ char *disk = xasprintf("%llu", (unsigned long long)(ap / 1000000000ULL));
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	if (json) {
		_cleanup_json_ json_t *o = json_object();
		json_object_set_new(o, "OS", json_string(cfg.os));
		json_object_set_new(o, "CPU", json_integer((json_int_t)cfg.cpu_count));
		json_object_set_new(o, "Memory",
				    json_integer((json_int_t)(cfg.memory_size / (1024 * 1024))));
		json_object_set_new(o, "Disk", json_integer((json_int_t)(ap / 1000000000ULL)));
		json_object_set_new(o, "DiskFormat", json_string(cfg.disk_format));
		json_object_set_new(o, "Size", json_string(size));
		json_object_set_new(o, "Display", json_string(display));
		json_object_set_new(o, "Running", json_boolean(st == VM_STATE_RUNNING));
		json_object_set_new(o, "State", json_string(vm_state_to_string(st)));
		json_dump_swift(o, JSON_SWIFT_PRETTY, &sb);
	} else {
		const char *cells[] = {"OS",    "CPU", "Memory", "Disk",  "DiskFormat", "Size",
				       "Display", "State", cfg.os,  cpu,     mem,          disk,
				       cfg.disk_format, size, display, vm_state_to_string(st)};
		table_format(cells, 2, 8, &sb);
	}
	printf("%s\n", sb.buf);
	vm_config_release(&cfg);
	return 0;
}
