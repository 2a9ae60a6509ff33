// SPDX-License-Identifier: Apache-2.0
#include "vm/run-state.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "util/fs.h"
#include "util/json.h"

#define RUN_STATE_MAX (64u << 10)

int vm_run_state_write(const struct vm_dir *d, const struct vm_run_state *s)
{
	_cleanup_json_ json_t *j =
	    json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s}", "pid", (json_int_t)s->pid, "qemuPid",
		      (json_int_t)s->qemu_pid, "accel", s->accel, "netMode", s->net_mode, "net",
		      s->net_info, "vnc", s->vnc_url, "serial", s->serial);
	if (!j)
		return -ENOMEM;
	if (s->suspend_failures > 0) {
		json_object_set_new(j, "suspendFailures", json_integer(s->suspend_failures));
		json_object_set_new(j, "suspendError", json_string(s->suspend_error));
	}
	struct strbuf sb = STRBUF_INIT;
	json_dump_swift(j, JSON_SWIFT_PRETTY, &sb);
	strbuf_putc(&sb, '\n');
	_cleanup_free_ char *p = vm_dir_file(d, VM_RUN_STATE_FILE);
	int r = fs_write_atomic(p, sb.buf, sb.len, 0644);
	strbuf_release(&sb);
	return r;
}

static void copy_str(const json_t *j, const char *key, char *dst, size_t n)
{
	const char *v = json_string_value(json_object_get(j, key));
	snprintf(dst, n, "%s", v ? v : "");
}

int vm_run_state_read(const struct vm_dir *d, struct vm_run_state *ret)
{
	_cleanup_free_ char *p = vm_dir_file(d, VM_RUN_STATE_FILE);
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	int r = fs_read_full(p, RUN_STATE_MAX, &sb);
	if (r < 0)
		return r;
	_cleanup_json_ json_t *j = NULL;
	r = json_parse_buf(sb.buf, sb.len, &j);
	if (r < 0)
		return r;
	json_t *pid = json_object_get(j, "pid");
	json_t *qpid = json_object_get(j, "qemuPid");
	if (!json_is_integer(pid) || !json_is_integer(qpid))
		return -EBADMSG;
	struct vm_run_state s = {.pid = (pid_t)json_integer_value(pid),
				 .qemu_pid = (pid_t)json_integer_value(qpid)};
	copy_str(j, "accel", s.accel, sizeof(s.accel));
	copy_str(j, "netMode", s.net_mode, sizeof(s.net_mode));
	copy_str(j, "net", s.net_info, sizeof(s.net_info));
	copy_str(j, "vnc", s.vnc_url, sizeof(s.vnc_url));
	copy_str(j, "serial", s.serial, sizeof(s.serial));
	copy_str(j, "suspendError", s.suspend_error, sizeof(s.suspend_error));
	json_t *sf = json_object_get(j, "suspendFailures");
	if (json_is_integer(sf) && json_integer_value(sf) > 0)
		s.suspend_failures = (unsigned)json_integer_value(sf);
	*ret = s;
	return 0;
}

void vm_run_state_remove(const struct vm_dir *d)
{
	_cleanup_free_ char *p = vm_dir_file(d, VM_RUN_STATE_FILE);
	(void)unlink(p);
}
