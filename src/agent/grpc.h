/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * gRPC over HTTP/2 for Tart's guest agent protocol (src/agent/agent.proto), shared by the
 * guest agent (the server, guest/) and the host (tart run, tart exec, tart ip: the client).
 * Wire-compatible with cirruslabs/tart and tart-guest-agent (Go grpc) and with grpcio.
 *
 * Service `Agent`, no proto package, so the method paths are "/Agent/Exec" (bidirectional
 * stream of ExecRequest / ExecResponse) and "/Agent/ResolveIP" (unary). HTTP/2 cleartext with
 * prior knowledge (h2c), content-type "application/grpc", no compression.
 *
 * Pieces (all pure: no sockets, no logging; nghttp2 objects are the caller's):
 *   - framing: the 5-byte gRPC message prefix (flag byte, 32-bit big-endian length);
 *     agent_grpc_frame_append(), agent_grpc_pack() and the agent_grpc_pack_*() builders.
 *   - struct agent_grpc_reader: reassembly buffer fed raw DATA chunks, yields whole messages.
 *   - agent_grpc_unpack_*(): protobuf decoding with validation, -EBADMSG on anything malformed.
 *   - struct agent_grpc_nv: request, response, trailer and trailers-only header lists.
 *   - struct agent_grpc_meta: collects received headers/trailers (:status, content-type,
 *     grpc-status, grpc-message, :path ...).
 *   - struct agent_grpc_outq: a per-stream outbound byte queue that is an nghttp2 data source
 *     (agent_grpc_outq_read), with END_STREAM or trailers after the last byte.
 *   - agent_grpc_option_new() / agent_grpc_submit_settings(): the session settings both sides
 *     use (manual flow control, header caps).
 *
 * Limits. Every length read from the peer is capped:
 *   - one gRPC message: AGENT_GRPC_MAX_MESSAGE (4 MiB, grpc's default receive limit). A larger
 *     declared length is refused (-EMSGSIZE) as soon as its 5-byte prefix arrives, before any
 *     allocation; a set compressed flag is refused (-EPROTO): we never negotiate compression.
 *   - a header list: AGENT_GRPC_MAX_HEADER_LIST (16 KiB), grpc-message kept to 255 bytes.
 *   - stream receive window AGENT_GRPC_STREAM_WINDOW (512 KiB), at most
 *     AGENT_GRPC_MAX_STREAMS (64) concurrent streams per connection.
 *
 * Flow control ("bounded memory in both directions"). Sessions are created with
 * agent_grpc_option_new(), which turns nghttp2's automatic WINDOW_UPDATE off: the connection
 * window is given back at once for every DATA byte (nghttp2_session_consume_connection), so
 * one slow stream never blocks the others, while a stream's window is given back
 * (nghttp2_session_consume_stream) only once its bytes have been delivered (written to the
 * child's stdin by the agent, to the terminal by tart exec). Outbound, a producer stops
 * reading its source while agent_grpc_outq_pending() is above AGENT_GRPC_OUTQ_HIGH: nghttp2
 * only pulls from the queue while the peer's window is open.
 *
 * Exec semantics (tart-facts section 9, tart-guest-agent internal/rpc/exec.go): the first
 * request carries the command; `standard_input` with EMPTY data means EOF (on a tty the agent
 * writes ^D instead of closing); `terminal_resize` resizes the pty; responses are
 * standard_output / standard_error chunks and finally one `exit`, then trailers with
 * grpc-status 0. The exit code is the command's exit status; a command killed by a signal
 * reports -1 (what Go's ProcessState.ExitCode() gives tart-guest-agent). Errors before the
 * command runs (unknown program, malformed request) end the call with a non-zero grpc-status
 * and grpc-message instead of `exit`.
 *
 * Serial transport and its reset convention (virtio-serial port "org.tart.agent.0", guest
 * path /dev/virtio-ports/org.tart.agent.0; see docs/agent.md). The port is ONE byte stream
 * carrying ONE HTTP/2 connection at a time: the host (tart run) is the HTTP/2 client and
 * multiplexes every control.sock client as streams of it.
 *   1. A session begins when the host connects to the port's chardev and sends the client
 *      connection preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SETTINGS). The agent discards
 *      every byte before the preface (stale bytes from an earlier session).
 *   2. A session ends when the host side disconnects: QEMU then marks the port closed, the
 *      agent sees POLLHUP / read() == 0 on the port, drops the session, kills the process
 *      group of every command the session started, discards unsent output, and waits for the
 *      host to connect again (step 1). QEMU discards guest output queued for a closed port, so
 *      a new host connection never sees the old session's frames - unless the host reconnects
 *      before the agent noticed the disconnect (a race of a few ms).
 *   3. A session also ends on any HTTP/2 protocol error and on GOAWAY from the host (an
 *      in-band reset): the agent sends its GOAWAY when it can, kills that session's commands
 *      and looks for a new preface. When the bytes that broke a session hold a new preface
 *      (a host that reconnected before the agent saw it leave), the new session starts from
 *      there at once (agent_grpc_preface_find).
 *   4. So the host, after (re)connecting, sends its preface and a PING; if it receives no
 *      SETTINGS and PING ACK within its timeout, or any connection error, it closes its
 *      chardev connection and connects again, which is step 2 for the agent. The agent ACKs
 *      PINGs at once; it never sends its own PINGs.
 * On vsock and on a Unix socket every accepted connection is its own session and closing it
 * is the reset.
 *
 * Ownership: functions taking a struct strbuf append to it (the caller owns it); unpacked
 * messages are owned by the caller and freed with the generated *__free_unpacked(m, NULL).
 * Functions returning int return >= 0 on success and -errno on failure.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <nghttp2/nghttp2.h>
#include <protobuf-c/protobuf-c.h>

#include "util/strbuf.h"

/* The generated types (agent/agent.pb-c.h, built from agent.proto). */
struct ExecRequest;
struct ExecResponse;
struct ResolveIPRequest;
struct ResolveIPResponse;

#define AGENT_GRPC_PATH_EXEC "/Agent/Exec"
#define AGENT_GRPC_PATH_RESOLVE_IP "/Agent/ResolveIP"
#define AGENT_GRPC_CONTENT_TYPE "application/grpc"
#define AGENT_VSOCK_PORT 8080
#define AGENT_SERIAL_PORT_NAME "org.tart.agent.0"
#define AGENT_SERIAL_PORT_PATH "/dev/virtio-ports/org.tart.agent.0"

#define AGENT_GRPC_HEADER_LEN 5
#define AGENT_GRPC_MAX_MESSAGE (4u << 20)
#define AGENT_GRPC_MAX_HEADER_LIST (16u << 10)
#define AGENT_GRPC_MAX_STREAMS 64u
#define AGENT_GRPC_STREAM_WINDOW (512u << 10)
#define AGENT_GRPC_CONN_WINDOW (4u << 20)
/* Stop producing into an outq above this many pending bytes. */
#define AGENT_GRPC_OUTQ_HIGH (256u << 10)
/* Largest stdin/stdout/stderr chunk either side puts in one message. */
#define AGENT_GRPC_CHUNK (32u << 10)
#define AGENT_GRPC_MAX_ARGS 4096u
/* Exit code reported for a command killed by a signal (as tart-guest-agent's Go does). */
#define AGENT_EXIT_SIGNALED (-1)

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum agent_grpc_code {
	AGENT_GRPC_OK = 0,
	AGENT_GRPC_CANCELLED = 1,
	AGENT_GRPC_UNKNOWN = 2,
	AGENT_GRPC_INVALID_ARGUMENT = 3,
	AGENT_GRPC_DEADLINE_EXCEEDED = 4,
	AGENT_GRPC_NOT_FOUND = 5,
	AGENT_GRPC_ALREADY_EXISTS = 6,
	AGENT_GRPC_PERMISSION_DENIED = 7,
	AGENT_GRPC_RESOURCE_EXHAUSTED = 8,
	AGENT_GRPC_FAILED_PRECONDITION = 9,
	AGENT_GRPC_ABORTED = 10,
	AGENT_GRPC_OUT_OF_RANGE = 11,
	AGENT_GRPC_UNIMPLEMENTED = 12,
	AGENT_GRPC_INTERNAL = 13,
	AGENT_GRPC_UNAVAILABLE = 14,
	AGENT_GRPC_DATA_LOSS = 15,
	AGENT_GRPC_UNAUTHENTICATED = 16,
};

/* The canonical upper-case name of a code ("NOT_FOUND"), "UNKNOWN" for anything else. */
const char *agent_grpc_code_name(int code);

/* ---- framing ---- */

/* Append the 5-byte prefix for an uncompressed message of len bytes and the message itself.
 * -EMSGSIZE when len > AGENT_GRPC_MAX_MESSAGE; the buffer's own cap gives -EFBIG. */
int agent_grpc_frame_append(struct strbuf *out, const void *msg, size_t len);
/* Serialize a protobuf-c message and append it framed. */
int agent_grpc_pack(struct strbuf *out, const ProtobufCMessage *msg);

/* Builders: each appends one framed message. Data longer than AGENT_GRPC_MAX_MESSAGE - 16 is
 * refused with -EMSGSIZE (callers chunk by AGENT_GRPC_CHUNK). */
int agent_grpc_pack_command(struct strbuf *out, const char *name, const char *const *args,
			    size_t nargs, bool interactive, bool tty, uint32_t rows, uint32_t cols);
/* Empty data (len 0) is the EOF marker. */
int agent_grpc_pack_stdin(struct strbuf *out, const void *data, size_t len);
int agent_grpc_pack_resize(struct strbuf *out, uint32_t rows, uint32_t cols);
/* fd 1 = standard_output, 2 = standard_error (anything else: -EINVAL). */
int agent_grpc_pack_output(struct strbuf *out, int fd, const void *data, size_t len);
int agent_grpc_pack_exit(struct strbuf *out, int32_t code);
int agent_grpc_pack_resolve_ip_request(struct strbuf *out);
int agent_grpc_pack_resolve_ip_response(struct strbuf *out, const char *ip);

/* ---- reassembly ---- */

/*
 * Fed the bytes of a stream's DATA frames in order, yields whole messages. Usage:
 *     agent_grpc_reader_feed(r, chunk, n);
 *     while ((k = agent_grpc_reader_next(r, &msg, &len)) > 0) handle(msg, len);
 *     if (k < 0) fail the stream
 * Memory: between feeds (once next() returned 0) the buffer holds at most one incomplete
 * message, so at most AGENT_GRPC_HEADER_LEN + max_message + the next chunk.
 */
struct agent_grpc_reader {
	uint8_t *buf;
	size_t len;   /* valid bytes in buf */
	size_t pos;   /* first byte not yet returned by next() */
	size_t alloc; /* allocated size of buf */
	uint32_t max; /* message size cap */
	int error;    /* sticky: once a prefix was refused, every call returns it */
};

/* max_message 0 means AGENT_GRPC_MAX_MESSAGE. */
void agent_grpc_reader_init(struct agent_grpc_reader *r, uint32_t max_message);
void agent_grpc_reader_release(struct agent_grpc_reader *r);
/* Append a chunk. Returns -EPROTO (compressed flag) or -EMSGSIZE (declared length above the
 * cap) as soon as the offending prefix is complete, without buffering its payload. */
int agent_grpc_reader_feed(struct agent_grpc_reader *r, const void *data, size_t len);
/* 1 and the next whole message (valid until the next feed/next/release call, may have length
 * 0), 0 when more bytes are needed, -EPROTO/-EMSGSIZE as for feed. */
int agent_grpc_reader_next(struct agent_grpc_reader *r, const uint8_t **ret_msg, size_t *ret_len);
/* Bytes buffered that do not yet form a whole message (0 at a message boundary): a stream
 * that ends with this > 0 ended mid-message. */
size_t agent_grpc_reader_partial(const struct agent_grpc_reader *r);

/* ---- protobuf decoding ---- */

/* Each decodes one message body (without the prefix) and validates what protobuf-c cannot:
 * a command needs a non-empty name and at most AGENT_GRPC_MAX_ARGS arguments. A message
 * whose oneof is unset decodes (proto3 allows it; receivers ignore it, as Go's grpc does).
 * -EBADMSG otherwise. The result is the caller's: free it with
 * exec_request__free_unpacked(*ret, NULL) and friends. */
int agent_grpc_unpack_exec_request(const uint8_t *msg, size_t len, struct ExecRequest **ret);
int agent_grpc_unpack_exec_response(const uint8_t *msg, size_t len, struct ExecResponse **ret);
int agent_grpc_unpack_resolve_ip_request(const uint8_t *msg, size_t len,
					 struct ResolveIPRequest **ret);
int agent_grpc_unpack_resolve_ip_response(const uint8_t *msg, size_t len,
					  struct ResolveIPResponse **ret);

/* ---- headers ---- */

/* A header list ready for nghttp2_submit_request/response/headers/trailer (nghttp2 copies
 * names and values on submit, so the struct may be released right after). */
struct agent_grpc_nv {
	nghttp2_nv nv[8];
	size_t n;
	char code[16];
	char *message; /* owned: percent-encoded grpc-message */
};

/* :method POST, :scheme http, :path, :authority (default "localhost"), content-type,
 * te: trailers, user-agent. */
void agent_grpc_nv_request(struct agent_grpc_nv *h, const char *path, const char *authority);
/* :status 200, content-type application/grpc. */
void agent_grpc_nv_response(struct agent_grpc_nv *h);
/* grpc-status and, when message is non-empty, grpc-message (percent-encoded). */
void agent_grpc_nv_trailers(struct agent_grpc_nv *h, int code, const char *message);
/* One HEADERS frame (send with END_STREAM) that is both response headers and trailers:
 * gRPC's "Trailers-Only" form for a call that fails before any message. */
void agent_grpc_nv_trailers_only(struct agent_grpc_nv *h, int code, const char *message);
void agent_grpc_nv_release(struct agent_grpc_nv *h);

/* Percent-encode grpc-message (every byte outside 0x20..0x7e and '%'), and decode it back
 * (invalid escapes are kept verbatim, as the spec asks). */
int agent_grpc_percent_encode(struct strbuf *out, const char *s);
int agent_grpc_percent_decode(struct strbuf *out, const char *s, size_t len);

/* What a side learns from the headers and trailers it receives. */
struct agent_grpc_meta {
	int http_status;	/* :status, 0 when absent */
	bool content_type_ok;	/* content-type is application/grpc[+proto][;...] */
	bool compressed;	/* grpc-encoding other than identity (we cannot decode) */
	int grpc_status;	/* -1 until grpc-status arrived */
	char grpc_message[256]; /* decoded, truncated */
	char method[8];		/* :method */
	char path[64];		/* :path, truncated (an unknown path is an error anyway) */
};

void agent_grpc_meta_init(struct agent_grpc_meta *m);
/* Record one header; unknown ones are ignored. -EBADMSG for a malformed :status or
 * grpc-status. */
int agent_grpc_meta_add(struct agent_grpc_meta *m, const uint8_t *name, size_t namelen,
			const uint8_t *value, size_t valuelen);

/* ---- outbound queue (an nghttp2 data source) ---- */

struct agent_grpc_outq {
	struct strbuf buf;
	size_t pos;    /* first byte not yet handed to nghttp2 */
	bool finished; /* no bytes will be added after what is queued */
	bool deferred; /* the read callback returned NGHTTP2_ERR_DEFERRED */
	bool has_trailers;
	struct agent_grpc_nv trailers;
};

void agent_grpc_outq_init(struct agent_grpc_outq *q);
void agent_grpc_outq_release(struct agent_grpc_outq *q);
/* Append raw (already framed) bytes; -EPIPE after finish. */
int agent_grpc_outq_add(struct agent_grpc_outq *q, const void *data, size_t len);
/* Bytes queued and not yet pulled by nghttp2. */
size_t agent_grpc_outq_pending(const struct agent_grpc_outq *q);
/* No more data: after the queued bytes send trailers (code, message) when with_trailers, or
 * plain END_STREAM (a client half-closing its request side). */
void agent_grpc_outq_finish(struct agent_grpc_outq *q, bool with_trailers, int code,
			    const char *message);
/*
 * nghttp2_data_source_read_callback. Give nghttp2 a data provider whose source.ptr is the
 * outq. Copies queued bytes; NGHTTP2_ERR_DEFERRED when empty and not finished; at the end
 * submits the trailers (NO_END_STREAM) or sets END_STREAM.
 */
ssize_t agent_grpc_outq_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
			     size_t length, uint32_t *data_flags, nghttp2_data_source *source,
			     void *user_data);
/* After adding or finishing: resume a deferred data source. Returns 0 or an nghttp2 error. */
int agent_grpc_outq_kick(struct agent_grpc_outq *q, nghttp2_session *session, int32_t stream_id);

/* ---- the serial convention's sync point ---- */

/*
 * Finding the HTTP/2 client connection preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") in a byte
 * stream that carries one connection after another (the serial port). SYNC: feed bytes to
 * agent_grpc_preface_sync() until it reports the end of a preface; everything before was
 * stale. ACTIVE: agent_grpc_preface_keep() what the session was fed; when the session breaks
 * on a chunk, agent_grpc_preface_find() says whether a new preface (a host that reconnected
 * unnoticed) is in it, also straddling the previous chunk. Plain state, no allocation.
 */
struct agent_grpc_preface_scan {
	size_t matched;	  /* SYNC: bytes of the preface seen so far */
	uint8_t tail[23]; /* ACTIVE: the last bytes fed to the session (preface length - 1) */
	size_t ntail;
};

void agent_grpc_preface_reset(struct agent_grpc_preface_scan *p);
/* 1 and *ret_end = the offset just past the preface in data once it is complete (a preface
 * that began in earlier calls counts), 0 when data ran out first. */
int agent_grpc_preface_sync(struct agent_grpc_preface_scan *p, const uint8_t *data, size_t len,
			    size_t *ret_end);
void agent_grpc_preface_keep(struct agent_grpc_preface_scan *p, const uint8_t *data, size_t len);
/* 1 and *ret_end = the offset just past the first whole preface in tail + data (it ends in
 * data), 0 when there is none. */
int agent_grpc_preface_find(const struct agent_grpc_preface_scan *p, const uint8_t *data,
			    size_t len, size_t *ret_end);

/* ---- session setup ---- */

/* An nghttp2_option with automatic WINDOW_UPDATE off and the header caps above. The caller
 * frees it with nghttp2_option_del() after creating the session. -ENOMEM. */
int agent_grpc_option_new(nghttp2_option **ret);
/* Submit our SETTINGS (max concurrent streams, stream window, header list cap) and widen the
 * connection receive window to AGENT_GRPC_CONN_WINDOW. Returns 0 or an nghttp2 error. */
int agent_grpc_submit_settings(nghttp2_session *session);
