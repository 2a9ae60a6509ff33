// SPDX-License-Identifier: Apache-2.0
/* Start-up of `orchard controller run`: etcd, TLS, the bootstrap admin, then the threads. */
#include "orchard/controller/controller.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orchard/controller/internal.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/time.h"

#define BOOTSTRAP_ADMIN "bootstrap-admin"

/* Orchard's generator: 32 characters, 10 digits, 10 symbols (no $ or "), letters for the rest. */
static char *random_token(void)
{
	static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	static const char digits[] = "0123456789";
	static const char symbols[] = "~!@#%^&*()_+`-={}|[]\\:<>?,./";
	char t[33];
	unsigned char rnd[64];
	if (fs_random_bytes(rnd, sizeof(rnd)) < 0)
		abort();
	for (int i = 0; i < 32; i++) {
		const char *set = i < 10 ? digits : i < 20 ? symbols : letters;
		size_t n = i < 10   ? sizeof(digits) - 1
			   : i < 20 ? sizeof(symbols) - 1
				    : sizeof(letters) - 1;
		t[i] = set[rnd[i] % n];
	}
	/* shuffle so that the classes are not in blocks */
	for (int i = 31; i > 0; i--) {
		int j = rnd[32 + i] % (i + 1);
		char tmp = t[i];
		t[i] = t[j];
		t[j] = tmp;
	}
	t[32] = 0;
	return xstrdup(t);
}

static int bootstrap(struct controller *c)
{
	const char *env = getenv("ORCHARD_BOOTSTRAP_ADMIN_TOKEN");
	size_t n = 0;
	int r = store_sa_count(c->store, &n);
	if (r < 0)
		return r;
	if (n != 0 && !env)
		return 0;
	_cleanup_free_ char *token = env ? xstrdup(env) : random_token();
	if (!*token)
		return log_error_errno(-EINVAL, "ORCHARD_BOOTSTRAP_ADMIN_TOKEN is empty");
	struct orchard_service_account sa = {0};
	sa.meta.name = (char *)BOOTSTRAP_ADMIN;
	sa.meta.created_at = orchard_now();
	sa.token = token;
	char *roles[5];
	for (size_t i = 0; i < 5; i++)
		roles[i] = (char *)orchard_all_roles[i];
	sa.roles.v = roles;
	sa.roles.n = 5;
	/*
	 * A generated token only goes in if the account is still absent: controllers started at
	 * once on an empty cluster all see no accounts, and with a blind put each would print a
	 * token that the last one's put has already replaced.
	 */
	r = store_sa_put(c->store, &sa, env != NULL);
	if (r == -EEXIST) {
		log_info("another controller created the \"%s\" service account at the same "
			 "time: its banner has the token",
			 BOOTSTRAP_ADMIN);
		return 0;
	}
	if (r < 0)
		return r;
	if (c->o.quiet_bootstrap)
		return 0;
	if (env)
		printf(
		    "INFO  Re-created the \"%s\" service account using the token provided in the "
		    "ORCHARD_BOOTSTRAP_ADMIN_TOKEN environment variable:\n\n",
		    BOOTSTRAP_ADMIN);
	else
		printf(
		    "INFO  No service accounts found, created a new \"%s\" service account using "
		    "a randomly-generated password:\n\n",
		    BOOTSTRAP_ADMIN);
	printf("      Service account name: %s\n", BOOTSTRAP_ADMIN);
	printf("      Service account token: %s\n", env ? "<hidden>" : token);
	if (c->fingerprint)
		printf("      Certificate SHA-256 fingerprint: %s.\n", c->fingerprint);
	fflush(stdout);
	return 0;
}

int controller_run(const struct controller_options *opts)
{
	struct controller *c = xcalloc(1, sizeof(*c));
	c->o = *opts;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->lws_lock, NULL);
	pthread_cond_init(&c->kick_cond, NULL);
	c->events_tail = &c->events;
	orchard_uuid(c->id);
	if (opts->advertise_url)
		c->url = xstrdup(opts->advertise_url);
	int r = store_open(opts->etcd, opts->etcd_prefix, &c->store);
	if (r < 0)
		return log_error_errno(r, "invalid --etcd endpoints '%s'", opts->etcd);

	/* listen first: TLS material and the port, so that a mistake shows at once */
	r = http_serve(c);
	if (r < 0)
		return r;

	/* etcd may come up after us: wait for it, saying so */
	usec_t said = 0;
	for (;;) {
		r = bootstrap(c);
		if (r == 0)
			break;
		if (r != -ENOTCONN)
			return log_error_errno(r, "cannot bootstrap the service accounts in etcd");
		if (now_monotonic_usec() - said > 10000000) {
			log_warning("waiting for etcd at %s", opts->etcd);
			said = now_monotonic_usec();
		}
		sleep_usec(500000);
	}
	struct etcd_kvs kvs;
	_cleanup_free_ char *probe = store_key(c->store, "cluster-settings");
	r = etcd_range(store_etcd(c->store), probe, NULL, 0, 0, true, false, &kvs);
	if (r < 0)
		return log_error_errno(r, "cannot read from etcd");
	c->vms_watch_from = c->live_watch_from = kvs.revision + 1;
	etcd_kvs_release(&kvs);

	if (c->fingerprint && c->o.quiet_bootstrap == false)
		log_info("certificate SHA-256 fingerprint: %s", c->fingerprint);
	r = accounts_start(c);
	if (r < 0)
		return log_error_errno(r, "cannot read the service accounts from etcd");
	r = jobs_start(c, 8);
	if (r == 0)
		r = errands_start(c);
	if (r == 0)
		r = lease_keeper_start(c);
	if (r == 0)
		r = watchers_start(c);
	if (r == 0)
		r = scheduler_start(c);
	if (r < 0)
		return log_error_errno(r, "cannot start the controller's threads");
	log_notice("orchard controller listening on %s (%s), etcd %s", opts->listen,
		   opts->insecure_no_tls ? "no TLS" : "TLS", opts->etcd);
	r = http_loop(c);
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_signal(&c->kick_cond);
	int64_t lease = c->lease;
	pthread_mutex_unlock(&c->lock);
	/* our keys go now rather than when the lease runs out */
	if (lease)
		(void)etcd_lease_revoke(store_etcd(c->store), lease);
	http_stop(c);
	return r;
}
