// SPDX-License-Identifier: Apache-2.0
/* The controller's TLS certificate: load it, or make Orchard's self-signed one once. */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "orchard/controller/internal.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/macro.h"

static char *bio_string(BIO *b)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);
	return xstrndup(data, (size_t)n);
}

/* Generate key and certificate as PEM strings (PKCS#8 key, as Orchard writes it). */
static int generate(char **ret_cert, char **ret_key)
{
	int r = -EIO;
	EVP_PKEY *key = EVP_EC_gen("P-384");
	X509 *x = X509_new();
	BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
	if (!key || !x || !kb || !cb)
		goto finish;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 0);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600 + 3L * 24 * 3600);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"Orchard Controller", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_set_pubkey(x, key);
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	static const struct {
		int nid;
		const char *value;
	} exts[] = {
	    {NID_basic_constraints, "critical,CA:FALSE"},
	    {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
	    {NID_ext_key_usage, "clientAuth,serverAuth"},
	    {NID_subject_alt_name, "DNS:orchard-controller"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(exts); i++) {
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, exts[i].nid, exts[i].value);
		if (!ext)
			goto finish;
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (!X509_sign(x, key, EVP_sha384()))
		goto finish;
	if (!PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509(cb, x))
		goto finish;
	*ret_key = bio_string(kb);
	*ret_cert = bio_string(cb);
	r = 0;
finish:
	EVP_PKEY_free(key);
	X509_free(x);
	BIO_free(kb);
	BIO_free(cb);
	return r;
}

int tls_fingerprint_der(const unsigned char *der, size_t len, char **ret)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	if (!EVP_Digest(der, len, md, &mdlen, EVP_sha256(), NULL))
		return -EIO;
	char *out = xmalloc(32 * 3), *p = out;
	for (unsigned i = 0; i < 32; i++)
		p += sprintf(p, i ? " %02X" : "%02X", md[i]);
	*ret = out;
	return 0;
}

int tls_fingerprint(const char *pem, char **ret)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!x)
		return -EBADMSG;
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);
	X509_free(x);
	if (n <= 0)
		return -EBADMSG;
	int r = tls_fingerprint_der(der, (size_t)n, ret);
	OPENSSL_free(der);
	return r;
}

int tls_prepare(struct controller *c, char **ret_cert, char **ret_key)
{
	_cleanup_free_ char *cert = NULL, *key = NULL;
	if (c->o.cert_path || c->o.key_path) {
		if (!c->o.cert_path || !c->o.key_path)
			return log_error_errno(-EINVAL, "--controller-cert and --controller-key go "
							"together");
		cert = xstrdup(c->o.cert_path);
		key = xstrdup(c->o.key_path);
	} else {
		int r = fs_mkdir_p(c->o.data_dir, 0700);
		if (r < 0)
			return log_error_errno(r, "cannot create '%s'", c->o.data_dir);
		cert = path_join(c->o.data_dir, "controller.crt");
		key = path_join(c->o.data_dir, "controller.key");
		if (!fs_exists(cert) || !fs_exists(key)) {
			_cleanup_free_ char *cpem = NULL, *kpem = NULL;
			r = generate(&cpem, &kpem);
			if (r < 0)
				return log_error_errno(
				    r, "cannot generate the controller certificate");
			r = fs_write_atomic(key, kpem, strlen(kpem), 0600);
			if (r == 0)
				r = fs_write_atomic(cert, cpem, strlen(cpem), 0644);
			if (r < 0)
				return log_error_errno(r, "cannot write '%s'", cert);
		}
	}
	struct strbuf sb = STRBUF_INIT;
	int r = fs_read_full(cert, 1 << 20, &sb);
	if (r < 0) {
		strbuf_release(&sb);
		return log_error_errno(r, "cannot read '%s'", cert);
	}
	c->cert_pem = strbuf_detach(&sb, NULL);
	r = tls_fingerprint(c->cert_pem, &c->fingerprint);
	if (r < 0)
		return log_error_errno(r, "'%s' is not a PEM certificate", cert);
	*ret_cert = TAKE_PTR(cert);
	*ret_key = TAKE_PTR(key);
	return 0;
}
