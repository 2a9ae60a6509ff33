// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "cmd/cmd.h"
#include "util/log.h"
#include "vm/prune.h"
#include "vm/storage.h"

#define GIB (1024ULL * 1024 * 1024)

static const struct cmd_help help = {
	.name = "prune",
	.overview = "Prune OCI and IPSW caches or local VMs",
	.usage = "prune [--entries <entries>] [--older-than <n>] [--space-budget <n>]",
	.details =
		"OPTIONS:\n"
		"  --entries <entries>     Entries to remove: \"caches\" targets OCI and IPSW "
		"caches and \"vms\" targets local VMs. (default: caches)\n"
		"  --older-than <n>        Remove entries that were last accessed more than n days "
		"ago\n"
		"                          For example, --older-than=7 will remove entries that "
		"weren't accessed by Tart in the last 7 days.\n"
		"  --space-budget <n>      Remove the least recently used entries that do not fit "
		"the specified space size budget n, expressed in gigabytes\n"
		"                          For example, --space-budget=50 will effectively shrink "
		"all entries to a total size of 50 gigabytes.\n"
		"  -h, --help              Show help information.\n",
};

int cmd_prune(int argc, char **argv)
{
	enum { ARG_ENTRIES = 0x100, ARG_OLDER_THAN, ARG_SPACE_BUDGET, ARG_CACHE_BUDGET, ARG_GC };
	static const struct option opts[] = {
		{"entries", required_argument, NULL, ARG_ENTRIES},
		{"older-than", required_argument, NULL, ARG_OLDER_THAN},
		{"space-budget", required_argument, NULL, ARG_SPACE_BUDGET},
		{"cache-budget", required_argument, NULL, ARG_CACHE_BUDGET},
		{"gc", no_argument, NULL, ARG_GC},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	/* Budgets in GiB must not overflow once converted to bytes. */
	const uint64_t max_gib = UINT64_MAX / GIB;
	enum vm_prune_entries entries = VM_PRUNE_CACHES;
	struct vm_prune_criteria crit = {0};
	bool cache_budget_set = false, gc = false;
	uint64_t v;
	int c, r;

	cmd_getopt_init();
	while ((c = cmd_getopt(&help, argc, argv, "h", opts)) != -1) {
		switch (c) {
		case 'h':
			return 0;
		case ARG_ENTRIES:
			if (streq(optarg, "caches"))
				entries = VM_PRUNE_CACHES;
			else if (streq(optarg, "vms"))
				entries = VM_PRUNE_VMS;
			else
				return cmd_usage_error(
				    &help, "The value '%s' is invalid for '--entries <entries>'",
				    optarg);
			break;
		case ARG_OLDER_THAN:
			r = cmd_parse_u64(&help, "--older-than", optarg, 0, UINT64_MAX, &v);
			if (r < 0)
				return r;
			crit.older_than_set = true;
			crit.older_than_days = v;
			break;
		case ARG_SPACE_BUDGET:
		case ARG_CACHE_BUDGET:
			if ((r = cmd_parse_u64(&help, c == ARG_SPACE_BUDGET ? "--space-budget"
									: "--cache-budget",
					       optarg, 0, max_gib, &v)) < 0)
				return r;
			if (c == ARG_CACHE_BUDGET)
				cache_budget_set = true;
			else
				crit.space_budget_set = true;
			crit.space_budget_bytes = v * GIB;
			break;
		case ARG_GC:
			gc = true;
			break;
		default:
			return c < 0 ? c : CMD_EUSAGE;
		}
	}
	if ((r = cmd_need_args(&help, argc - optind, 0, 0, argv + optind, NULL)) < 0)
		return r;
	if (cache_budget_set) {
		log_warning("--cache-budget is deprecated, please use --space-budget");
		if (crit.space_budget_set)
			return cmd_usage_error(
			    &help, "--cache-budget and --space-budget are mutually exclusive");
		crit.space_budget_set = true;
	}
	if (!crit.older_than_set && !crit.space_budget_set && !gc)
		return cmd_usage_error(&help, "at least one pruning criteria must be specified");

	if (gc)
		vm_cache_gc();
	if (!crit.older_than_set && !crit.space_budget_set)
		return 0;
	crit.now = time(NULL);
	return vm_prune(entries, &crit);
}
