/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * `orchard worker run`: Orchard's worker (internal/worker) over our `tart`.
 *
 * worker.c  the session loop: register, controller info, watch channel, on-disk sync, the
 *           heartbeat and the reconciliation of remote and local VMs (fsm.h), shutdown
 * vm.c      one local VM: Orchard's Tart driver (pull, clone, fqn, set, run, ip, stop, delete),
 *           adoption of VMs a previous worker process left running, synthetic VMs
 * script.c  startup scripts over SSH (the system ssh, sshpass for passwords), streamed to the
 *           controller as log_line events
 * rpc.c     the watch channel's instructions: port-forward and resolve-ip answered by dialing
 *           back to the controller; the synthetic mode's echo server
 *
 * Threads: the main thread runs the session loop and the reconciliation; one thread each for
 * the heartbeat, the watch channel and the signal handling; one per VM for its driver (plus one
 * for a running startup script); one per port-forward. struct worker's lock guards the VM list;
 * each VM's own lock guards its state.
 */

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "orchard/client.h"
#include "util/strbuf.h"
#include "util/strvec.h"
#include "util/time.h"

struct orchard_ws;

enum {
	COND_CLONING = 1 << 0,
	COND_RUNNING = 1 << 1,
	COND_STOPPING = 1 << 2,
	COND_SUSPENDING = 1 << 3,
};

struct worker;

struct wvm {
	struct wvm *next;
	struct worker *w;
	char *odn;  /* on-disk name */
	char *name; /* the VM resource's name */
	char *uid;
	int refs; /* the list and every thread working on the VM hold one (w->lock) */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	json_t *res; /* the resource this VM runs (SetResource) */
	char *status_message;
	char *err;
	char *image_fqn;
	bool started; /* reached `tart run` once: status running */
	unsigned conds;
	bool busy;	/* the driver thread is alive ("the context is not done") */
	bool cancelled; /* its work is to stop */
	pid_t child;	/* the tart command that thread waits for, 0 when none */
	pid_t script_child;
	pid_t adopted_pid; /* `tart run` of a VM adopted from an earlier worker process */
	usec_t synthetic_ready_at;
};

struct worker {
	struct orchard_client *client;
	char *url;
	char *name;
	char *machine_id;
	char *tart;    /* the tart binary */
	char *ssh_key; /* extra identity for startup scripts, NULL when none */
	char *log_dir; /* `tart run` output of each VM */
	json_t *resources;
	json_t *labels;
	uint64_t default_cpu, default_memory;
	bool synthetic;
	int echo_port; /* synthetic: the echo server standing in for guests */

	pthread_mutex_t lock;
	pthread_cond_t wake; /* sync requests, session end, shutdown */
	struct wvm *vms;
	bool sync_requested;
	bool session_over;
	bool stopping;
	struct orchard_ws *watch; /* the open watch channel, under lock */
};

/* worker.c */
/* Start a detached thread; 0 or -errno. */
int worker_thread(void *(*fn)(void *), void *arg);
void worker_request_sync(struct worker *w);
/* Sleep up to usec or until woken (shutdown, session end); false when the session is over. */
bool worker_sleep(struct worker *w, usec_t usec);
bool worker_stopping(struct worker *w);
/* Find a local VM by uid (a reference the caller puts back with wvm_unref), NULL if none. */
struct wvm *worker_find_vm_uid(struct worker *w, const char *uid);

/* vm.c */
struct wvm *wvm_new(struct worker *w, const json_t *res);
void wvm_ref(struct wvm *vm);
void wvm_unref(struct wvm *vm);
/* Start the driver: pull/clone/configure/run (VM_NEW), or adopt a VM on disk. */
void wvm_create(struct wvm *vm);
/* An on-disk VM left by an earlier process: watch its `tart run` (pid), or run it again (0). */
void wvm_adopt(struct wvm *vm, pid_t run_pid);
void wvm_start(struct wvm *vm); /* run again after a spec change */
void wvm_stop(struct wvm *vm);	/* asynchronous, as Orchard's Stop() */
void wvm_stop_wait(struct wvm *vm);
void wvm_suspend(struct wvm *vm); /* asynchronous */
int wvm_delete(struct wvm *vm, char **ret_error);
void wvm_set_resource(struct wvm *vm, const json_t *res);
/* Snapshot of the state for the reconciliation (strings allocated, res a deep copy). */
struct wvm_state {
	int status; /* enum orchard_vm_status */
	char *status_message;
	char *err;
	char *image_fqn;
	unsigned conds;
	json_t *res;
};
void wvm_snapshot(struct wvm *vm, struct wvm_state *ret);
void wvm_state_release(struct wvm_state *s);
/* Where to dial for a guest port: tart ip (or the forwarded SSH port of user-mode networking). */
int wvm_endpoint(struct wvm *vm, int port, char **ret_host, int *ret_port, char **ret_error);
int wvm_ip(struct wvm *vm, char **ret_ip, char **ret_error);
void wvm_set_error(struct wvm *vm, const char *fmt, ...) _printf_(2, 3);
void wvm_set_message(struct wvm *vm, const char *msg);
/* Run `tart ARGS...` for this VM, cancellable by stop; 0, -ECANCELED or -EIO with a message. */
int wvm_tart(struct wvm *vm, const struct strvec *args, struct strbuf *out, char **ret_error);
/* Run tart outside of any VM's driver (list, stop, delete of unknown VMs). */
int worker_tart(struct worker *w, const struct strvec *args, struct strbuf *out, char **ret_error);

/* script.c: run the VM's startup script (a thread of its own); fails the VM on error */
void wvm_script_start(struct wvm *vm);
/* POST log_line events (lines separated by '\n') for the VM named `name`. */
int worker_post_log_lines(struct worker *w, const char *name, const char *const *lines, size_t n);

/* rpc.c */
void *worker_watch_main(void *w);
int worker_echo_server_start(struct worker *w);
