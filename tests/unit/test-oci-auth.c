// SPDX-License-Identifier: Apache-2.0
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/client.h"
#include "oci/auth.h"
#include "oci/credentials.h"

/* Tart's WWWAuthenticateTests: the Docker token-spec example header. */
static void test_www_auth_docker_example(void **state)
{
	(void)state;
	struct oci_www_auth a = OCI_WWW_AUTH_INIT;
	assert_int_equal(oci_www_auth_parse("Bearer realm=\"https://auth.docker.io/token\","
					    "service=\"registry.docker.io\","
					    "scope=\"repository:samalba/my-app:pull,push\"",
					    &a),
			 0);
	assert_string_equal(a.scheme, "Bearer");
	assert_string_equal(oci_www_auth_get(&a, "realm"), "https://auth.docker.io/token");
	assert_string_equal(oci_www_auth_get(&a, "service"), "registry.docker.io");
	assert_string_equal(oci_www_auth_get(&a, "scope"), "repository:samalba/my-app:pull,push");
	assert_null(oci_www_auth_get(&a, "error"));

	char *url = oci_token_url(&a);
	assert_non_null(url);
	assert_string_equal(url, "https://auth.docker.io/token?scope=repository%3Asamalba%2Fmy-app%"
				 "3Apull%2Cpush&service=registry.docker.io");
	free(url);
	oci_www_auth_release(&a);
}

static void test_www_auth_unquoted_and_spaces(void **state)
{
	(void)state;
	struct oci_www_auth a = OCI_WWW_AUTH_INIT;
	assert_int_equal(oci_www_auth_parse("Bearer realm=https://auth.example.com/token?x=1, "
					    "service=example,  error=\"a \\\"quoted\\\" word\"",
					    &a),
			 0);
	assert_string_equal(oci_www_auth_get(&a, "REALM"), "https://auth.example.com/token?x=1");
	assert_string_equal(oci_www_auth_get(&a, "service"), "example");
	assert_string_equal(oci_www_auth_get(&a, "error"), "a \"quoted\" word");
	/* the realm's own query is replaced by scope/service */
	char *url = oci_token_url(&a);
	assert_string_equal(url, "https://auth.example.com/token?service=example");
	free(url);
	oci_www_auth_release(&a);

	assert_int_equal(oci_www_auth_parse("Basic realm=\"tart-test\"", &a), 0);
	assert_string_equal(a.scheme, "Basic");
	assert_null(oci_token_url(&a)); /* not a URL */
	oci_www_auth_release(&a);
}

static void test_www_auth_rejected(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"Whatever", "Bearer ", "Bearer whatever", "", "Bearer realm=\"unterminated",
		"Bearer =x", "Bearer realm=\"a\" junk",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct oci_www_auth a = OCI_WWW_AUTH_INIT;
		assert_int_equal(oci_www_auth_parse(bad[i], &a), -EBADMSG);
	}
}

/* Tart's TokenResponseTests. */
static void test_token_response(void **state)
{
	(void)state;
	struct oci_token t = {0};
	const time_t now = 1700000000;
	const char *j = "{\"token\":\"abc\"}";
	assert_int_equal(oci_token_parse(j, strlen(j), now, &t), 0);
	assert_string_equal(t.token, "abc");
	assert_int_equal(t.expires_at, now + 60); /* default validity */
	assert_true(oci_token_valid(&t, now + 59));
	assert_false(oci_token_valid(&t, now + 60));
	oci_token_release(&t);

	j = "{\"access_token\":\"xyz\",\"expires_in\":300}";
	assert_int_equal(oci_token_parse(j, strlen(j), now, &t), 0);
	assert_string_equal(t.token, "xyz");
	assert_int_equal(t.expires_at, now + 300);
	oci_token_release(&t);

	/* issued_at in the past: already invalid */
	j = "{\"token\":\"old\",\"expires_in\":60,\"issued_at\":\"2009-11-10T23:00:00Z\"}";
	assert_int_equal(oci_token_parse(j, strlen(j), now, &t), 0);
	assert_false(oci_token_valid(&t, now));
	oci_token_release(&t);

	j = "{\"token\":\"frac\",\"issued_at\":\"2023-11-14T22:13:20.123456789Z\"}";
	assert_int_equal(oci_token_parse(j, strlen(j), now, &t), 0);
	assert_int_equal(t.expires_at, 1700000000 + 60);
	oci_token_release(&t);

	/* Hostile lifetimes are clamped to a day, never overflow, never go negative. */
	static const char *const huge[] = {
	    "{\"token\":\"a\",\"expires_in\":9223372036854775807}",
	    "{\"token\":\"a\",\"expires_in\":1e300}",
	    "{\"token\":\"a\",\"expires_in\":9223372036854775807,"
	    "\"issued_at\":\"2023-11-14T22:13:20Z\"}",
	};
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		assert_int_equal(oci_token_parse(huge[i], strlen(huge[i]), now, &t), 0);
		assert_int_equal(t.expires_at, now + 24 * 3600);
		oci_token_release(&t);
	}
	static const char *const nonpositive[] = {"{\"token\":\"a\",\"expires_in\":-1e300}",
						  "{\"token\":\"a\",\"expires_in\":0}",
						  "{\"token\":\"a\",\"expires_in\":null}"};
	for (size_t i = 0; i < sizeof(nonpositive) / sizeof(nonpositive[0]); i++) {
		assert_int_equal(oci_token_parse(nonpositive[i], strlen(nonpositive[i]), now, &t), 0);
		assert_int_equal(t.expires_at, now + 60);
		oci_token_release(&t);
	}

	static const char *const bad[] = {"{}", "{\"token\":\"\"}", "[1]", "not json",
					  "{\"token\":5}", "{\"token\":\"a\",\"expires_in\":\"9\"}",
					  "{\"token\":\"a\",\"token\":\"b\"}",
					  "{\"token\":\"a\",\"issued_at\":\"yesterday\"}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(oci_token_parse(bad[i], strlen(bad[i]), now, &t), -EBADMSG);
}

static void test_base64(void **state)
{
	(void)state;
	char *s = oci_basic_credentials("user", "p:ss");
	assert_string_equal(s, "Basic dXNlcjpwOnNz");
	free(s);
	char *d = NULL;
	size_t n = 0;
	assert_int_equal(oci_base64_decode("dXNlcjpwYXNz", &d, &n), 0);
	assert_string_equal(d, "user:pass");
	assert_int_equal(n, 9);
	free(d);
	assert_int_equal(oci_base64_decode("YQ==", &d, &n), 0);
	assert_string_equal(d, "a");
	assert_int_equal(n, 1);
	free(d);
	assert_int_equal(oci_base64_decode("abc", &d, &n), -EBADMSG);
	assert_int_equal(oci_base64_decode("a*c=", &d, &n), -EBADMSG);

	/* past the header-sized cap only with a larger one (etcd values) */
	size_t big = (1024 * 1024) / 4 * 4 + 4;
	char *enc = malloc(big + 1);
	memset(enc, 'A', big);
	enc[big] = 0;
	assert_int_equal(oci_base64_decode(enc, &d, &n), -EBADMSG);
	assert_int_equal(oci_base64_decode_max(enc, 2 * big, &d, &n), 0);
	assert_int_equal(n, big / 4 * 3);
	free(d);
	assert_int_equal(oci_base64_decode_max("YWJj", 3, &d, &n), -EBADMSG);
	free(enc);
}

/* Tart's URLAbsolutizationTests, plus the relative forms registries send. */
static void test_location_absolutize(void **state)
{
	(void)state;
	const char *base = "https://ghcr.io/v2/";
	char *u = oci_url_absolutize(base, "/v2/org/repo/blobs/uploads/uuid?_state=abc%3D");
	assert_string_equal(u, "https://ghcr.io/v2/org/repo/blobs/uploads/uuid?_state=abc%3D");
	free(u);
	u = oci_url_absolutize(base, "https://other.example.com:8443/upload?x=1");
	assert_string_equal(u, "https://other.example.com:8443/upload?x=1");
	free(u);
	u = oci_url_absolutize(base, "uuid?x=1");
	assert_string_equal(u, "https://ghcr.io/v2/uuid?x=1");
	free(u);

	u = http_url_origin("HTTPS://Example.COM/v2/x");
	assert_string_equal(u, "https://example.com:443");
	free(u);
	u = http_url_origin("http://127.0.0.1:5000/v2/");
	assert_string_equal(u, "http://127.0.0.1:5000");
	free(u);
	assert_null(http_url_origin("not a url"));
}

static void test_retry_after(void **state)
{
	(void)state;
	struct http_response r = HTTP_RESPONSE_INIT;
	assert_int_equal(http_retry_after(&r), -1);
	strvec_push(&r.headers, "retry-after: 7");
	assert_int_equal(http_retry_after(&r), 7);
	strvec_clear(&r.headers);
	strvec_push(&r.headers, "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT");
	assert_int_equal(http_retry_after(&r), 0); /* in the past */
	http_response_release(&r);
}

/* Tart's DockerConfigTests: credHelpers by exact host and by a regex matching all of it. */
static void test_cred_helper_matching(void **state)
{
	(void)state;
	assert_true(oci_cred_helper_key_matches("gcr.io", "gcr.io"));
	assert_true(oci_cred_helper_key_matches("(.*).dkr.ecr.(.*).amazonaws.com",
						"123456789.dkr.ecr.us-east-1.amazonaws.com"));
	assert_false(oci_cred_helper_key_matches("(.*).dkr.ecr.(.*).amazonaws.com",
						 "ghcr.io"));
	/* whole match only */
	assert_false(oci_cred_helper_key_matches("gcr.io", "eu.gcr.io.evil.com"));
	assert_false(oci_cred_helper_key_matches("[", "x")); /* invalid regex: no match */
}

static json_t *config(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	assert_non_null(j);
	return j;
}

static void test_docker_config_find(void **state)
{
	(void)state;
	char *u = NULL, *p = NULL, *h = NULL;
	json_t *c = config("{\"auths\":{\"127.0.0.1:5000\":{\"auth\":\"dXNlcjpwYXNz\"},"
			   "\"https://index.docker.io/v1/\":{\"auth\":\"aHViOmh1Yg==\"},"
			   "\"https://quay.io\":{\"username\":\"q\",\"password\":\"w\"},"
			   "\"bad.io\":{\"auth\":\"bm9jb2xvbg==\"},"
			   "\"colon.io\":{\"auth\":\"dTpwOnc=\"},"
			   "\"ecr.local\":{}},"
			   "\"credHelpers\":{\"(.*).dkr.ecr.(.*).amazonaws.com\":\"ecr-login\","
			   "\"ecr.local\":\"local\"}}");
	assert_int_equal(oci_docker_config_find(c, "127.0.0.1:5000", &u, &p, &h), 1);
	assert_string_equal(u, "user");
	assert_string_equal(p, "pass");
	free(u);
	free(p);
	assert_int_equal(oci_docker_config_find(c, "docker.io", &u, &p, &h), 1);
	assert_string_equal(u, "hub");
	free(u);
	free(p);
	assert_int_equal(oci_docker_config_find(c, "quay.io", &u, &p, &h), 1);
	assert_string_equal(u, "q");
	assert_string_equal(p, "w");
	free(u);
	free(p);
	assert_int_equal(oci_docker_config_find(c, "bad.io", &u, &p, &h), -EBADMSG);
	/* "u:p:w": the password keeps its colon */
	assert_int_equal(oci_docker_config_find(c, "colon.io", &u, &p, &h), 1);
	assert_string_equal(u, "u");
	assert_string_equal(p, "p:w");
	free(u);
	free(p);
	assert_int_equal(oci_docker_config_find(c, "1.dkr.ecr.eu-west-1.amazonaws.com", &u, &p, &h),
			 2);
	assert_string_equal(h, "ecr-login");
	free(h);
	/* an empty auths placeholder falls through to the helper */
	assert_int_equal(oci_docker_config_find(c, "ecr.local", &u, &p, &h), 2);
	assert_string_equal(h, "local");
	free(h);
	assert_int_equal(oci_docker_config_find(c, "ghcr.io", &u, &p, &h), 0);
	json_decref(c);

	c = config("{\"credsStore\":\"pass\"}");
	assert_int_equal(oci_docker_config_find(c, "ghcr.io", &u, &p, &h), 2);
	assert_string_equal(h, "pass");
	free(h);
	json_decref(c);
}

/*
 * A credsStore/credHelpers name with '/' would run a program relative to the working
 * directory ("docker-credential-x/../evil"): it is refused, nothing runs.
 */
static void test_cred_helper_name_is_not_a_path(void **state)
{
	(void)state;
	char dir[] = "/tmp/tart-cred-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char old_cwd[4096];
	assert_non_null(getcwd(old_cwd, sizeof(old_cwd)));
	assert_int_equal(chdir(dir), 0);
	assert_int_equal(mkdir("docker-credential-x", 0755), 0);
	FILE *f = fopen("evil", "w");
	assert_non_null(f);
	fputs("#!/bin/sh\necho '{\"Username\":\"evil\",\"Secret\":\"s\"}'\n", f);
	fclose(f);
	assert_int_equal(chmod("evil", 0755), 0);
	f = fopen("config.json", "w");
	assert_non_null(f);
	fputs("{\"credsStore\":\"x/../evil\"}", f);
	fclose(f);
	setenv("DOCKER_CONFIG", dir, 1);
	unsetenv("TART_REGISTRY_USERNAME");
	char *u = NULL, *p = NULL;
	assert_int_equal(oci_credentials_lookup("example.com", &u, &p), -ENOENT);
	assert_null(u);
	unsetenv("DOCKER_CONFIG");
	assert_int_equal(chdir(old_cwd), 0);
	char path[4200];
	snprintf(path, sizeof(path), "%s/docker-credential-x", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/evil", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	unlink(path);
	rmdir(dir);
}

static void expect_text(const char *body, size_t len, const char *want)
{
	char *t = oci_error_text(body, len);
	if (!want) {
		assert_null(t);
		return;
	}
	assert_non_null(t);
	assert_string_equal(t, want);
	free(t);
}

/* What a person sees of an error body: the registry's words, never its JSON or binary. */
static void test_error_text(void **state)
{
	(void)state;
	const char *j = "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication "
			"required\",\"detail\":[{\"Type\":\"repository\"}]}]}";
	expect_text(j, strlen(j), "UNAUTHORIZED: authentication required");
	j = "{\"errors\":[{\"code\":\"A\"},{\"message\":\"b\"}]}";
	expect_text(j, strlen(j), "A; b");
	j = "{\"details\":\"incorrect username or password\"}";
	expect_text(j, strlen(j), "incorrect username or password");
	expect_text("storage backend down\nmore", 25, "storage backend down");
	expect_text("<html><body>502</body></html>", 29, NULL);
	expect_text("\x1f\x8b\x08\x00\x00", 5, NULL); /* gzip */
	expect_text("", 0, NULL);
	expect_text("{}", 2, NULL);
	j = "{\"errors\":[{\"code\":\"X\",\"message\":\"\\u001b[31mred\"}]}";
	expect_text(j, strlen(j), NULL); /* an escape sequence is not shown */
	char big[4000];
	memset(big, 'a', sizeof(big));
	char *t = oci_error_text(big, sizeof(big));
	assert_non_null(t);
	assert_true(strlen(t) <= 300);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_www_auth_docker_example),
		cmocka_unit_test(test_www_auth_unquoted_and_spaces),
		cmocka_unit_test(test_www_auth_rejected),
		cmocka_unit_test(test_token_response),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_location_absolutize),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_cred_helper_matching),
		cmocka_unit_test(test_docker_config_find),
		cmocka_unit_test(test_cred_helper_name_is_not_a_path),
		cmocka_unit_test(test_error_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
