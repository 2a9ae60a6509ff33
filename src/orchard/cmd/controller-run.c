// SPDX-License-Identifier: Apache-2.0
/* orchard controller run: Orchard's flags, plus --etcd (ours: the state lives in etcd). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orchard/cmd/cmd.h"
#include "orchard/controller/controller.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/macro.h"

static const char usage[] =
    "Run the controller\n"
    "\n"
    "Usage:\n"
    "  orchard controller run [flags]\n"
    "\n"
    "Flags:\n"
    "      --api-prefix string                  prefix of the API routes (e.g. \"/orchard\")\n"
    "      --advertise-url string               URL other controllers reach this one at for\n"
    "                                           port-forward relays (default: from --listen)\n"
    "      --controller-cert string             use this PEM certificate instead of a\n"
    "                                           generated one (with --controller-key)\n"
    "      --controller-key string              its PEM private key\n"
    "      --data-dir string                    where the generated certificate is kept\n"
    "                                           (default $ORCHARD_HOME/.orchard/controller)\n"
    "      --debug                              log debugging messages\n"
    "      --etcd string                        etcd client URLs, comma-separated (default\n"
    "                                           \"http://127.0.0.1:2379\"; env ORCHARD_ETCD)\n"
    "      --etcd-prefix string                 key prefix of this cluster's state (default\n"
    "                                           \"/orchard/\")\n"
    "      --experimental-ping-interval duration  WebSocket ping interval (default 30s, min 5s)\n"
    "  -h, --help                               help for run\n"
    "      --insecure-no-tls                    serve plain HTTP\n"
    "  -l, --listen string                      address to listen on (default\n"
    "                                           \"127.0.0.1:6120\"; \":6120\" is every address)\n"
    "      --no-experimental-rpc-v2             do not offer the rpc-v2 capability\n"
    "      --worker-offline-timeout duration    a worker silent this long is offline and its\n"
    "                                           VMs fail (default 3m0s)\n";

/* Go's time.ParseDuration for what flags use: "3m", "90s", "1h30m", "1500ms"; in seconds. */
static int parse_duration_s(const char *s, int64_t *ret)
{
	double total = 0;
	const char *p = s;
	if (!*p)
		return -EINVAL;
	if (streq(p, "0")) {
		*ret = 0;
		return 0;
	}
	while (*p) {
		char *end;
		errno = 0;
		double v = strtod(p, &end);
		if (end == p || errno || v < 0)
			return -EINVAL;
		p = end;
		double unit;
		if (strncmp(p, "ms", 2) == 0)
			unit = 0.001, p += 2;
		else if (*p == 's')
			unit = 1, p++;
		else if (*p == 'm')
			unit = 60, p++;
		else if (*p == 'h')
			unit = 3600, p++;
		else
			return -EINVAL;
		total += v * unit;
	}
	if (total > 1e9)
		return -ERANGE;
	*ret = (int64_t)(total + 0.999);
	return 0;
}

enum {
	OPT_API_PREFIX = 0x100,
	OPT_ADVERTISE,
	OPT_CERT,
	OPT_KEY,
	OPT_DATA_DIR,
	OPT_DEBUG,
	OPT_ETCD,
	OPT_ETCD_PREFIX,
	OPT_PING,
	OPT_NO_TLS,
	OPT_NO_RPC_V2,
	OPT_RPC_V2,
	OPT_OFFLINE,
	OPT_SCHED_INTERVAL,
	OPT_AUTH_DISABLED,
	OPT_LISTEN_SSH,
	OPT_NO_ELECTION,
};

int orchard_cmd_controller_run(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"listen", required_argument, NULL, 'l'},
	    {"api-prefix", required_argument, NULL, OPT_API_PREFIX},
	    {"advertise-url", required_argument, NULL, OPT_ADVERTISE},
	    {"controller-cert", required_argument, NULL, OPT_CERT},
	    {"controller-key", required_argument, NULL, OPT_KEY},
	    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
	    {"debug", no_argument, NULL, OPT_DEBUG},
	    {"etcd", required_argument, NULL, OPT_ETCD},
	    {"etcd-prefix", required_argument, NULL, OPT_ETCD_PREFIX},
	    {"experimental-ping-interval", required_argument, NULL, OPT_PING},
	    {"insecure-no-tls", no_argument, NULL, OPT_NO_TLS},
	    {"no-experimental-rpc-v2", no_argument, NULL, OPT_NO_RPC_V2},
	    {"experimental-rpc-v2", no_argument, NULL, OPT_RPC_V2},
	    {"worker-offline-timeout", required_argument, NULL, OPT_OFFLINE},
	    /* hidden: tests and `orchard dev` */
	    {"scheduler-interval", required_argument, NULL, OPT_SCHED_INTERVAL},
	    {"insecure-auth-disabled", no_argument, NULL, OPT_AUTH_DISABLED},
	    {"listen-ssh", required_argument, NULL, OPT_LISTEN_SSH},
	    /* hidden: every controller schedules (tests of the transactions' guarantees) */
	    {"experimental-no-scheduler-election", no_argument, NULL, OPT_NO_ELECTION},
	    {NULL, 0, NULL, 0},
	};
	struct controller_options o = CONTROLLER_OPTIONS_DEFAULT;
	_cleanup_free_ char *data_dir = NULL;
	const char *env_etcd = getenv("ORCHARD_ETCD");
	if (env_etcd && *env_etcd)
		o.etcd = env_etcd;
	const char *port_env = getenv("PORT");
	_cleanup_free_ char *listen_env = NULL;
	if (port_env && *port_env) {
		listen_env = xasprintf("127.0.0.1:%s", port_env);
		o.listen = listen_env;
	}
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "hl:", longopts, NULL)) != -1) {
		int64_t secs;
		switch (c) {
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'l':
			o.listen = optarg;
			break;
		case OPT_API_PREFIX:
			o.api_prefix = optarg;
			break;
		case OPT_ADVERTISE:
			o.advertise_url = optarg;
			break;
		case OPT_CERT:
			o.cert_path = optarg;
			break;
		case OPT_KEY:
			o.key_path = optarg;
			break;
		case OPT_DATA_DIR:
			o.data_dir = optarg;
			break;
		case OPT_DEBUG:
			log_set_level(LOG_DEBUG);
			break;
		case OPT_ETCD:
			o.etcd = optarg;
			break;
		case OPT_ETCD_PREFIX:
			o.etcd_prefix = optarg;
			break;
		case OPT_PING:
			if (parse_duration_s(optarg, &secs) < 0 || secs < 5) {
				fprintf(stderr,
					"Error: --experimental-ping-interval: want a duration of "
					"at least 5s, got \"%s\"\n",
					optarg);
				return ORCHARD_EUSAGE;
			}
			o.ping_interval_s = secs;
			break;
		case OPT_NO_TLS:
			o.insecure_no_tls = true;
			break;
		case OPT_NO_RPC_V2:
			o.no_rpc_v2 = true;
			break;
		case OPT_RPC_V2:
			break;
		case OPT_OFFLINE:
			if (parse_duration_s(optarg, &secs) < 0 || secs < 1) {
				fprintf(stderr,
					"Error: --worker-offline-timeout: want a duration of at "
					"least 1s, got \"%s\"\n",
					optarg);
				return ORCHARD_EUSAGE;
			}
			o.worker_offline_timeout_s = secs;
			break;
		case OPT_SCHED_INTERVAL:
			if (parse_duration_s(optarg, &secs) < 0 || secs < 1) {
				fprintf(stderr, "Error: --scheduler-interval: invalid \"%s\"\n",
					optarg);
				return ORCHARD_EUSAGE;
			}
			o.scheduler_interval_s = secs;
			break;
		case OPT_AUTH_DISABLED:
			o.insecure_auth_disabled = true;
			break;
		case OPT_NO_ELECTION:
			o.no_scheduler_election = true;
			break;
		case OPT_LISTEN_SSH:
			fprintf(stderr,
				"Error: --listen-ssh: the SSH jump server is not implemented; "
				"use `orchard ssh vm` or `orchard port-forward vm`\n");
			return ORCHARD_EUSAGE;
		default:
			fprintf(stderr, "Error: unknown flag or missing value: %s\n",
				argv[optind - 1]);
			fprintf(stderr, "Run 'orchard controller run --help' for usage.\n");
			return ORCHARD_EUSAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "Error: unexpected argument \"%s\"\n", argv[optind]);
		return ORCHARD_EUSAGE;
	}
	if (!o.data_dir) {
		const char *home = getenv("ORCHARD_HOME");
		if (!home || !*home)
			home = getenv("HOME");
		if (!home || !*home)
			home = "/";
		data_dir = xasprintf("%s/.orchard/controller", home);
		o.data_dir = data_dir;
	}
	if (o.api_prefix[0] &&
	    (o.api_prefix[0] != '/' || o.api_prefix[strlen(o.api_prefix) - 1] == '/')) {
		fprintf(stderr, "Error: --api-prefix must start with '/' and not end with one\n");
		return ORCHARD_EUSAGE;
	}
	return controller_run(&o);
}
