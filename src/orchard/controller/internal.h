/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Shared between the controller's files; not an API. */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orchard/controller/controller.h"
#include "orchard/resource.h"
#include "orchard/store/store.h"
#include "util/strbuf.h"

#ifndef ORCHARD_VERSION_STRING
#define ORCHARD_VERSION_STRING "unknown"
#endif
#ifndef ORCHARD_COMMIT_STRING
#define ORCHARD_COMMIT_STRING "unknown"
#endif

struct lws_context;
struct conn;
struct accounts;

/* An etcd change handed from a watcher thread to the event loop. */
enum ctl_event_source { CTL_EVENT_VMS, CTL_EVENT_LIVE };
struct ctl_event {
	struct ctl_event *next;
	enum ctl_event_source source;
	bool deleted;
	char *key; /* without the store prefix */
	char *value;
	size_t len;
	int64_t mod_revision;
};

struct controller {
	struct controller_options o;
	struct store *store;
	struct accounts *accounts; /* service accounts mirrored for upgrades (accounts.c) */
	struct lws_context *lws;
	char id[37];	   /* this controller process, in live/controllers/<id> */
	char *url;	   /* advertised base URL, for relays from other controllers */
	char *cert_pem;	   /* our TLS certificate, NULL without TLS */
	char *fingerprint; /* SHA-256 of its DER, as Orchard prints it */

	pthread_mutex_t lock;
	pthread_cond_t kick_cond;
	bool kicked, stopping;
	bool kick_forward; /* a kick from our API: a standby passes it on to the leader */
	struct ctl_event *events, **events_tail;
	int64_t lease;			  /* our etcd lease, 0 while we have none */
	struct orchard_strv held_workers; /* watch channels held here (copy for the keeper) */
	uint64_t lease_generation;	  /* bumped at each new lease */

	/* requests handed to the API threads, and their answers (jobs.c) */
	pthread_cond_t jobs_cond;
	struct api_job *jobs, **jobs_tail;
	struct api_job *done, **done_tail;

	/* the event loop's etcd errands, one thread in order, and the finished ones (jobs.c) */
	pthread_cond_t errands_cond;
	struct errand *errands, **errands_tail;
	struct errand *errands_done, **errands_done_tail;

	/* lws_cancel_service from other threads, until the context goes away */
	pthread_mutex_t lws_lock;
	bool lws_gone;

	/* event loop only */
	struct conn *conns;
	uint64_t next_conn_id;
	int64_t vms_watch_from, live_watch_from;
};

/* ---- API requests and answers (api.c), run on the event loop ---- */
struct api_req {
	struct controller *c;
	int method; /* LWSHUMETH_* */
	char **seg; /* path segments after /v1 */
	size_t nseg;
	const struct orchard_strv *args; /* URL arguments "name=value", decoded */
	const char *body;
	size_t body_len;
	const struct orchard_service_account *sa; /* NULL: no credentials given */
	const char *user_agent;
};

struct api_resp {
	int status;
	struct strbuf body;
	const char *content_type;
	char *next_cursor; /* X-Next-Cursor */
	/* deferred answers (ip, watch): the event loop finishes them later */
	enum { API_NOW, API_DEFER_IP, API_DEFER_WATCH } defer;
	struct orchard_vm *vm; /* for the deferred ones */
	uint64_t wait_s;
};

void api_resp_release(struct api_resp *r);

/*
 * An HTTP request handed from the event loop to an API thread (its etcd calls then do not
 * hold the loop up), and its answer coming back. Everything is owned by the job.
 */
struct api_job {
	struct api_job *next;
	uint64_t conn_id;
	int method;
	struct orchard_strv seg, args;
	char *body;
	size_t body_len;
	char *authorization, *user_agent;
	struct api_resp resp;
};
void api_job_free(struct api_job *j);
/* Authenticate and handle a job's request into j->resp (on an API thread). */
void api_run_job(struct controller *c, struct api_job *j);
int jobs_start(struct controller *c, int nthreads);
void jobs_submit(struct controller *c, struct api_job *j);
/* Pop every answered job (the event loop). */
struct api_job *jobs_take_done(struct controller *c);
/* Fill `r` for a request; called with the body complete. */
void api_handle(struct api_req *q, struct api_resp *r);
/* A JSON error body {"message": ...}. */
void api_error(struct api_resp *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A store error: 404, 409, 503 (etcd unreachable), 500. */
void api_store_error(struct api_resp *r, int err, const char *what);
void api_json(struct api_resp *r, int status, json_t *j);
/*
 * Authorize like Orchard: auth disabled passes; no credentials: 401; missing roles: 401
 * with the list. any: one of the roles suffices. Returns true when authorized; otherwise r
 * holds the answer.
 */
bool api_authorize(const struct api_req *q, struct api_resp *r, bool any, const char *const *roles);
/* A URL argument's value (allocated), "" for a bare name, NULL when absent. */
char *api_query(const struct orchard_strv *args, const char *name);
/*
 * Check HTTP Basic credentials: 0 and *ret filled (caller releases) when valid, -EACCES when
 * not, or a store error.
 */
int api_authenticate(struct controller *c, const char *authorization,
		     struct orchard_service_account *ret);
/* The name and token of HTTP Basic credentials (allocated); -EACCES when malformed. */
int api_basic_credentials(const char *authorization, char **ret_name, char **ret_token);
/* Whether a token is the account's (constant time in its content; empty never matches). */
bool api_token_matches(const struct orchard_service_account *sa, const char *token);

/* ---- the service accounts mirrored for WebSocket upgrades (accounts.c) ---- */
/* Read them (etcd must answer) and follow them in a thread. */
int accounts_start(struct controller *c);
/* api_authenticate against the mirror, for the event loop: never waits for etcd.
 * -ENOTCONN while etcd is unreachable (the mirror may be stale). */
int accounts_authenticate(struct controller *c, const char *authorization,
			  struct orchard_service_account *ret);
/* Wait (2 s at most) until the mirror shows the account as written here (sa NULL: gone). */
void accounts_wait(struct controller *c, const char *name,
		   const struct orchard_service_account *sa);

/*
 * An etcd round trip the event loop needs (a waiting request's checks, a watch channel's
 * claim, a relay's lookup): run on the errand thread, in submission order, so the loop never
 * waits for etcd; `done` then runs in the event loop (when set), and `release` frees it.
 */
struct errand {
	struct errand *next;
	void (*run)(struct controller *c, struct errand *e);
	void (*done)(struct controller *c, struct errand *e);
	void (*release)(struct errand *e);
};
int errands_start(struct controller *c);
void errand_submit(struct controller *c, struct errand *e);
/* Run `done` of every finished errand and release them (the event loop). */
void errands_finish(struct controller *c);

/* ---- rendezvous and the workers' channels (rpc.c helpers used by http.c) ---- */
/* Ask the worker for something (a notify key in etcd the holder of its channel delivers). */
int rpc_notify(struct controller *c, const char *worker, const char *id,
	       const struct orchard_watch_instruction *wi);
int rpc_unnotify(struct controller *c, const char *worker, const char *id);
/* Whether some controller holds the worker's watch channel. */
int rpc_worker_reachable(struct controller *c, const char *worker, bool *ret);
/* Register/unregister our session and its owner, for dial-backs landing elsewhere. */
int rpc_session_register(struct controller *c, const char *session);
void rpc_session_unregister(struct controller *c, const char *session);
/* Where another controller's session lives: URL and cert (allocated), -ENOENT when unknown or
 * when it is one of ours (then it waits nowhere: the stale key is removed). */
int rpc_session_owner(struct controller *c, const char *session, char **ret_url,
		      char **ret_cert_pem);
/* Publish an IP answer for a session (any controller's); -ENOENT when nobody waits for it. */
int rpc_answer(struct controller *c, const char *session, const char *ip, const char *error);
/* Mark a worker's channel held here / no longer held. */
int rpc_hold_worker(struct controller *c, const char *worker);
void rpc_release_worker(struct controller *c, const char *worker);

/* ---- threads ---- */
int watchers_start(struct controller *c);
/* Pop every queued event (the caller frees them with ctl_event_free). */
struct ctl_event *controller_take_events(struct controller *c);
void ctl_event_free(struct ctl_event *e);
/* Ask for a scheduling round wherever the scheduler runs (this controller or the leader). */
void controller_kick_scheduler(struct controller *c);
/* Wake this controller's scheduler thread only (the watches: every controller sees them). */
void scheduler_kick_local(struct controller *c);
/*
 * One controller at a time schedules: the holder of SCHED_LEADER_KEY (its id, on its lease).
 * The others stand by, serve the API and pass their kicks on by putting SCHED_KICK_KEY.
 */
#define SCHED_LEADER_KEY "live/scheduler"
#define SCHED_KICK_KEY "live/kick"
int scheduler_start(struct controller *c);
int lease_keeper_start(struct controller *c);

/* ---- the event loop (http.c) ---- */
int http_serve(struct controller *c);
/* Wake the event loop up from another thread (a no-op once it is gone). */
void controller_wake(struct controller *c);
/* Serve until SIGINT/SIGTERM. */
int http_loop(struct controller *c);
void http_stop(struct controller *c);

/* ---- TLS (tls.c) ---- */
/*
 * Load the certificate and key from the data dir (or the given paths), or generate a
 * self-signed ECDSA P-384 one (CN "Orchard Controller", DNS SAN orchard-controller, 10 years)
 * when there is none. Sets c->cert_pem and c->fingerprint; *ret_cert and *ret_key are the file
 * paths to give libwebsockets (allocated).
 */
int tls_prepare(struct controller *c, char **ret_cert, char **ret_key);
/* SHA-256 of a PEM certificate's DER, upper-case hex separated by spaces (Orchard's form). */
int tls_fingerprint(const char *pem, char **ret);
/* The same of a certificate's DER bytes. */
int tls_fingerprint_der(const unsigned char *der, size_t len, char **ret);
