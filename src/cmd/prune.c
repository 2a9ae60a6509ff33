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

enum { ARG_ENTRIES = 0x100, ARG_OLDER_THAN, ARG_SPACE_BUDGET, ARG_CACHE_BUDGET, ARG_GC };

struct prune_opts {
	enum vm_prune_entries entries;
	struct vm_prune_criteria crit;
	bool cache_budget_set, gc;
};

static int prune_opt(int c, const char *arg, void *userdata)
{
	struct prune_opts *o = userdata;
	/* Budgets in GiB must not overflow once converted to bytes. */
	const uint64_t max_gib = UINT64_MAX / GIB;
	uint64_t v;
	int r;
	switch (c) {
	case ARG_ENTRIES:
		if (streq(arg, "caches"))
			o->entries = VM_PRUNE_CACHES;
		else if (streq(arg, "vms"))
			o->entries = VM_PRUNE_VMS;
		else
			return cmd_usage_error(
			    &help, "The value '%s' is invalid for '--entries <entries>'", arg);
		return 0;
	case ARG_OLDER_THAN:
		if ((r = cmd_parse_u64(&help, "--older-than", arg, 0, UINT64_MAX, &v)) < 0)
			return r;
		o->crit.older_than_set = true;
		o->crit.older_than_days = v;
		return 0;
	case ARG_SPACE_BUDGET:
	case ARG_CACHE_BUDGET:
		if ((r = cmd_parse_u64(&help,
				       c == ARG_SPACE_BUDGET ? "--space-budget" : "--cache-budget",
				       arg, 0, max_gib, &v)) < 0)
			return r;
		if (c == ARG_CACHE_BUDGET)
			o->cache_budget_set = true;
		else
			o->crit.space_budget_set = true;
		o->crit.space_budget_bytes = v * GIB;
		return 0;
	case ARG_GC:
		o->gc = true;
		return 0;
	default:
		return CMD_EUSAGE;
	}
}

int cmd_prune(int argc, char **argv)
{
	static const struct option opts[] = {
		{"entries", required_argument, NULL, ARG_ENTRIES},
		{"older-than", required_argument, NULL, ARG_OLDER_THAN},
		{"space-budget", required_argument, NULL, ARG_SPACE_BUDGET},
		{"cache-budget", required_argument, NULL, ARG_CACHE_BUDGET},
		{"gc", no_argument, NULL, ARG_GC},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const struct cmd_spec spec = {.help = &help, .longopts = opts, .on_opt = prune_opt};
	struct prune_opts o = {.entries = VM_PRUNE_CACHES};
	struct vm_prune_criteria *crit = &o.crit;
	int r = cmd_parse(&spec, argc, argv, &o);
	if (r <= 0)
		return r;
	if (o.cache_budget_set) {
		log_warning("--cache-budget is deprecated, please use --space-budget");
		if (crit->space_budget_set)
			return cmd_usage_error(
			    &help, "--cache-budget and --space-budget are mutually exclusive");
		crit->space_budget_set = true;
	}
	if (!crit->older_than_set && !crit->space_budget_set && !o.gc)
		return cmd_usage_error(&help, "at least one pruning criteria must be specified");

	if (o.gc)
		vm_cache_gc();
	if (!crit->older_than_set && !crit->space_budget_set)
		return 0;
	crit->now = time(NULL);
	return vm_prune(o.entries, crit);
}
