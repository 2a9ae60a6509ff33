/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * DHCPv4 wire format (RFC 2131/2132), pure functions: no sockets, no logging, no allocation.
 *
 * Everything here reads bytes written by a guest, so every parser takes an explicit length,
 * checks each field before touching it and returns -EBADMSG for anything malformed, truncated
 * or oversized; nothing is trusted (option lengths, IHL, UDP length). Fuzzed by
 * tests/fuzz/fuzz-dhcp.c. IPv4 addresses are uint32_t in HOST byte order throughout.
 *
 * dhcp_server_decide() is the whole server policy for one VM: it answers only its own VM's
 * MAC, only ever offers that VM's one reserved address, and NAKs requests for anything else,
 * so a guest flooding requests cannot obtain another VM's address.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define DHCP_FRAME_MAX 1518 /* Ethernet frame without FCS, no jumbo frames for DHCP */
#define DHCP_MAX_DNS 4

enum dhcp_type {
	DHCP_NONE = 0, /* BOOTP without option 53: ignored */
	DHCP_DISCOVER = 1,
	DHCP_OFFER = 2,
	DHCP_REQUEST = 3,
	DHCP_DECLINE = 4,
	DHCP_ACK = 5,
	DHCP_NAK = 6,
	DHCP_RELEASE = 7,
	DHCP_INFORM = 8,
};

/* A parsed client message (BOOTREQUEST); only the fields the server needs. */
struct dhcp_msg {
	uint8_t op;
	uint32_t xid;
	uint16_t flags; /* bit 15 = broadcast */
	uint32_t ciaddr, yiaddr, giaddr;
	uint8_t chaddr[6];
	enum dhcp_type type;
	bool has_requested_ip, has_server_id;
	uint32_t requested_ip, server_id;
	char hostname[64]; /* option 12, NUL-terminated, non-printable bytes replaced by '?' */
	uint8_t client_id[64];
	size_t client_id_len; /* option 61, e.g. a DUID: we never key anything on it */
};

/* Parse a BOOTP/DHCP payload (UDP data). -EBADMSG when malformed. */
int dhcp_parse(const uint8_t *buf, size_t len, struct dhcp_msg *ret);

/* The Ethernet/IPv4/UDP envelope of a frame. */
struct dhcp_frame {
	uint8_t src_mac[6], dst_mac[6];
	uint32_t src_ip, dst_ip;
	uint16_t src_port, dst_port;
	const uint8_t *payload; /* points into the frame */
	size_t payload_len;
};

/*
 * Parse an Ethernet II frame carrying IPv4/UDP (no VLAN tags, no fragments). Verifies the IP
 * header checksum; the UDP checksum is not verified because a guest with checksum offload
 * may hand us a frame whose checksum the host kernel has not filled in yet. -EBADMSG when
 * malformed, -ENOMSG for a well-formed frame that is simply not IPv4/UDP.
 */
int dhcp_frame_parse(const uint8_t *frame, size_t len, struct dhcp_frame *ret);

/* A reply to build. */
struct dhcp_reply {
	enum dhcp_type type; /* OFFER, ACK or NAK */
	uint32_t xid;
	uint16_t flags;
	uint32_t ciaddr, yiaddr, server_ip, netmask, router;
	uint8_t chaddr[6];
	uint32_t dns[DHCP_MAX_DNS];
	size_t n_dns;
	uint32_t lease_secs; /* 0 = no lease options (INFORM's ACK, NAK) */
};

/* Build a BOOTREPLY payload; returns its length, or -ENOBUFS when cap is too small. */
int dhcp_build(const struct dhcp_reply *r, uint8_t *buf, size_t cap);

/*
 * Wrap a UDP payload into Ethernet/IPv4/UDP with valid checksums. Returns the frame length,
 * or -ENOBUFS / -EMSGSIZE.
 */
int dhcp_frame_build(const uint8_t src_mac[6], const uint8_t dst_mac[6], uint32_t src_ip,
		     uint32_t dst_ip, uint16_t src_port, uint16_t dst_port, const uint8_t *payload,
		     size_t payload_len, uint8_t *buf, size_t cap);

/* The one-VM server policy. */
struct dhcp_policy {
	uint8_t vm_mac[6], server_mac[6];
	uint32_t vm_ip, server_ip, netmask, router;
	uint32_t dns[DHCP_MAX_DNS];
	size_t n_dns;
	uint32_t lease_secs;
};

enum dhcp_action {
	DHCP_ACTION_IGNORE,
	DHCP_ACTION_REPLY,   /* send *ret_reply */
	DHCP_ACTION_RELEASE, /* the guest gave its lease back: nothing to send */
};

/*
 * Decide what to answer to msg, received in frame (which carried it from the VM's port).
 * Frames whose source MAC or chaddr is not the VM's are ignored.
 */
enum dhcp_action dhcp_server_decide(const struct dhcp_policy *p, const struct dhcp_frame *frame,
				    const struct dhcp_msg *msg, struct dhcp_reply *ret_reply);

/*
 * Everything the server does with one received frame, pure: parse, decide, build the reply
 * frame into out (cap >= DHCP_FRAME_MAX). Returns the action; for REPLY *ret_out_len and
 * *ret_type (OFFER/ACK/NAK) are set. *ret_msg (may be NULL) receives the parsed message for
 * logging and lease bookkeeping.
 */
enum dhcp_action dhcp_server_process(const struct dhcp_policy *p, const uint8_t *frame, size_t len,
				     uint8_t *out, size_t cap, size_t *ret_out_len,
				     enum dhcp_type *ret_type, struct dhcp_msg *ret_msg);

/* Text helpers (pure). */
int dhcp_mac_parse(const char *s, uint8_t ret[6]);
void dhcp_mac_format(const uint8_t mac[6], char ret[18]);
const char *dhcp_type_to_string(enum dhcp_type t);
