// SPDX-License-Identifier: Apache-2.0
/* The CLI's and the worker's pure pieces: api.h, config.h's YAML, client.h's helpers, the flag
 * parser, the worker's reconciliation table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "orchard/api.h"
#include "orchard/cli/cli.h"
#include "orchard/client.h"
#include "orchard/config.h"
#include "orchard/worker/fsm.h"
#include "util/json.h"

static const char cert_pem[] = "-----BEGIN CERTIFICATE-----\n"
			       "MIIBtjCCAVugAwIBAgIUUM56/38AceWZeuKXqXBP+cWEvQ8wCgYIKoZIzj0EAwIw\n"
			       "HTEbMBkGA1UEAwwST3JjaGFyZCBDb250cm9sbGVyMB4XDTI2MTIwNjIyNTEzNVoX\n"
			       "DTM2MTIwMzIyNTEzNVowHTEbMBkGA1UEAwwST3JjaGFyZCBDb250cm9sbGVyMFkw\n"
			       "EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEmWchHXdFu10wsqLttBN+o6ATSkPaR0c4\n"
			       "jLrx0hsbvFRpREfTCFOYcMCNdLZImkIYVu/UfH+62tRmKrtlnzBEC6N5MHcwHQYD\n"
			       "VR0OBBYEFEsYU6i78y2CXyxifuiAJxkjHuflMB8GA1UdIwQYMBaAFEsYU6i78y2C\n"
			       "XyxifuiAJxkjHuflMA8GA1UdEwEB/wQFMAMBAf8wJAYDVR0RBB0wG4ISb3JjaGFy\n"
			       "ZC1jb250cm9sbGVyggVvdGhlcjAKBggqhkjOPQQDAgNJADBGAiEArS910xsG+wWn\n"
			       "sxyyWZOmE4UiI0p6CK6x2AipzZP0+1wCIQDD2psMYoX8OS2yBm9r/n+FK586JOK8\n"
			       "2HbFVOsiR/2F7A==\n"
			       "-----END CERTIFICATE-----\n";

static void test_fsm(void **state)
{
	(void)state;
	/* Orchard's internal/worker/fsm.go, row by row */
	assert_int_equal(orchard_fsm_action(VM_STATUS_NONE, VM_STATUS_NONE), ACTION_IGNORE);
	assert_int_equal(orchard_fsm_action(VM_STATUS_NONE, VM_STATUS_PENDING), ACTION_DELETE);
	assert_int_equal(orchard_fsm_action(VM_STATUS_NONE, VM_STATUS_RUNNING), ACTION_DELETE);
	assert_int_equal(orchard_fsm_action(VM_STATUS_NONE, VM_STATUS_FAILED), ACTION_DELETE);
	assert_int_equal(orchard_fsm_action(VM_STATUS_PENDING, VM_STATUS_NONE), ACTION_CREATE);
	assert_int_equal(orchard_fsm_action(VM_STATUS_PENDING, VM_STATUS_PENDING),
			 ACTION_MONITOR_PENDING);
	assert_int_equal(orchard_fsm_action(VM_STATUS_PENDING, VM_STATUS_RUNNING),
			 ACTION_REPORT_RUNNING);
	assert_int_equal(orchard_fsm_action(VM_STATUS_PENDING, VM_STATUS_FAILED), ACTION_FAIL);
	assert_int_equal(orchard_fsm_action(VM_STATUS_RUNNING, VM_STATUS_NONE), ACTION_LOST_TRACK);
	assert_int_equal(orchard_fsm_action(VM_STATUS_RUNNING, VM_STATUS_PENDING),
			 ACTION_IMPOSSIBLE);
	assert_int_equal(orchard_fsm_action(VM_STATUS_RUNNING, VM_STATUS_RUNNING),
			 ACTION_MONITOR_RUNNING);
	assert_int_equal(orchard_fsm_action(VM_STATUS_RUNNING, VM_STATUS_FAILED), ACTION_FAIL);
	assert_int_equal(orchard_fsm_action(VM_STATUS_FAILED, VM_STATUS_NONE), ACTION_IGNORE);
	assert_int_equal(orchard_fsm_action(VM_STATUS_FAILED, VM_STATUS_PENDING), ACTION_STOP);
	assert_int_equal(orchard_fsm_action(VM_STATUS_FAILED, VM_STATUS_RUNNING), ACTION_STOP);
	assert_int_equal(orchard_fsm_action(VM_STATUS_FAILED, VM_STATUS_FAILED), ACTION_IGNORE);
	assert_int_equal(orchard_vm_status_parse("running"), VM_STATUS_RUNNING);
	assert_int_equal(orchard_vm_status_parse("bogus"), VM_STATUS_NONE);
	assert_int_equal(orchard_vm_status_parse(NULL), VM_STATUS_NONE);
	assert_string_equal(orchard_action_name(ACTION_LOST_TRACK), "lost-track");
}

static void test_reltime(void **state)
{
	(void)state;
	char b[64];
	struct {
		long d;
		const char *want;
	} cases[] = {
	    {0, "now"},
	    {1, "1 second ago"},
	    {59, "59 seconds ago"},
	    {60, "1 minute ago"},
	    {119, "1 minute ago"},
	    {120, "2 minutes ago"},
	    {3600, "1 hour ago"},
	    {7200, "2 hours ago"},
	    {86400, "1 day ago"},
	    {6 * 86400, "6 days ago"},
	    {7 * 86400, "1 week ago"},
	    {29 * 86400, "4 weeks ago"},
	    {45 * 86400, "1 month ago"},
	    {100 * 86400, "3 months ago"},
	    {400 * 86400, "1 year ago"},
	    {600 * 86400, "2 years ago"},
	    {-30, "30 seconds in the future"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		orchard_reltime(1000000000 - cases[i].d, 1000000000, b, sizeof(b));
		assert_string_equal(b, cases[i].want);
	}
}

static void test_kv_and_conditions(void **state)
{
	(void)state;
	json_t *o = json_object();
	char *err = NULL;
	assert_int_equal(orchard_kv_parse("a=1,b=2", true, o, &err), 0);
	assert_int_equal(orchard_kv_parse("c=3", true, o, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(o, "b")), 2);
	assert_int_equal(json_object_size(o), 3);
	assert_int_equal(orchard_kv_parse("x=y", true, o, &err), -EINVAL);
	assert_non_null(strstr(err, "64-bit unsigned"));
	free(err);
	err = NULL;
	assert_int_equal(orchard_kv_parse("novalue", false, o, &err), -EINVAL);
	free(err);
	json_decref(o);

	json_t *vm = json_object();
	assert_int_equal(orchard_condition_get(vm, "running"), -1);
	assert_true(orchard_condition_set(vm, "running", true));
	assert_false(orchard_condition_set(vm, "running", true));
	assert_true(orchard_condition_set(vm, "running", false));
	assert_int_equal(orchard_condition_get(vm, "running"), 0);
	assert_int_equal(json_array_size(json_object_get(vm, "conditions")), 1);
	json_object_set_new(vm, "name", json_string("my-vm"));
	json_object_set_new(vm, "uid", json_string("0d1a5d3e-6f4b-4c8e-9a9a-1c2d3e4f5a6b"));
	json_object_set_new(vm, "restart_count", json_integer(2));
	char *odn = orchard_odn_of(vm);
	assert_string_equal(odn, "orchard-my-vm-0d1a5d3e-6f4b-4c8e-9a9a-1c2d3e4f5a6b-2");
	free(odn);
	json_decref(vm);
}

static void test_table(void **state)
{
	(void)state;
	const char *cells[] = {"Name", "Res", "Paused", "a", "x: 1\ny: 22", "false"};
	struct strbuf out = STRBUF_INIT;
	orchard_table(cells, 2, 3, &out);
	/* uitable: every cell padded to its column, tab-joined; a two-line cell spreads */
	assert_string_equal(out.buf, "Name\tRes  \tPaused\n"
				     "a   \tx: 1 \tfalse \n"
				     "    \ty: 22\t      ");
	strbuf_release(&out);
}

static void test_config_yaml(void **state)
{
	(void)state;
	struct orchard_context ctx[2] = {
	    {.name = (char *)"zeta",
	     .url = (char *)"https://z:6120",
	     .sa_name = (char *)"w",
	     .sa_token = (char *)"t{:#'\" x"},
	    {.name = (char *)"alpha",
	     .url = (char *)"http://127.0.0.1:6120",
	     .cert_pem = (char *)cert_pem,
	     .cert_pem_len = sizeof(cert_pem) - 1},
	};
	struct orchard_config c = {.default_context = (char *)"zeta", .contexts = ctx, .n = 2};
	char *text = orchard_config_format(&c);
	/* Orchard's (yaml.v3) shape: 4-space indents, sorted contexts, empty fields left out */
	assert_non_null(strstr(text,
			       "default-context: zeta\ncontexts:\n    alpha:\n"
			       "        url: http://127.0.0.1:6120\n        certificate: LS0t"));
	assert_null(strstr(text, "serviceAccountName: \n"));
	struct orchard_config back;
	char *err = NULL;
	assert_int_equal(orchard_config_parse(text, strlen(text), &back, &err), 0);
	assert_string_equal(back.default_context, "zeta");
	assert_int_equal(back.n, 2);
	struct orchard_context *z = orchard_config_find(&back, "zeta");
	assert_non_null(z);
	assert_string_equal(z->sa_token, "t{:#'\" x");
	struct orchard_context *a = orchard_config_find(&back, "alpha");
	assert_int_equal(a->cert_pem_len, sizeof(cert_pem) - 1);
	assert_memory_equal(a->cert_pem, cert_pem, a->cert_pem_len);
	assert_null(a->sa_name);
	orchard_config_release(&back);
	free(text);

	const char *bad[] = {"contexts: [1, 2]\n", "- a\n- b\n", "contexts:\n  x: [\n",
			     "contexts:\n  x:\n    certificate: '!!notbase64'\n"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(orchard_config_parse(bad[i], strlen(bad[i]), &back, &err),
				 -EBADMSG);
		assert_non_null(err);
		free(err);
		err = NULL;
	}
	assert_int_equal(orchard_config_parse("", 0, &back, &err), 0);
	assert_int_equal(back.n, 0);
}

static void test_client_helpers(void **state)
{
	(void)state;
	char *u = NULL;
	assert_int_equal(orchard_url_normalize("example.com", &u), 0);
	assert_string_equal(u, "https://example.com:6120");
	free(u);
	assert_int_equal(orchard_url_normalize("http://127.0.0.1:1234/", &u), 0);
	assert_string_equal(u, "http://127.0.0.1:1234");
	free(u);
	assert_int_equal(orchard_url_normalize("https://h/prefix", &u), 0);
	assert_string_equal(u, "https://h:6120/prefix");
	free(u);
	assert_int_equal(orchard_url_normalize("ftp://h", &u), -EINVAL);
	assert_int_equal(orchard_url_normalize("", &u), -EINVAL);

	char *e = orchard_escape("worker=w 1/ä");
	assert_string_equal(e, "worker%3Dw%201%2F%C3%A4");
	free(e);

	char *dns = NULL, *fp = NULL;
	assert_int_equal(orchard_cert_first_dns_name(cert_pem, sizeof(cert_pem) - 1, &dns), 0);
	assert_string_equal(dns, "orchard-controller");
	free(dns);
	assert_int_equal(orchard_cert_fingerprint(cert_pem, sizeof(cert_pem) - 1, &fp), 0);
	assert_string_equal(fp, "65 CC 6C 91 CE 1B A2 19 74 54 63 29 D2 95 11 B9 6B 73 9B 8C F7 2E "
				"C0 3E 46 58 18 FE 66 7D 7D 62");
	free(fp);
	assert_int_equal(orchard_cert_first_dns_name("junk", 4, &dns), -EINVAL);

	/* several controllers, one of them malformed */
	struct orchard_client *c = NULL;
	char *err = NULL;
	struct orchard_client_options o = {.url = "http://a:1,b"};
	assert_int_equal(orchard_client_new(&o, &c, &err), 0);
	assert_string_equal(orchard_client_url(c), "http://a:1,https://b:6120");
	assert_int_equal(orchard_client_endpoints(c), 2);
	orchard_client_free(c);
	o.url = "http://a:1,ftp://x";
	assert_int_equal(orchard_client_new(&o, &c, &err), -EINVAL);
	assert_non_null(strstr(err, "ftp://x"));
	free(err);
	assert_int_equal(orchard_status_errno(404), -ENOENT);
	assert_int_equal(orchard_status_errno(409), -EEXIST);
	assert_int_equal(orchard_status_errno(503), -EAGAIN);
	assert_string_equal(orchard_status_text(412), "Precondition Failed");
}

/* ocli_parse of "t" and the arguments given (NULL-terminated). */
static struct strvec argv = STRVEC_INIT; /* string flags point into it until the next parse */

static int parse(const struct ocli_cmd *c, struct strvec *args, ...)
{
	va_list ap;
	strvec_clear(&argv);
	strvec_push(&argv, "t");
	va_start(ap, args);
	for (const char *a = va_arg(ap, const char *); a; a = va_arg(ap, const char *))
		strvec_push(&argv, a);
	va_end(ap);
	return ocli_parse(c, (int)argv.nr, argv.v, args);
}

static void test_flags(void **state)
{
	(void)state;
	const char *name = NULL;
	bool b = false, q = false;
	uint64_t n = 7;
	struct strvec slice = STRVEC_INIT, args = STRVEC_INIT;
	json_t *map = json_object();
	const struct ocli_flag flags[] = {
	    {"name", 0, OCLI_STRING, &name, ""},
	    {"headless", 0, OCLI_BOOL, &b, ""},
	    {"quiet", 'q', OCLI_BOOL, &q, ""},
	    {"cpu", 'c', OCLI_U64, &n, ""},
	    {"allow", 0, OCLI_SLICE, &slice, ""},
	    {"resources", 0, OCLI_MAP_U64, map, ""},
	    {0},
	};
	const struct ocli_cmd c = {"t", "A B", "test", flags, 1, 2};
	b = true;
	assert_int_equal(parse(&c, &args, "x", "--name=n1", "--headless=false", "-q", "-c4",
			       "--allow", "a,b", "--allow=c", "--resources", "k=1",
			       "--resources=l=2", "y", NULL),
			 0);
	assert_string_equal(name, "n1");
	assert_false(b);
	assert_true(q);
	assert_int_equal(n, 4);
	assert_int_equal(slice.nr, 3);
	assert_int_equal(json_object_size(map), 2);
	assert_int_equal(args.nr, 2);
	assert_string_equal(args.v[1], "y");

	assert_int_equal(parse(&c, &args, "x", "--bogus", NULL), -EINVAL);
	assert_int_equal(parse(&c, &args, "x", "--cpu", "abc", NULL), -EINVAL);
	assert_int_equal(parse(&c, &args, "x", "--name", NULL), -EINVAL);
	assert_int_equal(parse(&c, &args, NULL), -EINVAL);
	assert_int_equal(parse(&c, &args, "a", "b", "c", NULL), -EINVAL);
	assert_int_equal(parse(&c, &args, "x", "--", "--name", NULL), 0);
	assert_string_equal(args.v[1], "--name");
	strvec_clear(&slice);
	strvec_clear(&args);
	strvec_clear(&argv);
	json_decref(map);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fsm),
	    cmocka_unit_test(test_reltime),
	    cmocka_unit_test(test_kv_and_conditions),
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_config_yaml),
	    cmocka_unit_test(test_client_helpers),
	    cmocka_unit_test(test_flags),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
