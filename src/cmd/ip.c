// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/client.h"
#include "cmd/cmd.h"
#include "net/resolve.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "vm/config.h"
#include "vm/dir.h"

static const struct cmd_help help = {
    .name = "ip",
    .overview = "Get VM's IP address",
    .usage = "ip <name> [--wait <wait>] [--resolver <resolver>]",
    .details =
	"ARGUMENTS:\n"
	"  <name>                  VM name\n\n"
	"OPTIONS:\n"
	"  --wait <wait>           Number of seconds to wait for a potential VM booting "
	"(default: 0)\n"
	"  --resolver <resolver>   Strategy for resolving IP address: dhcp, arp or agent "
	"(default: dhcp)\n"
	"                          dhcp reads tart's own DHCP leases (NAT, Softnet and host "
	"modes); arp\n"
	"                          reads the host's neighbour table (needed for --net-bridged "
	"VMs);\n"
	"                          agent asks the guest agent through the VM's control.sock (the "
	"Tart\n"
	"                          Guest Agent, or else QEMU's guest agent): works in every "
	"network mode\n"
	"                          but reports the guest's own address (under user-mode "
	"networking a\n"
	"                          private one)\n"
	"  -h, --help              Show help information.\n",
};

/*
 * `run` also records its attachment in <vm>/run.json ({"netMode": ..., "net": <info>}); a
 * running user-mode VM found there gets the same explanation as from a run record.
 */
static bool user_mode_from_run_state(const struct vm_dir *d, const char *name, char *explain,
				     size_t len)
{
	if (vm_dir_state(d) != VM_STATE_RUNNING)
		return false;
	_cleanup_free_ char *p = vm_dir_file(d, "run.json");
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	_cleanup_json_ json_t *j = NULL;
	const char *mode, *info = "";
	if (fs_read_full(p, 65536, &sb) < 0 || json_parse_buf(sb.buf, sb.len, &j) < 0 ||
	    json_get_string(j, "netMode", &mode) < 0 || !streq(mode, "user"))
		return false;
	(void)json_get_string(j, "net", &info);
	net_user_explain(name, info, explain, len);
	return true;
}

static void sleep_until_next_second(time_t deadline)
{
	if (time(NULL) < deadline)
		sleep(1);
}

enum { ARG_WAIT = 0x100, ARG_RESOLVER };

struct ip_opts {
	uint64_t wait;
	enum net_resolver resolver;
};

static int ip_opt(int c, const char *arg, void *userdata)
{
	struct ip_opts *o = userdata;
	switch (c) {
	case ARG_WAIT:
		return cmd_parse_u64(&help, "--wait", arg, 0, UINT16_MAX, &o->wait);
	case ARG_RESOLVER:
		if (net_resolver_parse(arg, &o->resolver) < 0)
			return cmd_usage_error(
			    &help, "The value '%s' is invalid for '--resolver <resolver>'", arg);
		return 0;
	default:
		return CMD_EUSAGE;
	}
}

int cmd_ip(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"wait", required_argument, NULL, ARG_WAIT},
	    {"resolver", required_argument, NULL, ARG_RESOLVER},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static const char *const names[] = {"<name>"};
	static const struct cmd_spec spec = {.help = &help,
					     .longopts = opts,
					     .on_opt = ip_opt,
					     .min_args = 1,
					     .max_args = 1,
					     .arg_names = names};
	struct ip_opts o = {.resolver = NET_RESOLVER_DHCP};
	int a = cmd_parse(&spec, argc, argv, &o);
	if (a <= 0)
		return a;
	const char *name = argv[a];
	const enum net_resolver resolver = o.resolver;

	_cleanup_vm_dir_ struct vm_dir d = {0};
	int r = vm_dir_open_local(name, &d);
	if (r < 0)
		return r;
	struct vm_config cfg;
	r = vm_dir_load_config(&d, &cfg);
	if (r < 0)
		return r;

	/* Tart: at least one attempt, then once a second until the deadline. */
	time_t deadline = time(NULL) + (time_t)o.wait;
	char ip[16], explain[512];
	int ret = 1;
	for (;;) {
		if (resolver == NET_RESOLVER_AGENT)
			r = agent_resolve_ip(d.path, AGENT_RESOLVE_TIMEOUT_MS, ip) == 0 ? 0
											: -EAGAIN;
		else
			r = net_resolve_ip(name, d.path, cfg.mac, resolver, ip, explain,
					   sizeof(explain));
		if (r == 0) {
			printf("%s\n", ip);
			ret = 0;
			break;
		}
		if (r == -ENOENT && user_mode_from_run_state(&d, name, explain, sizeof(explain)))
			r = -EREMOTE;
		if (r == -EREMOTE) {
			log_error("%s", explain);
			break;
		}
		if (time(NULL) >= deadline) {
			bool running = vm_dir_state(&d) == VM_STATE_RUNNING;
			log_error("no IP address found%s%s", running ? "" : ", is your VM running?",
				  resolver == NET_RESOLVER_AGENT
				      ? " (also make sure that Guest agent for Tart is running "
					"inside of a VM)"
				  : resolver == NET_RESOLVER_ARP && streq(cfg.os, "linux")
				      ? " (not all Linux distributions are compatible with the ARP "
					"resolver)"
				      : "");
			break;
		}
		sleep_until_next_second(deadline);
	}
	vm_config_release(&cfg);
	return ret;
}
