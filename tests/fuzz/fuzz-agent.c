// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the guest agent's request decoding: raw bytes into the agent's HTTP/2
 * server session (nghttp2), then our gRPC framing, headers and protobuf decoding and the Exec
 * and ResolveIP call logic. Commands are not run (the session's dry-run mode answers exit 0).
 * The first byte picks the shape: even = the client preface is prepended (so the frames
 * behind it are reached with every input), odd = the bytes as they are; the second byte picks
 * a chunk size for feeding, so messages are also split across reads. Whatever the session
 * wants to send is drained after each chunk, and the session is freed (leaks are findings).
 *
 * Inputs whose first byte has bit 1 set also go through the serial link's preface scanner
 * (agent_grpc_preface_*), chunked the same way, with its results checked.
 *
 * Build: tests/fuzz/build.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "agent/grpc.h"
#include "loop.h"
#include "session.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void drain(struct agent_session *s)
{
	const uint8_t *out;
	for (int i = 0; i < 64 && session_send(s, &out) > 0; i++)
		;
}

static void feed(struct agent_session *s, const uint8_t *p, size_t n, size_t chunk)
{
	while (n) {
		size_t k = n < chunk ? n : chunk;
		if (session_recv(s, p, k) < 0)
			break;
		drain(s);
		p += k;
		n -= k;
	}
}

static void scan(const uint8_t *p, size_t n, size_t chunk)
{
	static const uint8_t preface[] = NGHTTP2_CLIENT_MAGIC;
	struct agent_grpc_preface_scan sc;
	size_t end;

	agent_grpc_preface_reset(&sc);
	while (n) {
		size_t k = n < chunk ? n : chunk;
		if (agent_grpc_preface_find(&sc, p, k, &end)) {
			/* It ends inside this chunk, right after the preface's last byte. */
			if (end == 0 || end > k || p[end - 1] != preface[NGHTTP2_CLIENT_MAGIC_LEN - 1])
				__builtin_trap();
		}
		if (agent_grpc_preface_sync(&sc, p, k, &end) && (end == 0 || end > k))
			__builtin_trap();
		agent_grpc_preface_keep(&sc, p, k);
		p += k;
		n -= k;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct loop *l;
	static const struct session_config cfg = {.dry_run = true,
						  .first_message_timeout_ms = 1000};
	struct agent_session *s;
	size_t chunk;

	if (!l) {
		l = loop_new();
		log_set_level(LOG_ERR);
	}
	if (size < 2)
		return 0;
	chunk = data[1] ? (size_t)data[1] * 64 : size;
	if (data[0] & 2)
		scan(data + 2, size - 2, data[1] ? data[1] : size);
	if (session_new(l, &cfg, &s) < 0)
		return 0;
	if (!(data[0] & 1))
		feed(s, (const uint8_t *)NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN, 24);
	feed(s, data + 2, size - 2, chunk);
	session_free(s);
	return 0;
}
