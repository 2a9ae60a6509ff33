// SPDX-License-Identifier: Apache-2.0
#include "oci/ref.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/macro.h"

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

void oci_ref_release(struct oci_ref *ref)
{
	free(ref->host);
	free(ref->namespace);
	free(ref->tag);
	free(ref->digest);
	*ref = (struct oci_ref)OCI_REF_INIT;
}

bool oci_digest_valid(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
		return false;
	for (const char *p = d + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static int fail(char **ret_err, const char *s, size_t pos, const char *what)
{
	if (ret_err)
		*ret_err = xasprintf("%s (character %zu)", what, pos + 1);
	(void)s;
	return -EINVAL;
}

/* Parse a host "a.b-c[:port]"; returns its length or -1. */
static long scan_host(const char *s)
{
	size_t i = 0;
	if (!is_alnum(s[0]))
		return -1;
	while (is_alnum(s[i]) || s[i] == '.' || s[i] == '-') {
		if ((s[i] == '.' || s[i] == '-') && !is_alnum(s[i + 1]))
			return -1;
		i++;
	}
	if (s[i] == ':') {
		size_t j = i + 1;
		while (s[j] >= '0' && s[j] <= '9')
			j++;
		if (j == i + 1)
			return -1;
		i = j;
	}
	return (long)i;
}

/* Namespace component: alnum runs joined by exactly one of . - _ */
static long scan_component(const char *s)
{
	size_t i = 0;
	if (!is_alnum(s[0]))
		return -1;
	while (s[i]) {
		if (is_alnum(s[i])) {
			i++;
			continue;
		}
		if ((s[i] == '.' || s[i] == '-' || s[i] == '_') && is_alnum(s[i + 1])) {
			i++;
			continue;
		}
		break;
	}
	return (long)i;
}

int oci_ref_parse(const char *s, struct oci_ref *ret, char **ret_err)
{
	struct oci_ref ref = OCI_REF_INIT;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p >= 0x80 || iscntrl((unsigned char)*p))
			return fail(ret_err, s, (size_t)(p - s), "non-ASCII or control character");
	long h = scan_host(s);
	if (h <= 0)
		return fail(ret_err, s, 0, "improperly formatted host");
	if (s[h] != '/')
		return fail(ret_err, s, (size_t)h, "expected '/' after the host");
	size_t i = (size_t)h + 1, ns_start = i;
	for (;;) {
		long c = scan_component(s + i);
		if (c <= 0)
			return fail(ret_err, s, i, "improperly formatted namespace");
		i += (size_t)c;
		if (s[i] != '/')
			break;
		i++;
	}
	size_t ns_end = i;
	const char *tag = NULL, *digest = NULL;
	if (s[i] == ':') {
		size_t t = i + 1, j = t;
		while (is_alnum(s[j]) || ((s[j] == '.' || s[j] == '-' || s[j] == '_') && j > t))
			j++;
		if (j == t || s[j] || j - t > 128)
			return fail(ret_err, s, j, "improperly formatted tag");
		tag = s + t;
	} else if (s[i] == '@') {
		if (!oci_digest_valid(s + i + 1))
			return fail(ret_err, s, i + 1, "unknown reference format");
		digest = s + i + 1;
	} else if (s[i]) {
		return fail(ret_err, s, i, "unexpected character");
	}
	ref.host = xstrndup(s, (size_t)h);
	ref.namespace = xstrndup(s + ns_start, ns_end - ns_start);
	if (digest)
		ref.digest = xstrdup(digest);
	else
		ref.tag = xstrdup(tag ? tag : "latest");
	*ret = ref;
	return 0;
}

bool oci_ref_is_remote(const char *s)
{
	struct oci_ref ref = OCI_REF_INIT;
	if (oci_ref_parse(s, &ref, NULL) < 0)
		return false;
	oci_ref_release(&ref);
	return true;
}

const char *oci_ref_reference(const struct oci_ref *ref)
{
	return ref->digest ? ref->digest : ref->tag;
}

char *oci_ref_to_string(const struct oci_ref *ref)
{
	return xasprintf("%s/%s%s%s", ref->host, ref->namespace, ref->digest ? "@" : ":",
			 oci_ref_reference(ref));
}
