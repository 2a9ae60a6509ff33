/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * `orchard controller run`: Orchard's REST API under [prefix]/v1 over libwebsockets (HTTP/1.1,
 * WebSocket and TLS in one event loop), state in etcd (store/), a scheduler thread, and
 * two etcd watchers feeding the event loop. docs/orchard.md describes how several
 * controllers share one etcd cluster.
 *
 * Threads: the event loop (all HTTP and WebSocket I/O, short etcd calls inline), the
 * scheduler (placement and health checks), the lease keeper (this controller's etcd lease and
 * what hangs on it), and the two watchers. They share only the store (thread-safe) and the
 * queues declared here, under `lock`.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "orchard/resource.h"
#include "orchard/store/store.h"

struct controller_options {
	const char *listen;	   /* "127.0.0.1:6120", ":6120" */
	const char *api_prefix;	   /* "" or "/orchard" */
	const char *data_dir;	   /* controller.crt, controller.key */
	const char *etcd;	   /* endpoints */
	const char *etcd_prefix;   /* "/orchard/" */
	const char *advertise_url; /* how other controllers reach this one; NULL: derived */
	const char *cert_path;	   /* --controller-cert */
	const char *key_path;	   /* --controller-key */
	bool insecure_no_tls;
	bool insecure_auth_disabled; /* `orchard dev` without a bootstrap token */
	bool no_rpc_v2;
	int64_t worker_offline_timeout_s; /* 180 */
	int64_t ping_interval_s;	  /* 30 */
	int64_t scheduler_interval_s;	  /* 5 */
	uint64_t max_body;		  /* request body cap */
	bool quiet_bootstrap;		  /* do not print the bootstrap banner */
	bool no_scheduler_election;	  /* every controller schedules (tests) */
};

#define CONTROLLER_OPTIONS_DEFAULT                                                                 \
	{                                                                                          \
		.listen = "127.0.0.1:6120", .api_prefix = "", .etcd = "http://127.0.0.1:2379",     \
		.etcd_prefix = STORE_DEFAULT_PREFIX, .worker_offline_timeout_s = 180,              \
		.ping_interval_s = 30, .scheduler_interval_s = 5, .max_body = 4u << 20             \
	}

/*
 * Run until SIGINT/SIGTERM: bootstrap (TLS certificate, the bootstrap-admin account, the
 * banner with the token and fingerprint), then serve. Returns 0 after a clean stop, -errno
 * when it could not start (logged).
 */
int controller_run(const struct controller_options *opts);
