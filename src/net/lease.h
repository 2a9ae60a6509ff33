/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * tart's DHCP lease store: $TART_HOME/net/leases.json, one record per VM MAC, guarded by an
 * flock on $TART_HOME/net/leases.lock and rewritten atomically.
 *
 * An address belongs to the `tart run` process that reserved it (pid + process start time, so
 * a recycled pid is not mistaken for the owner). It is freed when that run detaches, and a
 * record whose owner is gone (SIGKILL) is reclaimed by the next allocation, so addresses never
 * run out however many VMs a day come and go. `expires` is the DHCP lease end (0 until the
 * guest has been ACKed): `tart ip` shows only bound, unexpired leases.
 *
 * The table functions are pure (the owner-liveness check is a callback) and unit-tested; the
 * store functions do the file IO and do not log.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LEASE_MAX 4096 /* cap on records read from disk */

struct lease {
	uint8_t mac[6];
	uint32_t ip;	    /* host byte order */
	pid_t pid;	    /* owning `tart run`, 0 = none */
	uint64_t pid_start; /* /proc/<pid>/stat starttime of the owner */
	uint64_t expires;   /* Unix seconds; 0 = reserved, not yet bound */
	char vm[256];
	char hostname[64];
};

struct lease_table {
	struct lease *v;
	size_t n, alloc;
};

/* Returns true when the owner (pid, start time) is still running. */
typedef bool (*lease_alive_fn)(pid_t pid, uint64_t pid_start);

void lease_table_release(struct lease_table *t);
struct lease *lease_table_find_mac(struct lease_table *t, const uint8_t mac[6]);

/* Remove every record whose owner is gone; returns how many were dropped. */
size_t lease_table_reap(struct lease_table *t, lease_alive_fn alive);

/*
 * Reserve an address for mac in [first, last] (inclusive, host order), owned by (pid,
 * pid_start). Reaps dead owners first. A MAC that still has a record keeps its address when
 * that is in range (stable addresses across restarts); otherwise the lowest free address is
 * taken. -EBUSY when a live run other than pid already owns mac; -ENOSPC when the range is
 * full.
 */
int lease_table_reserve(struct lease_table *t, const uint8_t mac[6], const char *vm, pid_t pid,
			uint64_t pid_start, uint32_t first, uint32_t last, lease_alive_fn alive,
			uint32_t *ret_ip);

/* The guest was ACKed: set the lease end and remember its host name. -ENOENT if no record. */
int lease_table_bind(struct lease_table *t, const uint8_t mac[6], uint32_t ip, uint64_t expires,
		     const char *hostname);

/* Drop mac's record when owned by pid (pid 0 = whoever owns it). */
void lease_table_free(struct lease_table *t, const uint8_t mac[6], pid_t pid);

/* Bound and unexpired lease for mac at time now. */
int lease_table_lookup(struct lease_table *t, const uint8_t mac[6], uint64_t now, uint32_t *ret_ip);

/* JSON (de)serialization. parse returns -EBADMSG on malformed input. */
int lease_table_parse(const char *buf, size_t len, struct lease_table *ret);
char *lease_table_format(const struct lease_table *t);

/* File store. dir is $TART_HOME/net. lock returns an fd holding the flock. */
int lease_store_lock(const char *dir);
int lease_store_load(const char *dir, struct lease_table *ret); /* missing file = empty */
int lease_store_save(const char *dir, const struct lease_table *t);

/* Liveness through /proc: pid exists and its start time matches. */
bool lease_owner_alive(pid_t pid, uint64_t pid_start);
/* Start time of pid from /proc/<pid>/stat (clock ticks since boot); 0 on failure. */
uint64_t lease_pid_start(pid_t pid);
