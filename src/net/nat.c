// SPDX-License-Identifier: Apache-2.0
/*
 * The tap-based modes. NAT, Softnet and host-only share one bridge (default "tart0", the
 * gateway address on it) and two nftables tables named `tart` (ip: masquerade, the exposed
 * port DNAT map and the per-VM Softnet/host-only chains; bridge: per-port pinning and
 * isolation). The first `run` creates them, the last one to leave deletes them; a run killed
 * with SIGKILL is cleaned up by the next one from its run record. Bridged mode only puts a
 * tap on the user's bridge.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/check.h"
#include "net/dhcp.h"
#include "net/lease.h"
#include "net/link.h"
#include "net/modes.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/strbuf.h"

/* Locally administered, fixed, so the gateway's MAC never changes under the guests' ARP caches
 * as taps come and go (a bridge otherwise takes the lowest port MAC). */
static const uint8_t bridge_mac[6] = {0x02, 0x74, 0x61, 0x72, 0x74, 0x01};

char *nat_script_base(const char *bridge, const struct net_prefix *subnet, uint32_t dns_forward)
{
	struct strbuf sb = STRBUF_INIT;
	char sub[19];
	net_prefix_format(subnet, sub);
	/* "add" then "delete" makes the delete succeed whether or not a leftover table exists. */
	strbuf_puts(&sb, "add table ip tart\ndelete table ip tart\n"
			 "add table bridge tart\ndelete table bridge tart\n");
	strbuf_puts(&sb, "table ip tart {\n\tset nonglobal {\n\t\ttype ipv4_addr\n"
			 "\t\tflags interval\n\t\telements = { ");
	for (size_t i = 0; i < net_nonglobal_count; i++) {
		char p[19];
		net_prefix_format(&net_nonglobal[i], p);
		strbuf_putf(&sb, "%s%s", i ? ", " : "", p);
	}
	strbuf_puts(&sb, " }\n\t}\n");
	strbuf_puts(&sb, "\tmap fwd_vm {\n\t\ttype ipv4_addr : verdict\n\t}\n"
			 "\tmap in_vm {\n\t\ttype ipv4_addr : verdict\n\t}\n"
			 "\tmap expose {\n\t\ttype inet_service : ipv4_addr . inet_service\n\t}\n");
	strbuf_putf(&sb,
		    "\tchain prerouting {\n"
		    "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
		    "\t\tiifname != \"%s\" fib daddr type local dnat ip to tcp dport map @expose\n",
		    bridge);
	if (dns_forward) {
		/* The host's only resolver listens on loopback: the gateway's port 53 leads there
		 * (route_localnet is set on the bridge for the purpose). */
		char gw[16], fwd[16];
		net_ip_format(subnet->addr + 1, gw);
		net_ip_format(dns_forward, fwd);
		strbuf_putf(&sb,
			    "\t\tiifname \"%s\" ip daddr %s meta l4proto { tcp, udp } th dport 53 "
			    "dnat ip to %s\n",
			    bridge, gw, fwd);
	}
	strbuf_puts(&sb, "\t}\n");
	strbuf_putf(&sb,
		    "\tchain postrouting {\n"
		    "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
		    "\t\tip saddr %s oifname != \"%s\" masquerade\n"
		    "\t}\n",
		    sub, bridge);
	strbuf_putf(&sb,
		    "\tchain forward {\n"
		    "\t\ttype filter hook forward priority filter; policy accept;\n"
		    "\t\tiifname \"%s\" ip saddr vmap @fwd_vm\n"
		    "\t}\n"
		    "\tchain input {\n"
		    "\t\ttype filter hook input priority filter; policy accept;\n"
		    "\t\tiifname \"%s\" ip saddr vmap @in_vm\n"
		    "\t}\n}\n",
		    bridge, bridge);
	strbuf_puts(&sb, "table bridge tart {\n"
			 "\tmap ports {\n\t\ttype ifname : verdict\n\t}\n"
			 "\tset isolated {\n\t\ttype ifname\n\t}\n"
			 "\tchain prerouting {\n"
			 "\t\ttype filter hook prerouting priority -300; policy accept;\n"
			 "\t\tiifname vmap @ports\n\t}\n"
			 "\tchain forward {\n"
			 "\t\ttype filter hook forward priority 0; policy accept;\n"
			 "\t\tiifname @isolated drop\n\t\toifname @isolated drop\n\t}\n}\n");
	return strbuf_detach(&sb, NULL);
}

static int nft_run(const char *script, const char *what)
{
	_cleanup_strbuf_ struct strbuf err = STRBUF_INIT;
	strbuf_init(&err, 16384);
	int r = nft_apply(script, &err);
	if (r == -ENOENT)
		return log_error_errno(r, "cannot find 'nft' (install nftables) to %s", what);
	if (r < 0) {
		strbuf_rtrim(&err);
		log_error("cannot %s: nft failed%s%s", what, err.len ? ": " : "", err.buf);
	}
	return r;
}

/* Best effort: the whole script, else line by line (some objects may already be gone). */
static void nft_run_lines(const char *script)
{
	if (!*script || nft_apply(script, NULL) == 0)
		return;
	_cleanup_free_ char *copy = xstrdup(script);
	char *save = NULL;
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		_cleanup_free_ char *one = xasprintf("%s\n", l);
		(void)nft_apply(one, NULL);
	}
}

static void teardown_shared(const char *bridge)
{
	nft_run_lines("delete table ip tart\ndelete table bridge tart\n");
	int r = link_bridge_del(bridge);
	if (r < 0)
		log_warning_errno(r, "cannot delete bridge '%s'", bridge);
}

static bool record_live(const struct net_record *r)
{
	return lease_owner_alive(r->pid, r->pid_start);
}

/* Undo what a run record lists. The caller holds the state lock. */
/*
 * The exposed ports that still lead to r's address. The map is shared by all VMs and keyed
 * by port: a port whose element belongs to another VM (ours never got installed) must stay.
 */
static void expose_owned(const struct net_record *r, struct net_expose *ret)
{
	char ip[16], needle[32];
	net_ip_format(r->ip, ip);
	snprintf(needle, sizeof(needle), ": %s . ", ip);
	ret->n = 0;
	for (size_t i = 0; i < r->expose.n; i++) {
		char key[16];
		snprintf(key, sizeof(key), "{ %u }", r->expose.ext[i]);
		const char *const args[] = {"get", "element", "ip", "tart", "expose", key, NULL};
		_cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
		strbuf_init(&out, 65536);
		if (nft_query(args, &out) == 0 && strstr(out.buf, needle)) {
			ret->ext[ret->n] = r->expose.ext[i];
			ret->in[ret->n++] = r->expose.in[i];
		}
	}
}

static void undo_record(const char *state_dir, const struct net_record *r)
{
	if (r->shared_bridge) {
		struct net_expose mine;
		expose_owned(r, &mine);
		_cleanup_free_ char *del = softnet_script_del(r->tap, r->ip, &mine, r->softnet);
		nft_run_lines(del);
	}
	if (*r->tap) {
		int k = link_delete(r->tap);
		if (k < 0)
			log_warning_errno(k, "cannot delete tap '%s'", r->tap);
	}
	if (r->ip) {
		_cleanup_close_ int lock = lease_store_lock(state_dir);
		struct lease_table t;
		int k = lock < 0 ? lock : lease_store_load(state_dir, &t);
		if (k == 0) {
			lease_table_free(&t, r->mac, r->pid);
			k = lease_store_save(state_dir, &t);
			lease_table_release(&t);
		}
		if (k < 0)
			log_warning_errno(
			    k, "cannot free the DHCP lease of '%s' (the next run will)", r->tap);
	}
	net_record_remove(state_dir, r->pid);
}

/*
 * Remove the leftovers of dead runs; then, unless a live run (other than `except`) still uses
 * the shared bridge, remove the bridge and the tables. Caller holds the state lock.
 */
static void cleanup_locked(const char *state_dir, pid_t except, const char *bridge)
{
	_cleanup_free_ struct net_record *v = NULL;
	size_t n = 0;
	if (net_record_list(state_dir, &v, &n) < 0)
		return;
	/* Without privileges kernel leftovers cannot be removed: keep their records for a
	 * privileged run, and clean only what needs no privileges (user-mode records). */
	bool privileged = net_privileged(), in_use = false;
	for (size_t i = 0; i < n; i++) {
		/* Our own record, unless an earlier process with our (recycled) pid left it. */
		if (v[i].pid == except && v[i].pid_start == lease_pid_start(except))
			continue;
		if ((v[i].pid != except && record_live(&v[i])) ||
		    (!privileged && (v[i].shared_bridge || *v[i].tap))) {
			in_use |= v[i].shared_bridge;
			continue;
		}
		log_debug("net: cleaning up after the dead run %d (tap '%s')", (int)v[i].pid,
			  v[i].tap);
		undo_record(state_dir, &v[i]);
	}
	if (!in_use && privileged && bridge && link_exists(bridge))
		teardown_shared(bridge);
}

void net_tap_cleanup_stale(void)
{
	struct net_settings s;
	if (net_settings_load(&s) < 0)
		return;
	_cleanup_free_ char *dir = net_state_dir();
	_cleanup_close_ int lock = net_state_lock(dir);
	if (lock < 0)
		return;
	cleanup_locked(dir, getpid(), s.bridge);
}

/* Create the bridge and tables when this is the first VM; check them otherwise. */
static int shared_ensure(const struct net_settings *s)
{
	uint32_t gw = s->subnet.addr + 1;
	char sub[19];
	net_prefix_format(&s->subnet, sub);
	if (link_exists(s->bridge)) {
		uint32_t ip;
		unsigned len;
		if (link_get_ipv4(s->bridge, &ip, &len) == 0 && ip == gw && len == s->subnet.len)
			return 0;
		log_error(
		    "bridge '%s' exists but does not carry the gateway of the NAT subnet %s: it "
		    "belongs to running VMs with other settings, or to something else; stop "
		    "them or choose another \"bridge\" in network.json",
		    s->bridge, sub);
		return -EADDRINUSE;
	}
	char what[128];
	int r = net_subnet_check_clash(&s->subnet, s->bridge, what, sizeof(what));
	if (r == -EADDRINUSE) {
		log_error("the NAT subnet %s clashes with the host's %s: set another \"subnet\" in "
			  "network.json or TART_NAT_SUBNET",
			  sub, what);
		return r;
	}
	if (r < 0)
		return log_error_errno(r, "cannot check the host's routes");
	if ((r = link_bridge_add(s->bridge)) < 0)
		return log_error_errno(r, "cannot create bridge '%s'", s->bridge);
	_cleanup_free_ char *v6 = xasprintf("net/ipv6/conf/%s/disable_ipv6", s->bridge);
	(void)link_sysctl_write(v6, "1");
	if ((r = link_set_mac(s->bridge, bridge_mac)) < 0 ||
	    (r = link_set_ipv4(s->bridge, gw, s->subnet.len)) < 0 ||
	    (r = link_set_up(s->bridge, true)) < 0) {
		log_error_errno(r, "cannot configure bridge '%s'", s->bridge);
		goto fail;
	}
	if ((r = link_sysctl_write("net/ipv4/ip_forward", "1")) < 0) {
		log_error_errno(r, "cannot enable IPv4 forwarding");
		goto fail;
	}
	if (s->dns_forward) {
		_cleanup_free_ char *key = xasprintf("net/ipv4/conf/%s/route_localnet", s->bridge);
		if ((r = link_sysctl_write(key, "1")) < 0) {
			log_error_errno(
			    r, "cannot let DNS queries reach the host's loopback resolver");
			goto fail;
		}
	}
	char *base = nat_script_base(s->bridge, &s->subnet, s->dns_forward);
	r = nft_run(base, "create the nftables tables 'tart'");
	free(base);
	if (r == 0)
		return 0;
fail:
	teardown_shared(s->bridge);
	return r;
}

static int parse_softnet_opts(const struct net_options *o, struct net_prefix_list *allow,
			      struct net_prefix_list *block, struct net_expose *expose)
{
	const struct {
		const char *flag, *value;
		struct net_prefix_list *list;
	} lists[] = {{"--net-softnet-allow", o->softnet_allow, allow},
		     {"--net-softnet-block", o->softnet_block, block}};
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
		lists[i].list->n = 0;
		size_t off = 0;
		if (lists[i].value &&
		    net_prefix_list_parse(lists[i].value, lists[i].list, &off) < 0) {
			log_error("invalid %s value '%s': bad CIDR at offset %zu (expected a list "
				  "like 10.0.0.0/8,1.2.3.4/32)",
				  lists[i].flag, lists[i].value, off);
			return -EINVAL;
		}
	}
	expose->n = 0;
	if (o->softnet_expose && net_expose_parse(o->softnet_expose, expose) < 0) {
		log_error("invalid --net-softnet-expose value '%s': expected EXTERNAL:INTERNAL TCP "
			  "port pairs like 2222:22,8080:80, each external port once",
			  o->softnet_expose);
		return -EINVAL;
	}
	return 0;
}

int net_options_check(const struct net_options *o)
{
	struct net_prefix_list allow, block;
	struct net_expose expose;
	uint8_t mac[6];
	int r = parse_softnet_opts(o, &allow, &block, &expose);
	if (r < 0)
		return r;
	if (o->mac && dhcp_mac_parse(o->mac, mac) < 0) {
		log_error("invalid VM MAC address '%s'", o->mac);
		return -EINVAL;
	}
	return 0;
}

static void fill_qemu_args(struct net_attachment *a, int tap_fd, const char *mac)
{
	strvec_push(&a->qemu_args, "-netdev");
	strvec_pushf(&a->qemu_args, "tap,id=net0,fd=%d", tap_fd);
	strvec_push(&a->qemu_args, "-device");
	strvec_pushf(&a->qemu_args, "virtio-net-pci,netdev=net0,mac=%s", mac);
	a->pass_fds[0] = tap_fd;
	a->n_pass_fds = 1;
	for (size_t i = 1; i < ARRAY_SIZE(a->pass_fds); i++)
		a->pass_fds[i] = -1;
}

static struct net_priv *priv_new(const struct net_options *o, enum net_mode mode)
{
	struct net_priv *p = xcalloc(1, sizeof(*p));
	p->tap_fd = -1;
	p->rec.pid = getpid();
	p->rec.pid_start = lease_pid_start(p->rec.pid);
	p->rec.mode = mode;
	snprintf(p->rec.vm, sizeof(p->rec.vm), "%s", o->vm_name ? o->vm_name : "");
	snprintf(p->rec.vm_dir, sizeof(p->rec.vm_dir), "%s", o->vm_dir ? o->vm_dir : "");
	snprintf(p->rec.tap, sizeof(p->rec.tap), "tart-t%d", (int)p->rec.pid);
	p->state_dir = net_state_dir();
	return p;
}

static void priv_free(struct net_priv *p)
{
	if (!p)
		return;
	dhcpd_stop(p->dhcpd);
	if (p->tap_fd >= 0)
		close(p->tap_fd);
	free(p->state_dir);
	free(p);
}

static int need_privileges(enum net_mode mode)
{
	if (net_privileged())
		return 0;
	log_error("network mode '%s' needs CAP_NET_ADMIN, CAP_NET_RAW and access to /dev/net/tun: "
		  "run tart as root, or grant the capabilities with 'setcap "
		  "cap_net_admin,cap_net_raw+ep %s', or use user-mode networking",
		  net_mode_to_string(mode), "$(command -v tart)");
	return -EPERM;
}

/* Reserve this VM's address in the lease store. */
static int reserve_ip(struct net_priv *p)
{
	const struct net_prefix *sub = &p->settings.subnet;
	uint32_t first = sub->addr + 2, last = sub->addr + ~net_prefix_mask(sub->len) - 1;
	_cleanup_close_ int lock = lease_store_lock(p->state_dir);
	if (lock < 0)
		return log_error_errno(lock, "cannot lock the lease store in '%s'", p->state_dir);
	struct lease_table t;
	int r = lease_store_load(p->state_dir, &t);
	if (r == -EBADMSG) {
		log_warning("the lease store in '%s' is corrupt: starting a new one", p->state_dir);
		t = (struct lease_table){0};
		r = 0;
	}
	if (r < 0)
		return log_error_errno(r, "cannot read the lease store in '%s'", p->state_dir);
	r = lease_table_reserve(&t, p->rec.mac, p->rec.vm, p->rec.pid, p->rec.pid_start, first,
				last, lease_owner_alive, &p->rec.ip);
	if (r == -EBUSY) {
		char mac[18];
		dhcp_mac_format(p->rec.mac, mac);
		log_error("another running VM already uses the MAC address %s", mac);
	} else if (r == -ENOSPC) {
		log_error("no free address left in the NAT subnet: every address is held by a "
			  "running VM");
	} else if (r == 0) {
		r = lease_store_save(p->state_dir, &t);
		if (r < 0)
			log_error_errno(r, "cannot write the lease store in '%s'", p->state_dir);
	}
	lease_table_release(&t);
	return r;
}

static int start_tap(struct net_priv *p, const char *bridge)
{
	int r;
	if (link_exists(p->rec.tap))
		(void)link_delete(p->rec.tap); /* a recycled pid's leftover */
	p->tap_fd = link_tap_create(p->rec.tap);
	if (p->tap_fd < 0)
		return log_error_errno(p->tap_fd, "cannot create tap '%s'", p->rec.tap);
	_cleanup_free_ char *v6 = xasprintf("net/ipv6/conf/%s/disable_ipv6", p->rec.tap);
	(void)link_sysctl_write(v6, "1");
	if ((r = link_bridge_add_port(bridge, p->rec.tap)) < 0)
		return log_error_errno(r, "cannot add tap '%s' to bridge '%s'", p->rec.tap, bridge);
	if ((r = link_set_up(p->rec.tap, true)) < 0)
		return log_error_errno(r, "cannot bring tap '%s' up", p->rec.tap);
	return 0;
}

static void finish_attachment(struct net_priv *p, struct net_attachment *ret, const char *extra)
{
	char mac[18], ip[16];
	dhcp_mac_format(p->rec.mac, mac);
	net_ip_format(p->rec.ip, ip);
	*ret = (struct net_attachment){.mode = p->rec.mode, .qemu_args = STRVEC_INIT};
	fill_qemu_args(ret, p->tap_fd, mac);
	if (p->rec.ip)
		snprintf(ret->info, sizeof(ret->info), "mode=%s ip=%s mac=%s tap=%s%s",
			 net_mode_to_string(p->rec.mode), ip, mac, p->rec.tap, extra);
	else
		snprintf(ret->info, sizeof(ret->info), "mode=%s mac=%s tap=%s%s",
			 net_mode_to_string(p->rec.mode), mac, p->rec.tap, extra);
	snprintf(p->rec.info, sizeof(p->rec.info), "%s", ret->info);
	ret->priv = p;
}

static int save_record(struct net_priv *p)
{
	int r = net_record_save(p->state_dir, &p->rec);
	if (r < 0)
		log_error_errno(r, "cannot write the run record in '%s'", p->state_dir);
	return r;
}

/* The VM's Softnet or host-only chains; nothing for plain NAT. */
static int install_softnet(struct net_priv *p, const struct net_prefix_list *allow,
			   const struct net_prefix_list *block, const struct net_expose *expose)
{
	const struct net_settings *s = &p->settings;
	if (!p->rec.softnet)
		return 0;
	struct softnet_rules rules = {
	    .tap = p->rec.tap,
	    .ip = p->rec.ip,
	    .gateway = s->subnet.addr + 1,
	    .subnet = s->subnet,
	    .dns = s->dns,
	    .n_dns = s->n_dns,
	    .allow = allow,
	    .block = block,
	    .expose = expose,
	    .host_only = p->rec.mode == NET_MODE_HOST,
	};
	memcpy(rules.mac, p->rec.mac, 6);
	_cleanup_free_ char *script = softnet_script_add(&rules);
	int r = nft_run(script, "install the VM's isolation rules");
	if (r < 0 && expose->n)
		log_error("(an exposed port may already be exposed by another VM)");
	return r;
}

/* The DHCP server that hands the VM its reserved address (no router or DNS in host mode). */
static int start_dhcp(struct net_priv *p)
{
	const struct net_settings *s = &p->settings;
	uint32_t gw = s->subnet.addr + 1;
	bool host = p->rec.mode == NET_MODE_HOST;
	struct dhcp_policy pol = {
	    .vm_ip = p->rec.ip,
	    .server_ip = gw,
	    .netmask = net_prefix_mask(s->subnet.len),
	    .router = host ? 0 : gw,
	    .n_dns = host ? 0 : s->n_dns,
	    .lease_secs = s->lease_secs,
	};
	memcpy(pol.vm_mac, p->rec.mac, 6);
	memcpy(pol.server_mac, bridge_mac, 6);
	memcpy(pol.dns, s->dns, sizeof(pol.dns));
	return dhcpd_start(p->rec.tap, &pol, p->state_dir, &p->dhcpd);
}

int net_nat_attach(const struct net_options *o, enum net_mode mode, struct net_attachment *ret)
{
	struct net_prefix_list allow, block;
	struct net_expose expose;
	int r = parse_softnet_opts(o, &allow, &block, &expose);
	if (r < 0)
		return r;
	if ((r = need_privileges(mode)) < 0)
		return r;
	struct net_priv *p = priv_new(o, mode);
	if (!o->mac || dhcp_mac_parse(o->mac, p->rec.mac) < 0) {
		log_error("invalid VM MAC address '%s'", o->mac ? o->mac : "");
		priv_free(p);
		return -EINVAL;
	}
	if ((r = net_settings_load(&p->settings)) < 0) {
		priv_free(p);
		return r;
	}
	const struct net_settings *s = &p->settings;
	snprintf(p->rec.bridge, sizeof(p->rec.bridge), "%s", s->bridge);
	p->rec.shared_bridge = true;
	p->rec.softnet = mode != NET_MODE_NAT;
	p->rec.expose = expose;

	_cleanup_close_ int lock = net_state_lock(p->state_dir);
	if (lock < 0) {
		r = log_error_errno(lock, "cannot lock '%s'", p->state_dir);
		priv_free(p);
		return r;
	}
	cleanup_locked(p->state_dir, p->rec.pid, s->bridge);
	if ((r = shared_ensure(s)) < 0)
		goto fail_early;
	/* From here on the record lists what we made, so any failure (or a SIGKILL) is undone
	 * from it. */
	if ((r = save_record(p)) < 0 || (r = reserve_ip(p)) < 0 || (r = save_record(p)) < 0 ||
	    (r = start_tap(p, s->bridge)) < 0 ||
	    (r = install_softnet(p, &allow, &block, &expose)) < 0 || (r = start_dhcp(p)) < 0)
		goto fail;

	char gws[16], extra[64];
	net_ip_format(s->subnet.addr + 1, gws);
	snprintf(extra, sizeof(extra), " gateway=%s bridge=%s", gws, s->bridge);
	finish_attachment(p, ret, extra);
	if ((r = save_record(p)) < 0) {
		strvec_clear(&ret->qemu_args);
		ret->priv = NULL;
		goto fail;
	}
	return 0;
fail:
	dhcpd_stop(TAKE_PTR(p->dhcpd));
	if (p->tap_fd >= 0)
		close(TAKE_FD(p->tap_fd));
	undo_record(p->state_dir, &p->rec);
fail_early:
	cleanup_locked(p->state_dir, p->rec.pid, s->bridge);
	priv_free(p);
	return r;
}

int net_bridged_attach(const struct net_options *o, struct net_attachment *ret)
{
	int r = need_privileges(NET_MODE_BRIDGED);
	if (r < 0)
		return r;
	if (!o->bridge || !link_exists(o->bridge)) {
		/* Tart's message, listing what would have matched. */
		_cleanup_free_ char *list = link_list_bridges();
		log_error("no bridge interfaces matched \"%s\", available interfaces: [%s]",
			  o->bridge ? o->bridge : "", list);
		return -ENODEV;
	}
	if (!link_is_bridge(o->bridge)) {
		log_error(
		    "'%s' is not a bridge: --net-bridged attaches the VM to an existing Linux "
		    "bridge (for example one that enslaves your uplink: 'ip link add br0 type "
		    "bridge' and 'ip link set eth0 master br0')",
		    o->bridge);
		return -ENODEV;
	}
	struct net_priv *p = priv_new(o, NET_MODE_BRIDGED);
	if (!o->mac || dhcp_mac_parse(o->mac, p->rec.mac) < 0) {
		log_error("invalid VM MAC address '%s'", o->mac ? o->mac : "");
		priv_free(p);
		return -EINVAL;
	}
	snprintf(p->rec.bridge, sizeof(p->rec.bridge), "%s", o->bridge);
	_cleanup_close_ int lock = net_state_lock(p->state_dir);
	if (lock < 0) {
		r = log_error_errno(lock, "cannot lock '%s'", p->state_dir);
		priv_free(p);
		return r;
	}
	cleanup_locked(p->state_dir, p->rec.pid, NULL);
	if ((r = save_record(p)) < 0) {
		priv_free(p);
		return r;
	}
	if ((r = start_tap(p, o->bridge)) < 0) {
		if (p->tap_fd >= 0)
			close(TAKE_FD(p->tap_fd));
		undo_record(p->state_dir, &p->rec);
		priv_free(p);
		return r;
	}
	char extra[32];
	snprintf(extra, sizeof(extra), " bridge=%s", o->bridge);
	finish_attachment(p, ret, extra);
	(void)net_record_save(p->state_dir, &p->rec);
	return 0;
}

void net_tap_detach(struct net_attachment *a)
{
	struct net_priv *p = a->priv;
	if (!p)
		return;
	dhcpd_stop(TAKE_PTR(p->dhcpd));
	if (p->tap_fd >= 0)
		close(TAKE_FD(p->tap_fd));
	_cleanup_close_ int lock = net_state_lock(p->state_dir);
	if (lock < 0)
		log_warning_errno(lock, "cannot lock '%s': cleaning up anyway", p->state_dir);
	undo_record(p->state_dir, &p->rec);
	if (p->rec.shared_bridge)
		cleanup_locked(p->state_dir, p->rec.pid, p->rec.bridge);
	priv_free(p);
	a->priv = NULL;
}
