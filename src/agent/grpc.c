// SPDX-License-Identifier: Apache-2.0
#include "agent/grpc.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.pb-c.h"
#include "util/alloc.h"

#define GRPC_FLAG_COMPRESSED 0x01

static const char *const code_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *agent_grpc_code_name(int code)
{
	if (code < 0 || (size_t)code >= ARRAY_SIZE(code_names))
		return "UNKNOWN";
	return code_names[code];
}

/* ---- framing ---- */

static void put_prefix(uint8_t *p, size_t len)
{
	p[0] = 0; /* never compressed */
	p[1] = (uint8_t)(len >> 24);
	p[2] = (uint8_t)(len >> 16);
	p[3] = (uint8_t)(len >> 8);
	p[4] = (uint8_t)len;
}

/* Reserve a prefix and len bytes; returns where the message goes. */
static int reserve(struct strbuf *out, size_t len, uint8_t **ret)
{
	int r;
	if (len > AGENT_GRPC_MAX_MESSAGE)
		return -EMSGSIZE;
	r = strbuf_grow(out, AGENT_GRPC_HEADER_LEN + len);
	if (r < 0)
		return r;
	put_prefix((uint8_t *)out->buf + out->len, len);
	*ret = (uint8_t *)out->buf + out->len + AGENT_GRPC_HEADER_LEN;
	out->len += AGENT_GRPC_HEADER_LEN + len;
	out->buf[out->len] = 0;
	return 0;
}

int agent_grpc_frame_append(struct strbuf *out, const void *msg, size_t len)
{
	uint8_t *p;
	int r = reserve(out, len, &p);
	if (r < 0)
		return r;
	if (len)
		memcpy(p, msg, len);
	return 0;
}

int agent_grpc_pack(struct strbuf *out, const ProtobufCMessage *msg)
{
	uint8_t *p;
	int r = reserve(out, protobuf_c_message_get_packed_size(msg), &p);
	if (r < 0)
		return r;
	protobuf_c_message_pack(msg, p);
	return 0;
}

/* An IOChunk over caller-owned bytes; -EMSGSIZE when it could not be framed. */
static int chunk_of(IOChunk *chunk, const void *data, size_t len)
{
	if (len > AGENT_GRPC_MAX_MESSAGE - 16)
		return -EMSGSIZE;
	*chunk = (IOChunk)IOCHUNK__INIT;
	chunk->data.data = (uint8_t *)data;
	chunk->data.len = len;
	return 0;
}

int agent_grpc_pack_command(struct strbuf *out, const char *name, const char *const *args,
			    size_t nargs, bool interactive, bool tty, uint32_t rows, uint32_t cols)
{
	ExecRequest req = EXEC_REQUEST__INIT;
	ExecRequest__Command cmd = EXEC_REQUEST__COMMAND__INIT;
	TerminalSize size = TERMINAL_SIZE__INIT;

	if (!name || !*name || nargs > AGENT_GRPC_MAX_ARGS)
		return -EINVAL;
	cmd.name = (char *)name;
	cmd.n_args = nargs;
	cmd.args = (char **)args;
	cmd.interactive = interactive;
	cmd.tty = tty;
	if (rows || cols) {
		size.rows = rows;
		size.cols = cols;
		cmd.terminal_size = &size;
	}
	req.type_case = EXEC_REQUEST__TYPE_COMMAND;
	req.command = &cmd;
	return agent_grpc_pack(out, &req.base);
}

int agent_grpc_pack_stdin(struct strbuf *out, const void *data, size_t len)
{
	ExecRequest req = EXEC_REQUEST__INIT;
	IOChunk chunk;
	int r = chunk_of(&chunk, data, len);

	if (r < 0)
		return r;
	req.type_case = EXEC_REQUEST__TYPE_STANDARD_INPUT;
	req.standard_input = &chunk;
	return agent_grpc_pack(out, &req.base);
}

int agent_grpc_pack_resize(struct strbuf *out, uint32_t rows, uint32_t cols)
{
	ExecRequest req = EXEC_REQUEST__INIT;
	TerminalSize size = TERMINAL_SIZE__INIT;

	size.rows = rows;
	size.cols = cols;
	req.type_case = EXEC_REQUEST__TYPE_TERMINAL_RESIZE;
	req.terminal_resize = &size;
	return agent_grpc_pack(out, &req.base);
}

int agent_grpc_pack_output(struct strbuf *out, int fd, const void *data, size_t len)
{
	ExecResponse resp = EXEC_RESPONSE__INIT;
	IOChunk chunk;
	int r = chunk_of(&chunk, data, len);

	if (r < 0)
		return r;
	if (fd == 1) {
		resp.type_case = EXEC_RESPONSE__TYPE_STANDARD_OUTPUT;
		resp.standard_output = &chunk;
	} else if (fd == 2) {
		resp.type_case = EXEC_RESPONSE__TYPE_STANDARD_ERROR;
		resp.standard_error = &chunk;
	} else {
		return -EINVAL;
	}
	return agent_grpc_pack(out, &resp.base);
}

int agent_grpc_pack_exit(struct strbuf *out, int32_t code)
{
	ExecResponse resp = EXEC_RESPONSE__INIT;
	ExecResponse__Exit e = EXEC_RESPONSE__EXIT__INIT;

	e.code = code;
	resp.type_case = EXEC_RESPONSE__TYPE_EXIT;
	resp.exit = &e;
	return agent_grpc_pack(out, &resp.base);
}

int agent_grpc_pack_resolve_ip_request(struct strbuf *out)
{
	ResolveIPRequest req = RESOLVE_IPREQUEST__INIT;
	return agent_grpc_pack(out, &req.base);
}

int agent_grpc_pack_resolve_ip_response(struct strbuf *out, const char *ip)
{
	ResolveIPResponse resp = RESOLVE_IPRESPONSE__INIT;
	resp.ip = (char *)(ip ? ip : "");
	return agent_grpc_pack(out, &resp.base);
}

/* ---- reassembly ---- */

void agent_grpc_reader_init(struct agent_grpc_reader *r, uint32_t max_message)
{
	*r = (struct agent_grpc_reader){.max = max_message ? max_message : AGENT_GRPC_MAX_MESSAGE};
}

void agent_grpc_reader_release(struct agent_grpc_reader *r)
{
	free(r->buf);
	agent_grpc_reader_init(r, r->max);
}

static uint32_t prefix_len(const uint8_t *p)
{
	return (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
}

/* Check the prefix at r->pos if it is complete. */
static int check_prefix(struct agent_grpc_reader *r)
{
	const uint8_t *p = r->buf + r->pos;

	if (r->error)
		return r->error;
	if (r->len - r->pos < AGENT_GRPC_HEADER_LEN)
		return 0;
	if (p[0] & GRPC_FLAG_COMPRESSED)
		r->error = -EPROTO;
	else if (prefix_len(p) > r->max)
		r->error = -EMSGSIZE;
	return r->error;
}

int agent_grpc_reader_feed(struct agent_grpc_reader *r, const void *data, size_t len)
{
	if (r->error)
		return r->error;
	/* Drop what next() has returned before growing. */
	if (r->pos) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	/* Give back what a large message grew. */
	if (r->len == 0 && r->alloc > (64u << 10)) {
		free(r->buf);
		r->buf = NULL;
		r->alloc = 0;
	}
	/* Never buffer the payload of a message whose prefix we would refuse. */
	if (r->len < AGENT_GRPC_HEADER_LEN && r->len + len >= AGENT_GRPC_HEADER_LEN) {
		uint8_t hdr[AGENT_GRPC_HEADER_LEN];
		if (r->len)
			memcpy(hdr, r->buf, r->len);
		memcpy(hdr + r->len, data, AGENT_GRPC_HEADER_LEN - r->len);
		if (hdr[0] & GRPC_FLAG_COMPRESSED)
			return r->error = -EPROTO;
		if (prefix_len(hdr) > r->max)
			return r->error = -EMSGSIZE;
	}
	if (r->len + len > r->alloc) {
		size_t n = r->alloc ? r->alloc : 4096;
		while (n < r->len + len)
			n *= 2;
		r->buf = xrealloc(r->buf, n);
		r->alloc = n;
	}
	if (len)
		memcpy(r->buf + r->len, data, len);
	r->len += len;
	return check_prefix(r);
}

int agent_grpc_reader_next(struct agent_grpc_reader *r, const uint8_t **ret_msg, size_t *ret_len)
{
	int k = check_prefix(r);
	uint32_t n;

	if (k < 0)
		return k;
	if (r->len - r->pos < AGENT_GRPC_HEADER_LEN)
		return 0;
	n = prefix_len(r->buf + r->pos);
	if (r->len - r->pos - AGENT_GRPC_HEADER_LEN < n)
		return 0;
	*ret_msg = r->buf + r->pos + AGENT_GRPC_HEADER_LEN;
	*ret_len = n;
	r->pos += AGENT_GRPC_HEADER_LEN + n;
	return 1;
}

size_t agent_grpc_reader_partial(const struct agent_grpc_reader *r)
{
	return r->len - r->pos;
}

/* ---- protobuf decoding ---- */

int agent_grpc_unpack_exec_request(const uint8_t *msg, size_t len, struct ExecRequest **ret)
{
	ExecRequest *m = exec_request__unpack(NULL, len, msg);

	if (!m)
		return -EBADMSG;
	if (m->type_case == EXEC_REQUEST__TYPE_COMMAND) {
		const ExecRequest__Command *c = m->command;
		if (!c || !c->name || !*c->name || c->n_args > AGENT_GRPC_MAX_ARGS) {
			exec_request__free_unpacked(m, NULL);
			return -EBADMSG;
		}
	}
	*ret = m;
	return 0;
}

/* Decode with a descriptor; validation is the caller's. */
static int unpack(const ProtobufCMessageDescriptor *desc, const uint8_t *msg, size_t len,
		  void **ret)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, msg);
	if (!m)
		return -EBADMSG;
	*ret = m;
	return 0;
}

int agent_grpc_unpack_exec_response(const uint8_t *msg, size_t len, struct ExecResponse **ret)
{
	return unpack(&exec_response__descriptor, msg, len, (void **)ret);
}

int agent_grpc_unpack_resolve_ip_request(const uint8_t *msg, size_t len,
					 struct ResolveIPRequest **ret)
{
	return unpack(&resolve_iprequest__descriptor, msg, len, (void **)ret);
}

int agent_grpc_unpack_resolve_ip_response(const uint8_t *msg, size_t len,
					  struct ResolveIPResponse **ret)
{
	return unpack(&resolve_ipresponse__descriptor, msg, len, (void **)ret);
}

/* ---- headers ---- */

static void nv_add(struct agent_grpc_nv *h, const char *name, const char *value)
{
	if (h->n >= ARRAY_SIZE(h->nv))
		abort(); /* a programming error: the lists above are fixed */
	h->nv[h->n++] = (nghttp2_nv){
	    .name = (uint8_t *)name,
	    .value = (uint8_t *)value,
	    .namelen = strlen(name),
	    .valuelen = strlen(value),
	    .flags = NGHTTP2_NV_FLAG_NONE,
	};
}

static void nv_init(struct agent_grpc_nv *h)
{
	memset(h, 0, sizeof(*h));
}

void agent_grpc_nv_request(struct agent_grpc_nv *h, const char *path, const char *authority)
{
	nv_init(h);
	nv_add(h, ":method", "POST");
	nv_add(h, ":scheme", "http");
	nv_add(h, ":path", path);
	nv_add(h, ":authority", authority && *authority ? authority : "localhost");
	nv_add(h, "content-type", AGENT_GRPC_CONTENT_TYPE);
	nv_add(h, "te", "trailers");
	nv_add(h, "user-agent", "tart/" TART_VERSION);
}

void agent_grpc_nv_response(struct agent_grpc_nv *h)
{
	nv_init(h);
	nv_add(h, ":status", "200");
	nv_add(h, "content-type", AGENT_GRPC_CONTENT_TYPE);
}

static void nv_add_status(struct agent_grpc_nv *h, int code, const char *message)
{
	snprintf(h->code, sizeof(h->code), "%d", code);
	nv_add(h, "grpc-status", h->code);
	if (message && *message) {
		struct strbuf sb = STRBUF_INIT;
		(void)agent_grpc_percent_encode(&sb, message);
		h->message = strbuf_detach(&sb, NULL);
		nv_add(h, "grpc-message", h->message);
	}
}

void agent_grpc_nv_trailers(struct agent_grpc_nv *h, int code, const char *message)
{
	nv_init(h);
	nv_add_status(h, code, message);
}

void agent_grpc_nv_trailers_only(struct agent_grpc_nv *h, int code, const char *message)
{
	nv_init(h);
	nv_add(h, ":status", "200");
	nv_add(h, "content-type", AGENT_GRPC_CONTENT_TYPE);
	nv_add_status(h, code, message);
}

void agent_grpc_nv_release(struct agent_grpc_nv *h)
{
	free(h->message);
	nv_init(h);
}

int agent_grpc_percent_encode(struct strbuf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int r;
		if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
			r = strbuf_addch(out, (char)*p);
		} else {
			char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			r = strbuf_add(out, esc, sizeof(esc));
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int agent_grpc_percent_decode(struct strbuf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int r;
		if (c == '%' && i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = {s[i + 1], s[i + 2], 0};
			c = (char)strtoul(hex, NULL, 16);
			i += 2;
		}
		r = strbuf_addch(out, c);
		if (r < 0)
			return r;
	}
	return 0;
}

void agent_grpc_meta_init(struct agent_grpc_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->grpc_status = -1;
}

static bool name_is(const uint8_t *name, size_t namelen, const char *want)
{
	return namelen == strlen(want) && memcmp(name, want, namelen) == 0;
}

static void copy_value(char *dst, size_t dstsize, const uint8_t *v, size_t vlen)
{
	size_t n = vlen < dstsize - 1 ? vlen : dstsize - 1;
	memcpy(dst, v, n);
	dst[n] = 0;
}

/* A small non-negative decimal, at most max; -1 when malformed. */
static long parse_small(const uint8_t *v, size_t vlen, long max)
{
	long n = 0;
	if (vlen == 0 || vlen > 6)
		return -1;
	for (size_t i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n <= max ? n : -1;
}

int agent_grpc_meta_add(struct agent_grpc_meta *m, const uint8_t *name, size_t namelen,
			const uint8_t *value, size_t valuelen)
{
	if (name_is(name, namelen, ":status")) {
		long s = parse_small(value, valuelen, 999);
		if (s < 100)
			return -EBADMSG;
		m->http_status = (int)s;
	} else if (name_is(name, namelen, "content-type")) {
		static const char ct[] = AGENT_GRPC_CONTENT_TYPE;
		size_t n = sizeof(ct) - 1;
		m->content_type_ok = valuelen >= n && memcmp(value, ct, n) == 0 &&
				     (valuelen == n || value[n] == '+' || value[n] == ';');
	} else if (name_is(name, namelen, "grpc-encoding")) {
		m->compressed = !(valuelen == 8 && memcmp(value, "identity", 8) == 0);
	} else if (name_is(name, namelen, "grpc-status")) {
		long s = parse_small(value, valuelen, 1000);
		if (s < 0)
			return -EBADMSG;
		m->grpc_status = (int)s;
	} else if (name_is(name, namelen, "grpc-message")) {
		struct strbuf sb = STRBUF_INIT;
		strbuf_init(&sb, sizeof(m->grpc_message) - 1);
		/* A longer message is cut at the cap: decode the prefix that fits. */
		(void)agent_grpc_percent_decode(&sb, (const char *)value,
						valuelen < 3 * sizeof(m->grpc_message)
						    ? valuelen
						    : 3 * sizeof(m->grpc_message));
		copy_value(m->grpc_message, sizeof(m->grpc_message), (const uint8_t *)sb.buf,
			   sb.len);
		strbuf_release(&sb);
	} else if (name_is(name, namelen, ":method")) {
		copy_value(m->method, sizeof(m->method), value, valuelen);
	} else if (name_is(name, namelen, ":path")) {
		copy_value(m->path, sizeof(m->path), value, valuelen);
	}
	return 0;
}

/* ---- outbound queue ---- */

void agent_grpc_outq_init(struct agent_grpc_outq *q)
{
	memset(q, 0, sizeof(*q));
	strbuf_init(&q->buf, 0);
}

void agent_grpc_outq_release(struct agent_grpc_outq *q)
{
	strbuf_release(&q->buf);
	if (q->has_trailers)
		agent_grpc_nv_release(&q->trailers);
	agent_grpc_outq_init(q);
}

int agent_grpc_outq_add(struct agent_grpc_outq *q, const void *data, size_t len)
{
	if (q->finished)
		return -EPIPE;
	/* Compact once everything queued has been pulled. */
	if (q->pos && q->pos == q->buf.len) {
		strbuf_reset(&q->buf);
		q->pos = 0;
	} else if (q->pos > (64u << 10) && q->pos * 2 > q->buf.len) {
		memmove(q->buf.buf, q->buf.buf + q->pos, q->buf.len - q->pos);
		q->buf.len -= q->pos;
		q->buf.buf[q->buf.len] = 0;
		q->pos = 0;
	}
	return strbuf_add(&q->buf, data, len);
}

size_t agent_grpc_outq_pending(const struct agent_grpc_outq *q)
{
	return q->buf.len - q->pos;
}

void agent_grpc_outq_finish(struct agent_grpc_outq *q, bool with_trailers, int code,
			    const char *message)
{
	if (q->finished)
		return;
	q->finished = true;
	if (with_trailers) {
		agent_grpc_nv_trailers(&q->trailers, code, message);
		q->has_trailers = true;
	}
}

ssize_t agent_grpc_outq_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
			     size_t length, uint32_t *data_flags, nghttp2_data_source *source,
			     void *user_data)
{
	struct agent_grpc_outq *q = source->ptr;
	size_t n = agent_grpc_outq_pending(q);

	(void)user_data;
	if (n > length)
		n = length;
	if (n) {
		memcpy(buf, q->buf.buf + q->pos, n);
		q->pos += n;
	}
	if (agent_grpc_outq_pending(q) == 0) {
		if (q->pos == q->buf.len && q->buf.alloc > (256u << 10)) {
			/* A burst grew the buffer: give the memory back. */
			strbuf_release(&q->buf);
			q->pos = 0;
		}
		if (!q->finished) {
			if (n == 0) {
				q->deferred = true;
				return NGHTTP2_ERR_DEFERRED;
			}
			return (ssize_t)n;
		}
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
		if (q->has_trailers) {
			int r = nghttp2_submit_trailer(session, stream_id, q->trailers.nv,
						       q->trailers.n);
			if (r != 0)
				return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
			*data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			agent_grpc_nv_release(&q->trailers);
			q->has_trailers = false;
		}
	}
	return (ssize_t)n;
}

int agent_grpc_outq_kick(struct agent_grpc_outq *q, nghttp2_session *session, int32_t stream_id)
{
	int r;
	if (!q->deferred)
		return 0;
	r = nghttp2_session_resume_data(session, stream_id);
	if (r == 0 || r == NGHTTP2_ERR_INVALID_ARGUMENT)
		q->deferred = false;
	return r == NGHTTP2_ERR_INVALID_ARGUMENT ? 0 : r;
}

/* ---- the serial convention's sync point ---- */

static const uint8_t preface[] = NGHTTP2_CLIENT_MAGIC;
#define PREFACE_LEN NGHTTP2_CLIENT_MAGIC_LEN

_Static_assert(sizeof(((struct agent_grpc_preface_scan *)0)->tail) == PREFACE_LEN - 1,
	       "the tail holds one byte less than a preface");

void agent_grpc_preface_reset(struct agent_grpc_preface_scan *p)
{
	memset(p, 0, sizeof(*p));
}

/* How much of the preface the bytes seen so far end with, after one more byte (the preface
 * has a second 'P', so a plain restart on a mismatch would miss some). */
static size_t preface_step(size_t matched, uint8_t b)
{
	if (b == preface[matched])
		return matched + 1;
	for (size_t k = matched; k > 0; k--)
		if (preface[k - 1] == b && memcmp(preface, preface + matched - k + 1, k - 1) == 0)
			return k;
	return 0;
}

int agent_grpc_preface_sync(struct agent_grpc_preface_scan *p, const uint8_t *data, size_t len,
			    size_t *ret_end)
{
	for (size_t i = 0; i < len; i++) {
		p->matched = preface_step(p->matched, data[i]);
		if (p->matched == PREFACE_LEN) {
			p->matched = 0;
			*ret_end = i + 1;
			return 1;
		}
	}
	return 0;
}

void agent_grpc_preface_keep(struct agent_grpc_preface_scan *p, const uint8_t *data, size_t len)
{
	const size_t keep = sizeof(p->tail);
	size_t old;

	if (len >= keep) {
		memcpy(p->tail, data + len - keep, keep);
		p->ntail = keep;
		return;
	}
	old = MIN(p->ntail, keep - len);
	memmove(p->tail, p->tail + p->ntail - old, old);
	if (len)
		memcpy(p->tail + old, data, len);
	p->ntail = old + len;
}

int agent_grpc_preface_find(const struct agent_grpc_preface_scan *p, const uint8_t *data,
			    size_t len, size_t *ret_end)
{
	uint8_t joint[2 * PREFACE_LEN];
	size_t head = MIN(len, (size_t)PREFACE_LEN - 1);
	const uint8_t *m;

	/* Straddling the boundary (or starting in data's first bytes). */
	if (p->ntail)
		memcpy(joint, p->tail, p->ntail);
	if (head)
		memcpy(joint + p->ntail, data, head);
	m = memmem(joint, p->ntail + head, preface, PREFACE_LEN);
	if (m) {
		*ret_end = (size_t)(m - joint) + PREFACE_LEN - p->ntail;
		return 1;
	}
	m = len ? memmem(data, len, preface, PREFACE_LEN) : NULL;
	if (!m)
		return 0;
	*ret_end = (size_t)(m - data) + PREFACE_LEN;
	return 1;
}

/* ---- session setup ---- */

int agent_grpc_option_new(nghttp2_option **ret)
{
	nghttp2_option *opt;
	if (nghttp2_option_new(&opt) != 0)
		return -ENOMEM;
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_send_header_block_length(opt, AGENT_GRPC_MAX_HEADER_LIST);
	nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
	*ret = opt;
	return 0;
}

int agent_grpc_submit_settings(nghttp2_session *session)
{
	const nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, AGENT_GRPC_MAX_STREAMS},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, AGENT_GRPC_STREAM_WINDOW},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, AGENT_GRPC_MAX_HEADER_LIST},
	    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	};
	int r = nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv));
	if (r != 0)
		return r;
	return nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0,
						     AGENT_GRPC_CONN_WINDOW);
}
