// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent/agent.pb-c.h"
#include "agent/grpc.h"

static void test_frame_and_reader(void **state)
{
	(void)state;
	struct strbuf sb = STRBUF_INIT;
	struct agent_grpc_reader r;
	const uint8_t *msg;
	size_t len;

	assert_int_equal(agent_grpc_frame_append(&sb, "abc", 3), 0);
	assert_int_equal(agent_grpc_frame_append(&sb, "", 0), 0);
	assert_int_equal(agent_grpc_frame_append(&sb, "hello", 5), 0);
	assert_int_equal(sb.len, 5 + 3 + 5 + 0 + 5 + 5);
	assert_memory_equal(sb.buf, "\0\0\0\0\3abc", 8);

	/* Fed one byte at a time, the reader yields exactly the three messages. */
	agent_grpc_reader_init(&r, 0);
	int got = 0;
	for (size_t i = 0; i < sb.len; i++) {
		assert_int_equal(agent_grpc_reader_feed(&r, sb.buf + i, 1), 0);
		int k;
		while ((k = agent_grpc_reader_next(&r, &msg, &len)) > 0) {
			if (got == 0)
				assert_true(len == 3 && memcmp(msg, "abc", 3) == 0);
			else if (got == 1)
				assert_int_equal(len, 0);
			else
				assert_true(len == 5 && memcmp(msg, "hello", 5) == 0);
			got++;
		}
		assert_int_equal(k, 0);
	}
	assert_int_equal(got, 3);
	assert_int_equal(agent_grpc_reader_partial(&r), 0);

	/* All at once, then a partial trailing message. */
	assert_int_equal(agent_grpc_reader_feed(&r, sb.buf, sb.len), 0);
	assert_int_equal(agent_grpc_reader_feed(&r, "\0\0\0\0\7ab", 7), 0);
	for (got = 0; agent_grpc_reader_next(&r, &msg, &len) > 0; got++)
		;
	assert_int_equal(got, 3);
	assert_int_equal(agent_grpc_reader_partial(&r), 7);
	agent_grpc_reader_release(&r);
	strbuf_release(&sb);
}

static void test_reader_refuses(void **state)
{
	(void)state;
	struct agent_grpc_reader r;
	const uint8_t *msg;
	size_t len;

	/* Compressed flag. */
	agent_grpc_reader_init(&r, 0);
	assert_int_equal(agent_grpc_reader_feed(&r, "\1\0\0\0\1x", 6), -EPROTO);
	assert_int_equal(agent_grpc_reader_next(&r, &msg, &len), -EPROTO);
	assert_int_equal(agent_grpc_reader_feed(&r, "\0\0\0\0\0", 5), -EPROTO); /* sticky */
	agent_grpc_reader_release(&r);

	/* A declared length over the cap is refused when the prefix completes, even split. */
	agent_grpc_reader_init(&r, 0);
	assert_int_equal(agent_grpc_reader_feed(&r, "\0\0\x40", 3), 0);
	assert_int_equal(agent_grpc_reader_feed(&r, "\0\1", 2), -EMSGSIZE);
	assert_true(r.alloc <= 4096); /* nothing of the 4 MiB + 1 was reserved */
	agent_grpc_reader_release(&r);

	/* Exactly the cap is fine; a smaller cap is honoured; a later prefix is checked too. */
	agent_grpc_reader_init(&r, 16);
	assert_int_equal(agent_grpc_reader_feed(&r, "\0\0\0\0\x10", 5), 0);
	agent_grpc_reader_release(&r);
	agent_grpc_reader_init(&r, 16);
	assert_int_equal(agent_grpc_reader_feed(&r, "\0\0\0\0\1x\0\0\0\0\x11", 11), 0);
	assert_int_equal(agent_grpc_reader_next(&r, &msg, &len), 1);
	assert_int_equal(agent_grpc_reader_next(&r, &msg, &len), -EMSGSIZE);
	agent_grpc_reader_release(&r);

	/* The frame builder refuses what a reader would. */
	struct strbuf sb = STRBUF_INIT;
	assert_int_equal(agent_grpc_frame_append(&sb, "", AGENT_GRPC_MAX_MESSAGE + 1), -EMSGSIZE);
	assert_int_equal(sb.len, 0);
}

static const uint8_t *one_message(struct strbuf *sb, size_t *len)
{
	assert_true(sb->len >= AGENT_GRPC_HEADER_LEN);
	*len = sb->len - AGENT_GRPC_HEADER_LEN;
	return (const uint8_t *)sb->buf + AGENT_GRPC_HEADER_LEN;
}

static void test_protobuf_round_trip(void **state)
{
	(void)state;
	struct strbuf sb = STRBUF_INIT;
	const char *args[] = {"-c", "echo hi"};
	ExecRequest *req;
	ExecResponse *resp;
	size_t len;
	const uint8_t *m;

	assert_int_equal(agent_grpc_pack_command(&sb, "sh", args, 2, true, true, 24, 80), 0);
	m = one_message(&sb, &len);
	assert_int_equal(agent_grpc_unpack_exec_request(m, len, &req), 0);
	assert_int_equal(req->type_case, EXEC_REQUEST__TYPE_COMMAND);
	assert_string_equal(req->command->name, "sh");
	assert_int_equal(req->command->n_args, 2);
	assert_string_equal(req->command->args[1], "echo hi");
	assert_true(req->command->interactive && req->command->tty);
	assert_int_equal(req->command->terminal_size->rows, 24);
	assert_int_equal(req->command->terminal_size->cols, 80);
	exec_request__free_unpacked(req, NULL);

	/* Field numbers as in Tart's proto: command=1{name=1}, standard_input=2{data=1}. */
	strbuf_reset(&sb);
	assert_int_equal(agent_grpc_pack_stdin(&sb, "", 0), 0);
	m = one_message(&sb, &len);
	assert_int_equal(len, 2);
	assert_memory_equal(m, "\x12\x00", 2);
	assert_int_equal(agent_grpc_unpack_exec_request(m, len, &req), 0);
	assert_int_equal(req->type_case, EXEC_REQUEST__TYPE_STANDARD_INPUT);
	assert_int_equal(req->standard_input->data.len, 0);
	exec_request__free_unpacked(req, NULL);

	strbuf_reset(&sb);
	assert_int_equal(agent_grpc_pack_resize(&sb, 50, 132), 0);
	m = one_message(&sb, &len);
	assert_memory_equal(m, "\x1a\x05\x08\x32\x10\x84\x01", 7);

	strbuf_reset(&sb);
	assert_int_equal(agent_grpc_pack_output(&sb, 2, "err", 3), 0);
	m = one_message(&sb, &len);
	assert_int_equal(agent_grpc_unpack_exec_response(m, len, &resp), 0);
	assert_int_equal(resp->type_case, EXEC_RESPONSE__TYPE_STANDARD_ERROR);
	assert_memory_equal(resp->standard_error->data.data, "err", 3);
	exec_response__free_unpacked(resp, NULL);
	assert_int_equal(agent_grpc_pack_output(&sb, 3, "x", 1), -EINVAL);

	strbuf_reset(&sb);
	assert_int_equal(agent_grpc_pack_exit(&sb, -1), 0);
	m = one_message(&sb, &len);
	assert_int_equal(agent_grpc_unpack_exec_response(m, len, &resp), 0);
	assert_int_equal(resp->type_case, EXEC_RESPONSE__TYPE_EXIT);
	assert_int_equal(resp->exit->code, -1);
	exec_response__free_unpacked(resp, NULL);

	strbuf_reset(&sb);
	assert_int_equal(agent_grpc_pack_resolve_ip_response(&sb, "192.168.64.2"), 0);
	ResolveIPResponse *ip;
	m = one_message(&sb, &len);
	assert_int_equal(agent_grpc_unpack_resolve_ip_response(m, len, &ip), 0);
	assert_string_equal(ip->ip, "192.168.64.2");
	resolve_ipresponse__free_unpacked(ip, NULL);

	/* Malformed: truncated varint, wrong wire type, a command without a name. */
	assert_int_equal(agent_grpc_unpack_exec_request((const uint8_t *)"\x0a\x05\x0a", 3, &req),
			 -EBADMSG);
	assert_int_equal(agent_grpc_unpack_exec_request((const uint8_t *)"\x0a\x00", 2, &req),
			 -EBADMSG);
	assert_int_equal(agent_grpc_unpack_exec_request((const uint8_t *)"\x0b", 1, &req),
			 -EBADMSG);
	assert_int_equal(agent_grpc_pack_command(&sb, "", NULL, 0, false, false, 0, 0), -EINVAL);
	strbuf_release(&sb);
}

static void test_headers(void **state)
{
	(void)state;
	struct agent_grpc_nv h;
	struct agent_grpc_meta m;
	struct strbuf sb = STRBUF_INIT;

	agent_grpc_nv_trailers_only(&h, AGENT_GRPC_NOT_FOUND, "no such file: 'x%y'\n");
	agent_grpc_meta_init(&m);
	for (size_t i = 0; i < h.n; i++)
		assert_int_equal(agent_grpc_meta_add(&m, h.nv[i].name, h.nv[i].namelen,
						     h.nv[i].value, h.nv[i].valuelen),
				 0);
	assert_int_equal(m.http_status, 200);
	assert_true(m.content_type_ok);
	assert_int_equal(m.grpc_status, 5);
	assert_string_equal(m.grpc_message, "no such file: 'x%y'\n");
	assert_string_equal(h.message, "no such file: 'x%25y'%0A");
	agent_grpc_nv_release(&h);
	assert_string_equal(agent_grpc_code_name(5), "NOT_FOUND");
	assert_string_equal(agent_grpc_code_name(99), "UNKNOWN");

	agent_grpc_nv_request(&h, AGENT_GRPC_PATH_EXEC, NULL);
	agent_grpc_meta_init(&m);
	for (size_t i = 0; i < h.n; i++)
		assert_int_equal(agent_grpc_meta_add(&m, h.nv[i].name, h.nv[i].namelen,
						     h.nv[i].value, h.nv[i].valuelen),
				 0);
	assert_string_equal(m.method, "POST");
	assert_string_equal(m.path, "/Agent/Exec");
	assert_int_equal(m.grpc_status, -1);
	agent_grpc_nv_release(&h);

	agent_grpc_meta_init(&m);
	assert_int_equal(
	    agent_grpc_meta_add(&m, (const uint8_t *)"grpc-status", 11, (const uint8_t *)"1x", 2),
	    -EBADMSG);
	assert_int_equal(agent_grpc_meta_add(&m, (const uint8_t *)"content-type", 12,
					     (const uint8_t *)"application/grpcx", 17),
			 0);
	assert_false(m.content_type_ok);
	assert_int_equal(agent_grpc_meta_add(&m, (const uint8_t *)"content-type", 12,
					     (const uint8_t *)"application/grpc+proto", 22),
			 0);
	assert_true(m.content_type_ok);
	assert_int_equal(agent_grpc_meta_add(&m, (const uint8_t *)"grpc-encoding", 13,
					     (const uint8_t *)"gzip", 4),
			 0);
	assert_true(m.compressed);

	/* A bad escape stays verbatim; a long grpc-message is cut, not overflowed. */
	assert_int_equal(agent_grpc_percent_decode(&sb, "a%zzb%4", 7), 0);
	assert_string_equal(sb.buf, "a%zzb%4");
	char big[2000];
	memset(big, 'A', sizeof(big));
	assert_int_equal(agent_grpc_meta_add(&m, (const uint8_t *)"grpc-message", 12,
					     (const uint8_t *)big, sizeof(big)),
			 0);
	assert_int_equal(strlen(m.grpc_message), sizeof(m.grpc_message) - 1);
	strbuf_release(&sb);
}

/* ---- a client and a server session talking through memory ---- */

struct side {
	nghttp2_session *s;
	struct agent_grpc_meta meta;
	struct agent_grpc_reader reader;
	struct agent_grpc_outq q;
	int32_t stream;
	int messages;
	size_t bytes;
	uint32_t unacked; /* stream bytes received, not yet consumed */
	bool closed;
	uint32_t close_error;
};

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	struct side *sd = user;
	(void)s;
	(void)flags;
	sd->stream = f->hd.stream_id;
	return agent_grpc_meta_add(&sd->meta, name, namelen, value, valuelen) < 0
		   ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
		   : 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
		   void *user)
{
	struct side *sd = user;
	const uint8_t *m;
	size_t n;
	(void)flags;
	nghttp2_session_consume_connection(s, len);
	sd->unacked += len;
	assert_int_equal(agent_grpc_reader_feed(&sd->reader, data, len), 0);
	while (agent_grpc_reader_next(&sd->reader, &m, &n) > 0) {
		sd->messages++;
		sd->bytes += n;
	}
	(void)id;
	return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t error, void *user)
{
	struct side *sd = user;
	(void)s;
	(void)id;
	sd->closed = true;
	sd->close_error = error;
	return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	struct side *sd = user;
	/* The server answers a request once its headers are in. */
	if (nghttp2_session_check_server_session(s) && f->hd.type == NGHTTP2_HEADERS &&
	    f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		struct agent_grpc_nv h;
		nghttp2_data_provider dp = {.source.ptr = &sd->q,
					    .read_callback = agent_grpc_outq_read};
		agent_grpc_nv_response(&h);
		assert_int_equal(nghttp2_submit_response(s, f->hd.stream_id, h.nv, h.n, &dp), 0);
		agent_grpc_nv_release(&h);
	}
	return 0;
}

static void side_init(struct side *sd, bool server)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;

	memset(sd, 0, sizeof(*sd));
	agent_grpc_meta_init(&sd->meta);
	agent_grpc_reader_init(&sd->reader, 0);
	agent_grpc_outq_init(&sd->q);
	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
	assert_int_equal(agent_grpc_option_new(&opt), 0);
	if (server)
		assert_int_equal(nghttp2_session_server_new2(&sd->s, cb, sd, opt), 0);
	else
		assert_int_equal(nghttp2_session_client_new2(&sd->s, cb, sd, opt), 0);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	assert_int_equal(agent_grpc_submit_settings(sd->s), 0);
}

static void side_release(struct side *sd)
{
	nghttp2_session_del(sd->s);
	agent_grpc_reader_release(&sd->reader);
	agent_grpc_outq_release(&sd->q);
}

/* Move bytes both ways until neither side has anything to send. */
static void pump(struct side *a, struct side *b)
{
	for (int progress = 1; progress;) {
		progress = 0;
		struct side *from[2] = {a, b}, *to[2] = {b, a};
		for (int i = 0; i < 2; i++) {
			const uint8_t *data;
			ssize_t n;
			while ((n = nghttp2_session_mem_send(from[i]->s, &data)) > 0) {
				assert_int_equal(
				    nghttp2_session_mem_recv(to[i]->s, data, (size_t)n), n);
				progress = 1;
			}
			assert_true(n == 0);
		}
	}
}

static void test_sessions(void **state)
{
	(void)state;
	struct side cli, srv;
	struct agent_grpc_nv h;
	struct strbuf sb = STRBUF_INIT;
	static char big[2 * AGENT_GRPC_STREAM_WINDOW + 12345];

	side_init(&cli, false);
	side_init(&srv, true);

	/* The client sends a command, then more stdin than one stream window. */
	assert_int_equal(agent_grpc_pack_command(&sb, "cat", NULL, 0, true, false, 0, 0), 0);
	assert_int_equal(agent_grpc_outq_add(&cli.q, sb.buf, sb.len), 0);
	agent_grpc_nv_request(&h, AGENT_GRPC_PATH_EXEC, NULL);
	nghttp2_data_provider dp = {.source.ptr = &cli.q, .read_callback = agent_grpc_outq_read};
	int32_t id = nghttp2_submit_request(cli.s, NULL, h.nv, h.n, &dp, NULL);
	assert_true(id > 0);
	agent_grpc_nv_release(&h);
	for (size_t off = 0; off < sizeof(big); off += AGENT_GRPC_CHUNK) {
		strbuf_reset(&sb);
		size_t n = MIN(sizeof(big) - off, (size_t)AGENT_GRPC_CHUNK);
		assert_int_equal(agent_grpc_pack_stdin(&sb, big + off, n), 0);
		assert_int_equal(agent_grpc_outq_add(&cli.q, sb.buf, sb.len), 0);
	}
	agent_grpc_outq_finish(&cli.q, false, 0, NULL);
	assert_int_equal(agent_grpc_outq_kick(&cli.q, cli.s, id), 0);
	pump(&cli, &srv);

	/* Flow control holds the rest back until the server consumes. */
	assert_string_equal(srv.meta.path, "/Agent/Exec");
	assert_true(srv.unacked <= AGENT_GRPC_STREAM_WINDOW);
	assert_true(agent_grpc_outq_pending(&cli.q) > 0);
	while (agent_grpc_outq_pending(&cli.q) > 0 || srv.unacked) {
		assert_int_equal(nghttp2_session_consume_stream(srv.s, srv.stream, srv.unacked), 0);
		srv.unacked = 0;
		pump(&cli, &srv);
	}
	assert_int_equal(srv.messages, 1 + (sizeof(big) + AGENT_GRPC_CHUNK - 1) / AGENT_GRPC_CHUNK);
	assert_int_equal(agent_grpc_reader_partial(&srv.reader), 0);

	/* The server answers: output, exit, trailers with a status and a message. */
	strbuf_reset(&sb);
	assert_int_equal(agent_grpc_pack_output(&sb, 1, "out", 3), 0);
	assert_int_equal(agent_grpc_pack_exit(&sb, 255), 0);
	assert_int_equal(agent_grpc_outq_add(&srv.q, sb.buf, sb.len), 0);
	agent_grpc_outq_finish(&srv.q, true, AGENT_GRPC_OK, "done");
	assert_int_equal(agent_grpc_outq_kick(&srv.q, srv.s, srv.stream), 0);
	pump(&cli, &srv);
	assert_int_equal(cli.messages, 2);
	assert_int_equal(cli.meta.http_status, 200);
	assert_true(cli.meta.content_type_ok);
	assert_int_equal(cli.meta.grpc_status, 0);
	assert_string_equal(cli.meta.grpc_message, "done");
	assert_true(cli.closed && srv.closed);
	assert_int_equal(cli.close_error, 0);

	side_release(&cli);
	side_release(&srv);
	strbuf_release(&sb);
}

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

static void test_preface_sync(void **state)
{
	(void)state;
	struct agent_grpc_preface_scan p;
	size_t end = 0;
	/* Stale bytes, a false start that contains the preface's second 'P', then the preface. */
	const char in[] = "\x00\x00\x04garbagePRI * HTTP" PREFACE "after";

	agent_grpc_preface_reset(&p);
	assert_int_equal(agent_grpc_preface_sync(&p, (const uint8_t *)in, sizeof(in) - 1, &end), 1);
	assert_string_equal(in + end, "after");
	/* Byte by byte, the same end. */
	agent_grpc_preface_reset(&p);
	size_t i, got = 0;
	for (i = 0; i < sizeof(in) - 1; i++) {
		if (agent_grpc_preface_sync(&p, (const uint8_t *)in + i, 1, &end)) {
			got = i + end;
			break;
		}
	}
	assert_string_equal(in + got, "after");
	/* A partial match whose continuation restarts on the second 'P' of "HTTP". */
	const char tricky[] = "PRI * HTTPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n!";
	agent_grpc_preface_reset(&p);
	assert_int_equal(
	    agent_grpc_preface_sync(&p, (const uint8_t *)tricky, sizeof(tricky) - 1, &end), 1);
	assert_string_equal(tricky + end, "!");
	/* Nothing but garbage. */
	agent_grpc_preface_reset(&p);
	assert_int_equal(
	    agent_grpc_preface_sync(&p, (const uint8_t *)"PRI * HTTP/1.1\r\n", 16, &end), 0);
}

static void test_preface_find(void **state)
{
	(void)state;
	struct agent_grpc_preface_scan p;
	const char stream[] = "old-session-frames" PREFACE "new";
	size_t end;

	/* Whole in one chunk. */
	agent_grpc_preface_reset(&p);
	assert_int_equal(
	    agent_grpc_preface_find(&p, (const uint8_t *)stream, sizeof(stream) - 1, &end), 1);
	assert_string_equal(stream + end, "new");
	/* Straddling two chunks at every split point: the tail keeps the first part. */
	for (size_t cut = 1; cut < sizeof(stream) - 1; cut++) {
		agent_grpc_preface_reset(&p);
		/* The first part was fed to the session in small pieces. */
		for (size_t i = 0; i < cut; i += 5)
			agent_grpc_preface_keep(&p, (const uint8_t *)stream + i,
						MIN((size_t)5, cut - i));
		int found = agent_grpc_preface_find(&p, (const uint8_t *)stream + cut,
						    sizeof(stream) - 1 - cut, &end);
		if (cut <= 18 + 23) {
			assert_int_equal(found, 1);
			assert_string_equal(stream + cut + end, "new");
		} else {
			assert_int_equal(found, 0); /* it was all in the old chunk */
		}
	}
	agent_grpc_preface_reset(&p);
	assert_int_equal(agent_grpc_preface_find(&p, (const uint8_t *)"PRI * HTTP/2.0", 14, &end),
			 0);
	assert_int_equal(agent_grpc_preface_find(&p, (const uint8_t *)"", 0, &end), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_frame_and_reader),
	    cmocka_unit_test(test_reader_refuses),
	    cmocka_unit_test(test_protobuf_round_trip),
	    cmocka_unit_test(test_headers),
	    cmocka_unit_test(test_sessions),
	    cmocka_unit_test(test_preface_sync),
	    cmocka_unit_test(test_preface_find),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
