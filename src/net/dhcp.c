// SPDX-License-Identifier: Apache-2.0
#include "net/dhcp.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define BOOTP_FIXED 236 /* op..file, before the magic cookie */
#define DHCP_MAGIC 0x63825363u
#define DHCP_PAYLOAD_MAX (DHCP_FRAME_MAX - 14 - 20 - 8)

enum {
	OPT_PAD = 0,
	OPT_NETMASK = 1,
	OPT_ROUTER = 3,
	OPT_DNS = 6,
	OPT_HOSTNAME = 12,
	OPT_REQUESTED_IP = 50,
	OPT_LEASE_TIME = 51,
	OPT_OVERLOAD = 52,
	OPT_MSG_TYPE = 53,
	OPT_SERVER_ID = 54,
	OPT_RENEWAL = 58,
	OPT_REBINDING = 59,
	OPT_CLIENT_ID = 61,
	OPT_END = 255,
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Walk one option area; the same code path for options, file and sname (overload). */
static int parse_options(const uint8_t *p, size_t len, struct dhcp_msg *m, uint8_t *overload)
{
	size_t i = 0;
	while (i < len) {
		uint8_t code = p[i++];
		if (code == OPT_PAD)
			continue;
		if (code == OPT_END)
			return 0;
		if (i >= len)
			return -EBADMSG;
		uint8_t olen = p[i++];
		if (olen > len - i)
			return -EBADMSG;
		const uint8_t *v = p + i;
		i += olen;
		switch (code) {
		case OPT_MSG_TYPE:
			if (olen != 1 || v[0] < DHCP_DISCOVER || v[0] > DHCP_INFORM)
				return -EBADMSG;
			m->type = (enum dhcp_type)v[0];
			break;
		case OPT_REQUESTED_IP:
			if (olen != 4)
				return -EBADMSG;
			m->requested_ip = get32(v);
			m->has_requested_ip = true;
			break;
		case OPT_SERVER_ID:
			if (olen != 4)
				return -EBADMSG;
			m->server_id = get32(v);
			m->has_server_id = true;
			break;
		case OPT_HOSTNAME: {
			size_t n = olen < sizeof(m->hostname) - 1 ? olen : sizeof(m->hostname) - 1;
			for (size_t k = 0; k < n; k++)
				m->hostname[k] = (v[k] >= 0x20 && v[k] < 0x7f) ? (char)v[k] : '?';
			m->hostname[n] = 0;
			break;
		}
		case OPT_CLIENT_ID:
			m->client_id_len =
			    olen < sizeof(m->client_id) ? olen : sizeof(m->client_id);
			memcpy(m->client_id, v, m->client_id_len);
			break;
		case OPT_OVERLOAD:
			if (olen != 1 || !overload)
				return -EBADMSG;
			*overload = v[0];
			break;
		default:
			break; /* parameter lists, vendor classes...: not needed by this server */
		}
	}
	return 0; /* a missing END is tolerated, as most servers do */
}

int dhcp_parse(const uint8_t *buf, size_t len, struct dhcp_msg *ret)
{
	if (!buf || len < BOOTP_FIXED + 4 || len > DHCP_PAYLOAD_MAX)
		return -EBADMSG;
	struct dhcp_msg m = {0};
	m.op = buf[0];
	if (m.op != 1 || buf[1] != 1 || buf[2] != 6) /* BOOTREQUEST, Ethernet, 6-byte MAC */
		return -EBADMSG;
	m.xid = get32(buf + 4);
	m.flags = get16(buf + 10);
	m.ciaddr = get32(buf + 12);
	m.yiaddr = get32(buf + 16);
	m.giaddr = get32(buf + 24);
	memcpy(m.chaddr, buf + 28, 6);
	if (get32(buf + BOOTP_FIXED) != DHCP_MAGIC)
		return -EBADMSG;
	uint8_t overload = 0;
	int r = parse_options(buf + BOOTP_FIXED + 4, len - BOOTP_FIXED - 4, &m, &overload);
	if (r < 0)
		return r;
	if (overload & 1) { /* file field (128 bytes at 108) holds options */
		r = parse_options(buf + 108, 128, &m, NULL);
		if (r < 0)
			return r;
	}
	if (overload & 2) { /* sname field (64 bytes at 44) */
		r = parse_options(buf + 44, 64, &m, NULL);
		if (r < 0)
			return r;
	}
	*ret = m;
	return 0;
}

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

int dhcp_frame_parse(const uint8_t *f, size_t len, struct dhcp_frame *ret)
{
	if (!f || len < 14 || len > DHCP_FRAME_MAX)
		return -EBADMSG;
	if (get16(f + 12) != 0x0800)
		return -ENOMSG;
	const uint8_t *ip = f + 14;
	size_t iplen = len - 14;
	if (iplen < 20 || (ip[0] >> 4) != 4)
		return -EBADMSG;
	size_t ihl = (size_t)(ip[0] & 0xf) * 4;
	size_t total = get16(ip + 2);
	if (ihl < 20 || ihl > iplen || total < ihl || total > iplen)
		return -EBADMSG;
	if (csum_fold(csum_add(0, ip, ihl)) != 0)
		return -EBADMSG;
	if ((get16(ip + 6) & 0x3fff) != 0) /* MF flag or offset: a fragment */
		return -ENOMSG;
	if (ip[9] != 17)
		return -ENOMSG;
	const uint8_t *udp = ip + ihl;
	size_t udplen = total - ihl;
	if (udplen < 8)
		return -EBADMSG;
	size_t ulen = get16(udp + 4);
	if (ulen < 8 || ulen > udplen)
		return -EBADMSG;
	struct dhcp_frame fr;
	memcpy(fr.dst_mac, f, 6);
	memcpy(fr.src_mac, f + 6, 6);
	fr.src_ip = get32(ip + 12);
	fr.dst_ip = get32(ip + 16);
	fr.src_port = get16(udp);
	fr.dst_port = get16(udp + 2);
	fr.payload = udp + 8;
	fr.payload_len = ulen - 8;
	*ret = fr;
	return 0;
}

struct opt_writer {
	uint8_t *p;
	size_t len, cap;
	bool overflow;
};

static void opt_put(struct opt_writer *w, uint8_t code, const void *data, size_t n)
{
	if (n > 255 || w->len + 2 + n > w->cap) {
		w->overflow = true;
		return;
	}
	w->p[w->len++] = code;
	w->p[w->len++] = (uint8_t)n;
	memcpy(w->p + w->len, data, n);
	w->len += n;
}

static void opt_put32(struct opt_writer *w, uint8_t code, uint32_t v)
{
	uint8_t b[4];
	put32(b, v);
	opt_put(w, code, b, 4);
}

int dhcp_build(const struct dhcp_reply *r, uint8_t *buf, size_t cap)
{
	if (cap < BOOTP_FIXED + 4 + 1)
		return -ENOBUFS;
	memset(buf, 0, BOOTP_FIXED);
	buf[0] = 2; /* BOOTREPLY */
	buf[1] = 1;
	buf[2] = 6;
	put32(buf + 4, r->xid);
	put16(buf + 10, r->flags);
	if (r->type != DHCP_NAK) {
		put32(buf + 12, r->ciaddr);
		put32(buf + 16, r->yiaddr);
	}
	memcpy(buf + 28, r->chaddr, 6);
	put32(buf + BOOTP_FIXED, DHCP_MAGIC);
	struct opt_writer w = {.p = buf + BOOTP_FIXED + 4, .cap = cap - BOOTP_FIXED - 4 - 1};
	uint8_t t = (uint8_t)r->type;
	opt_put(&w, OPT_MSG_TYPE, &t, 1);
	opt_put32(&w, OPT_SERVER_ID, r->server_ip);
	if (r->type != DHCP_NAK) {
		if (r->lease_secs) {
			opt_put32(&w, OPT_LEASE_TIME, r->lease_secs);
			opt_put32(&w, OPT_RENEWAL, r->lease_secs / 2);
			opt_put32(&w, OPT_REBINDING, r->lease_secs / 8 * 7);
		}
		opt_put32(&w, OPT_NETMASK, r->netmask);
		if (r->router)
			opt_put32(&w, OPT_ROUTER, r->router);
		if (r->n_dns) {
			uint8_t d[4 * DHCP_MAX_DNS];
			size_t n = r->n_dns < DHCP_MAX_DNS ? r->n_dns : DHCP_MAX_DNS;
			for (size_t i = 0; i < n; i++)
				put32(d + 4 * i, r->dns[i]);
			opt_put(&w, OPT_DNS, d, 4 * n);
		}
	}
	if (w.overflow)
		return -ENOBUFS;
	w.p[w.len++] = OPT_END;
	size_t len = BOOTP_FIXED + 4 + w.len;
	/* Pad to the 300-byte BOOTP minimum some old clients still insist on. */
	if (len < 300 && cap >= 300) {
		memset(buf + len, 0, 300 - len);
		len = 300;
	}
	return (int)len;
}

int dhcp_frame_build(const uint8_t src_mac[6], const uint8_t dst_mac[6], uint32_t src_ip,
		     uint32_t dst_ip, uint16_t src_port, uint16_t dst_port, const uint8_t *payload,
		     size_t payload_len, uint8_t *buf, size_t cap)
{
	if (payload_len > DHCP_PAYLOAD_MAX)
		return -EMSGSIZE;
	size_t len = 14 + 20 + 8 + payload_len;
	if (cap < len)
		return -ENOBUFS;
	memcpy(buf, dst_mac, 6);
	memcpy(buf + 6, src_mac, 6);
	put16(buf + 12, 0x0800);
	uint8_t *ip = buf + 14;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	ip[1] = 0x10; /* low delay, as other DHCP servers mark it */
	put16(ip + 2, (uint16_t)(20 + 8 + payload_len));
	ip[8] = 64;
	ip[9] = 17;
	put32(ip + 12, src_ip);
	put32(ip + 16, dst_ip);
	put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
	uint8_t *udp = ip + 20;
	put16(udp, src_port);
	put16(udp + 2, dst_port);
	put16(udp + 4, (uint16_t)(8 + payload_len));
	put16(udp + 6, 0);
	memcpy(udp + 8, payload, payload_len);
	/* The UDP checksum covers a pseudo-header: addresses, protocol and UDP length. */
	uint32_t sum = csum_add(0, ip + 12, 8);
	sum += 17 + 8 + (uint32_t)payload_len;
	sum = csum_add(sum, udp, 8 + payload_len);
	uint16_t c = csum_fold(sum);
	put16(udp + 6, c ? c : 0xffff);
	return (int)len;
}

static const uint8_t mac_broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

enum dhcp_action dhcp_server_decide(const struct dhcp_policy *p, const struct dhcp_frame *frame,
				    const struct dhcp_msg *msg, struct dhcp_reply *ret_reply)
{
	if (frame->dst_port != DHCP_SERVER_PORT || frame->src_port != DHCP_CLIENT_PORT)
		return DHCP_ACTION_IGNORE;
	if (memcmp(frame->src_mac, p->vm_mac, 6) != 0 || memcmp(msg->chaddr, p->vm_mac, 6) != 0)
		return DHCP_ACTION_IGNORE;
	if (msg->giaddr != 0) /* relayed: there is no relay between a VM and its tap */
		return DHCP_ACTION_IGNORE;

	struct dhcp_reply r = {
	    .xid = msg->xid,
	    .flags = msg->flags,
	    .server_ip = p->server_ip,
	    .netmask = p->netmask,
	    .router = p->router,
	    .n_dns = p->n_dns < DHCP_MAX_DNS ? p->n_dns : DHCP_MAX_DNS,
	    .lease_secs = p->lease_secs,
	};
	memcpy(r.chaddr, msg->chaddr, 6);
	memcpy(r.dns, p->dns, sizeof(r.dns));

	switch (msg->type) {
	case DHCP_DISCOVER:
		r.type = DHCP_OFFER;
		r.yiaddr = p->vm_ip;
		break;
	case DHCP_REQUEST: {
		if (msg->has_server_id && msg->server_id != p->server_ip)
			return DHCP_ACTION_IGNORE; /* the client chose another server */
		/* SELECTING/INIT-REBOOT carry option 50; RENEWING/REBINDING carry ciaddr. */
		uint32_t want = msg->has_requested_ip ? msg->requested_ip : msg->ciaddr;
		if (want != p->vm_ip) {
			r.type = DHCP_NAK;
			r.lease_secs = 0;
			r.flags |= 0x8000;
			break;
		}
		r.type = DHCP_ACK;
		r.yiaddr = p->vm_ip;
		r.ciaddr = msg->ciaddr;
		break;
	}
	case DHCP_INFORM:
		if (msg->ciaddr != p->vm_ip)
			return DHCP_ACTION_IGNORE;
		r.type = DHCP_ACK;
		r.ciaddr = msg->ciaddr;
		r.lease_secs = 0;
		break;
	case DHCP_RELEASE:
		if (msg->ciaddr != p->vm_ip)
			return DHCP_ACTION_IGNORE;
		return DHCP_ACTION_RELEASE;
	default: /* DECLINE, server-side types, BOOTP */
		return DHCP_ACTION_IGNORE;
	}
	*ret_reply = r;
	return DHCP_ACTION_REPLY;
}

enum dhcp_action dhcp_server_process(const struct dhcp_policy *p, const uint8_t *frame, size_t len,
				     uint8_t *out, size_t cap, size_t *ret_out_len,
				     enum dhcp_type *ret_type, struct dhcp_msg *ret_msg)
{
	struct dhcp_frame fr;
	struct dhcp_msg msg;
	struct dhcp_reply reply;
	if (dhcp_frame_parse(frame, len, &fr) < 0)
		return DHCP_ACTION_IGNORE;
	if (dhcp_parse(fr.payload, fr.payload_len, &msg) < 0)
		return DHCP_ACTION_IGNORE;
	enum dhcp_action a = dhcp_server_decide(p, &fr, &msg, &reply);
	if (ret_msg)
		*ret_msg = msg;
	if (a != DHCP_ACTION_REPLY)
		return a;

	uint8_t payload[DHCP_PAYLOAD_MAX];
	int n = dhcp_build(&reply, payload, sizeof(payload));
	if (n < 0)
		return DHCP_ACTION_IGNORE;
	/* RFC 2131 4.1: unicast to ciaddr when set; broadcast for NAKs, for clients that ask for
	 * it, and before the client has an address. We write straight into the VM's port, so
	 * the Ethernet destination is the VM either way. */
	uint32_t dst_ip = 0xffffffffu;
	const uint8_t *dst_mac = mac_broadcast;
	if (reply.type != DHCP_NAK && msg.ciaddr) {
		dst_ip = msg.ciaddr;
		dst_mac = p->vm_mac;
	} else if (reply.type != DHCP_NAK && !(msg.flags & 0x8000)) {
		dst_ip = reply.yiaddr;
		dst_mac = p->vm_mac;
	}
	int fl = dhcp_frame_build(p->server_mac, dst_mac, p->server_ip, dst_ip, DHCP_SERVER_PORT,
				  DHCP_CLIENT_PORT, payload, (size_t)n, out, cap);
	if (fl < 0)
		return DHCP_ACTION_IGNORE;
	*ret_out_len = (size_t)fl;
	*ret_type = reply.type;
	return DHCP_ACTION_REPLY;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int dhcp_mac_parse(const char *s, uint8_t ret[6])
{
	uint8_t m[6];
	if (!s || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return -EINVAL;
		m[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(ret, m, 6);
	return 0;
}

void dhcp_mac_format(const uint8_t mac[6], char ret[18])
{
	snprintf(ret, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

const char *dhcp_type_to_string(enum dhcp_type t)
{
	static const char *const names[] = {"BOOTP", "DISCOVER", "OFFER",   "REQUEST", "DECLINE",
					    "ACK",   "NAK",	 "RELEASE", "INFORM"};
	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "UNKNOWN";
}
