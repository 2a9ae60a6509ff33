// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for everything our DHCP server does with bytes written by a guest: the
 * Ethernet/IPv4/UDP envelope, the BOOTP/DHCP parser (options, overload), the one-VM policy and
 * the reply builder. Two shapes per input: the raw bytes as a frame, and the bytes as a DHCP
 * payload wrapped into a valid frame from the VM (so the parser behind the envelope is reached
 * with every input, not only with the rare ones that carry valid checksums).
 *
 * Build: tests/fuzz/build.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "net/dhcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct dhcp_policy pol = {
	    .vm_mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
	    .server_mac = {0x02, 0, 0, 0, 0, 1},
	    .vm_ip = 0xc0a84005,
	    .server_ip = 0xc0a84001,
	    .netmask = 0xffffff00,
	    .router = 0xc0a84001,
	    .dns = {0x01010101},
	    .n_dns = 1,
	    .lease_secs = 600,
	};
	uint8_t out[DHCP_FRAME_MAX];
	size_t out_len = 0;
	struct dhcp_msg msg;
	enum dhcp_type type;

	(void)dhcp_server_process(&pol, data, size, out, sizeof(out), &out_len, &type, &msg);

	uint8_t frame[DHCP_FRAME_MAX];
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	int n = dhcp_frame_build(pol.vm_mac, bcast, 0, 0xffffffffu, DHCP_CLIENT_PORT,
				 DHCP_SERVER_PORT, data, size, frame, sizeof(frame));
	if (n > 0) {
		/* Make chaddr match often enough for the policy to be exercised. */
		if (size >= 34)
			memcpy(frame + 14 + 20 + 8 + 28, pol.vm_mac, 6);
		enum dhcp_action a = dhcp_server_process(&pol, frame, (size_t)n, out, sizeof(out),
							 &out_len, &type, &msg);
		if (a == DHCP_ACTION_REPLY) {
			/* Our own replies must parse as frames. */
			struct dhcp_frame fr;
			if (dhcp_frame_parse(out, out_len, &fr) != 0)
				__builtin_trap();
		}
	}
	return 0;
}
