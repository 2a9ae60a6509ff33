// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm/prune.h"

#define DAY 86400
#define GIB (1024ULL * 1024 * 1024)
#define NOW ((time_t)1000 * DAY)

/* The indices selected for removal, as a string of digits ("013"), for readable asserts. */
static const char *removed(const struct vm_prune_item *items, size_t n)
{
	static char buf[64];
	size_t k = 0;
	for (size_t i = 0; i < n && k + 1 < sizeof(buf); i++)
		if (items[i].remove)
			buf[k++] = (char)('0' + i);
	buf[k] = '\0';
	return buf;
}

static void test_older_than_boundaries(void **state)
{
	(void)state;
	struct vm_prune_item it[] = {
		{.accessed = NOW - 7 * DAY},     /* exactly n days: removed (<=) */
		{.accessed = NOW - 7 * DAY + 1}, /* one second younger: kept */
		{.accessed = 0},                 /* epoch (re-pulled tag's old target) */
		{.accessed = NOW + 3600},        /* clock skew: in the future, kept */
		{.accessed = NOW - 30 * DAY, .flags = VM_PRUNE_IN_USE},
		{.accessed = NOW - 30 * DAY, .flags = VM_PRUNE_EXCLUDED},
	};
	struct vm_prune_criteria c = {.older_than_set = true, .older_than_days = 7, .now = NOW};
	assert_int_equal(vm_prune_select(it, 6, &c), 2);
	assert_string_equal(removed(it, 6), "02");

	c.older_than_days = 0; /* everything accessed up to now */
	assert_int_equal(vm_prune_select(it, 6, &c), 3);
	assert_string_equal(removed(it, 6), "012");
}

static void test_older_than_huge(void **state)
{
	(void)state;
	struct vm_prune_item it[] = {{.accessed = 0}, {.accessed = NOW - 500 * DAY}};
	struct vm_prune_criteria c = {.older_than_set = true, .now = NOW};
	/* No wrap-around: more days than since the epoch selects nothing. */
	c.older_than_days = UINT64_MAX;
	assert_int_equal(vm_prune_select(it, 2, &c), 0);
	c.older_than_days = UINT64_MAX / DAY + 1;
	assert_int_equal(vm_prune_select(it, 2, &c), 0);
	c.older_than_days = 1001;
	assert_int_equal(vm_prune_select(it, 2, &c), 0);
	c.older_than_days = 1000; /* threshold is the epoch itself */
	assert_int_equal(vm_prune_select(it, 2, &c), 1);
	assert_string_equal(removed(it, 2), "0");
}

static void test_space_budget_greedy(void **state)
{
	(void)state;
	/* Newest first: 0 (3), 1 (5), 2 (1), 3 (2), 4 (1) GiB; budget 6 GiB. */
	struct vm_prune_item it[] = {
		{.accessed = NOW - 1, .allocated = 3 * GIB},
		{.accessed = NOW - 2, .allocated = 5 * GIB}, /* does not fit in 3: removed */
		{.accessed = NOW - 3, .allocated = 1 * GIB}, /* later, smaller: kept */
		{.accessed = NOW - 4, .allocated = 2 * GIB}, /* fits exactly: kept */
		{.accessed = NOW - 5, .allocated = 1 * GIB}, /* budget exhausted: removed */
	};
	struct vm_prune_criteria c = {.space_budget_set = true, .space_budget_bytes = 6 * GIB,
				      .now = NOW};
	assert_int_equal(vm_prune_select(it, 5, &c), 2);
	assert_string_equal(removed(it, 5), "14");
	/* Array order does not matter, access time does. */
	struct vm_prune_item rev[5];
	for (size_t i = 0; i < 5; i++)
		rev[i] = it[4 - i];
	assert_int_equal(vm_prune_select(rev, 5, &c), 2);
	assert_string_equal(removed(rev, 5), "03");
}

static void test_space_budget_zero_and_empty(void **state)
{
	(void)state;
	struct vm_prune_item it[] = {
	    {.accessed = NOW, .allocated = 1},
	    {.accessed = NOW, .allocated = 0}, /* holds nothing: fits any budget */
	};
	struct vm_prune_criteria c = {
	    .space_budget_set = true, .space_budget_bytes = 0, .now = NOW};
	assert_int_equal(vm_prune_select(it, 2, &c), 1);
	assert_string_equal(removed(it, 2), "0");
	assert_int_equal(vm_prune_select(NULL, 0, &c), 0);
}

static void test_space_budget_ties_in_array_order(void **state)
{
	(void)state;
	struct vm_prune_item it[] = {
		{.accessed = NOW, .allocated = 2 * GIB},
		{.accessed = NOW, .allocated = 2 * GIB},
		{.accessed = NOW, .allocated = 2 * GIB},
	};
	struct vm_prune_criteria c = {.space_budget_set = true, .space_budget_bytes = 4 * GIB,
				      .now = NOW};
	assert_int_equal(vm_prune_select(it, 3, &c), 1);
	assert_string_equal(removed(it, 3), "2");
}

static void test_flagged_never_removed_nor_charged(void **state)
{
	(void)state;
	struct vm_prune_item it[] = {
		{.accessed = NOW, .allocated = 100 * GIB, .flags = VM_PRUNE_IN_USE},
		{.accessed = NOW - 1, .allocated = 4 * GIB},
		{.accessed = 0, .allocated = 1 * GIB, .flags = VM_PRUNE_EXCLUDED},
		{.accessed = NOW - 2, .allocated = 4 * GIB},
	};
	struct vm_prune_criteria c = {.space_budget_set = true, .space_budget_bytes = 5 * GIB,
				      .now = NOW};
	assert_int_equal(vm_prune_select(it, 4, &c), 1);
	assert_string_equal(removed(it, 4), "3");
}

static void test_combined_older_than_first(void **state)
{
	(void)state;
	struct vm_prune_item it[] = {
		{.accessed = NOW - 1 * DAY, .allocated = 3 * GIB},
		{.accessed = NOW - 2 * DAY, .allocated = 3 * GIB},
		{.accessed = NOW - 9 * DAY, .allocated = 1 * GIB}, /* old: removed by older-than */
		{.accessed = NOW - 3 * DAY, .allocated = 1 * GIB},
	};
	/* The old entry is not charged to the budget once older-than took it. */
	struct vm_prune_criteria c = {.older_than_set = true, .older_than_days = 7,
				      .space_budget_set = true, .space_budget_bytes = 4 * GIB,
				      .now = NOW};
	assert_int_equal(vm_prune_select(it, 4, &c), 2);
	assert_string_equal(removed(it, 4), "12");
}

static void test_auto_oldest_first(void **state)
{
	(void)state;
	struct vm_prune_item it[] = {
		{.accessed = 30, .allocated = 2},
		{.accessed = 10, .allocated = 2},
		{.accessed = 20, .allocated = 2},
		{.accessed = 40, .allocated = 2},
	};
	/* Reclaim until strictly more than need: 2, 4 (<= 4), 6. */
	assert_int_equal(vm_prune_select_auto(it, 4, 4), 3);
	assert_string_equal(removed(it, 4), "012");
	assert_int_equal(vm_prune_select_auto(it, 4, 3), 2);
	assert_string_equal(removed(it, 4), "12");
	assert_int_equal(vm_prune_select_auto(it, 4, 0), 1);
	assert_string_equal(removed(it, 4), "1");
}

static void test_auto_skips_flagged(void **state)
{
	(void)state;
	struct vm_prune_item it[] = {
		{.accessed = 1, .allocated = 50, .flags = VM_PRUNE_EXCLUDED}, /* the clone source */
		{.accessed = 2, .allocated = 50, .flags = VM_PRUNE_IN_USE},
		{.accessed = 3, .allocated = 10},
		{.accessed = 4, .allocated = 10},
	};
	assert_int_equal(vm_prune_select_auto(it, 4, 15), 2);
	assert_string_equal(removed(it, 4), "23");
}

static void test_auto_not_enough(void **state)
{
	(void)state;
	struct vm_prune_item it[] = {
		{.accessed = 1, .allocated = 100, .flags = VM_PRUNE_EXCLUDED},
		{.accessed = 2, .allocated = 10},
		{.accessed = 3, .allocated = 10},
	};
	/* Flagged bytes do not count: 20 < 21, so nothing at all is deleted. */
	it[1].remove = true; /* stale output must be cleared */
	assert_int_equal(vm_prune_select_auto(it, 3, 21), -ENOSPC);
	assert_string_equal(removed(it, 3), "");
	/* Exactly enough: everything eligible goes. */
	assert_int_equal(vm_prune_select_auto(it, 3, 20), 2);
	assert_string_equal(removed(it, 3), "12");
	assert_int_equal(vm_prune_select_auto(NULL, 0, 1), -ENOSPC);
}

/* The in-use protocol on a real directory (flock conflicts between two opens, even ours). */
static void test_in_use_locks(void **state)
{
	(void)state;
	char base[] = "/tmp/test-vm-prune-XXXXXX";
	assert_non_null(mkdtemp(base));
	char dir[128], link[128], moved[128];
	snprintf(dir, sizeof(dir), "%s/sha256:x", base);
	snprintf(link, sizeof(link), "%s/tag", base);
	snprintf(moved, sizeof(moved), "%s/moved", base);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(symlink(dir, link), 0);

	int use = vm_cache_use(dir);
	assert_true(use >= 0);
	int use2 = vm_cache_use(link); /* readers share, through a tag too */
	assert_true(use2 >= 0);
	assert_int_equal(vm_cache_lock_delete(dir), -EBUSY);
	close(use);
	assert_int_equal(vm_cache_lock_delete(dir), -EBUSY);
	close(use2);

	/* Deleters never follow a symlink, and report a missing entry as gone. */
	assert_int_equal(vm_cache_lock_delete(link), -ENOENT);
	assert_int_equal(vm_cache_lock_delete(moved), -ENOENT);
	assert_int_equal(vm_cache_use(moved), -ENOENT);

	int del = vm_cache_lock_delete(dir);
	assert_true(del >= 0);
	/* The lock follows the directory: once moved away, its old name is free. */
	assert_int_equal(rename(dir, moved), 0);
	assert_int_equal(mkdir(dir, 0755), 0);
	int fresh = vm_cache_lock_delete(dir);
	assert_true(fresh >= 0);
	assert_int_equal(vm_cache_lock_delete(moved), -EBUSY);
	close(fresh);
	close(del);

	assert_int_equal(unlink(link), 0);
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(rmdir(moved), 0);
	assert_int_equal(rmdir(base), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_older_than_boundaries),
		cmocka_unit_test(test_older_than_huge),
		cmocka_unit_test(test_space_budget_greedy),
		cmocka_unit_test(test_space_budget_zero_and_empty),
		cmocka_unit_test(test_space_budget_ties_in_array_order),
		cmocka_unit_test(test_flagged_never_removed_nor_charged),
		cmocka_unit_test(test_combined_older_than_first),
		cmocka_unit_test(test_auto_oldest_first),
		cmocka_unit_test(test_auto_skips_flagged),
		cmocka_unit_test(test_auto_not_enough),
		cmocka_unit_test(test_in_use_locks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
