// SPDX-License-Identifier: Apache-2.0
#include "orchard/config.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "oci/auth.h"
#include "util/alloc.h"
#include "util/fs.h"

void orchard_context_release(struct orchard_context *c)
{
	free(c->name);
	free(c->url);
	free(c->cert_pem);
	free(c->sa_name);
	if (c->sa_token)
		explicit_bzero(c->sa_token, strlen(c->sa_token));
	free(c->sa_token);
	*c = (struct orchard_context){0};
}

void orchard_config_release(struct orchard_config *c)
{
	for (size_t i = 0; i < c->n; i++)
		orchard_context_release(&c->contexts[i]);
	free(c->contexts);
	free(c->default_context);
	*c = (struct orchard_config){0};
}

static void context_copy(struct orchard_context *dst, const struct orchard_context *src)
{
	*dst = (struct orchard_context){
	    .name = src->name ? xstrdup(src->name) : NULL,
	    .url = src->url ? xstrdup(src->url) : NULL,
	    .sa_name = src->sa_name ? xstrdup(src->sa_name) : NULL,
	    .sa_token = src->sa_token ? xstrdup(src->sa_token) : NULL,
	};
	if (src->cert_pem && src->cert_pem_len) {
		dst->cert_pem = xmalloc(src->cert_pem_len + 1);
		memcpy(dst->cert_pem, src->cert_pem, src->cert_pem_len);
		dst->cert_pem[src->cert_pem_len] = 0;
		dst->cert_pem_len = src->cert_pem_len;
	}
}

struct orchard_context *orchard_config_find(struct orchard_config *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (streq(c->contexts[i].name, name))
			return &c->contexts[i];
	return NULL;
}

int orchard_home_dir(char **ret, char **ret_error)
{
	const char *home = getenv("ORCHARD_HOME");
	if (!home || !*home)
		home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || !*home) {
		*ret_error = xstrdup("failed to retrieve Orchard's home directory path: no home "
				     "directory");
		return -ENOENT;
	}
	_cleanup_free_ char *dir = path_join(home, ".orchard");
	int r = fs_mkdir_p(dir, 0700);
	if (r < 0) {
		*ret_error = xasprintf("failed to retrieve Orchard's home directory path: cannot "
				       "create directory %s: %s",
				       dir, strerror(-r));
		return r;
	}
	*ret = TAKE_PTR(dir);
	return 0;
}

/* ---- YAML ---------------------------------------------------------------------------------- */

static int emit_write(void *data, unsigned char *buffer, size_t size)
{
	strbuf_putn(data, buffer, size);
	return 1;
}

static void emit_scalar(yaml_emitter_t *e, const char *s)
{
	yaml_event_t ev;
	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
				     YAML_ANY_SCALAR_STYLE);
	yaml_emitter_emit(e, &ev);
}

static void emit_pair(yaml_emitter_t *e, const char *k, const char *v)
{
	if (!v || !*v)
		return; /* omitempty, as Orchard's struct tags say */
	emit_scalar(e, k);
	emit_scalar(e, v);
}

static void emit_mapping(yaml_emitter_t *e, bool start)
{
	yaml_event_t ev;
	if (start)
		yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
	else
		yaml_mapping_end_event_initialize(&ev);
	yaml_emitter_emit(e, &ev);
}

static int context_cmp(const void *a, const void *b)
{
	return strcmp(((const struct orchard_context *)a)->name,
		      ((const struct orchard_context *)b)->name);
}

char *orchard_config_format(const struct orchard_config *c)
{
	struct strbuf out = STRBUF_INIT;
	yaml_emitter_t e;
	yaml_event_t ev;
	yaml_emitter_initialize(&e);
	yaml_emitter_set_output(&e, emit_write, &out);
	yaml_emitter_set_indent(&e, 4);
	yaml_emitter_set_width(&e, -1);
	yaml_emitter_set_unicode(&e, 1);
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	yaml_emitter_emit(&e, &ev);
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	yaml_emitter_emit(&e, &ev);
	emit_mapping(&e, true);
	emit_pair(&e, "default-context", c->default_context);
	if (c->n) {
		/* yaml.v3 writes map keys sorted */
		struct orchard_context *sorted = xcalloc(c->n, sizeof(*sorted));
		memcpy(sorted, c->contexts, c->n * sizeof(*sorted));
		qsort(sorted, c->n, sizeof(*sorted), context_cmp);
		emit_scalar(&e, "contexts");
		emit_mapping(&e, true);
		for (size_t i = 0; i < c->n; i++) {
			const struct orchard_context *x = &sorted[i];
			emit_scalar(&e, x->name);
			emit_mapping(&e, true);
			emit_pair(&e, "url", x->url);
			if (x->cert_pem && x->cert_pem_len) {
				_cleanup_free_ char *b =
				    oci_base64_encode(x->cert_pem, x->cert_pem_len);
				emit_pair(&e, "certificate", b);
			}
			emit_pair(&e, "serviceAccountName", x->sa_name);
			emit_pair(&e, "serviceAccountToken", x->sa_token);
			emit_mapping(&e, false);
		}
		emit_mapping(&e, false);
		free(sorted);
	}
	emit_mapping(&e, false);
	yaml_document_end_event_initialize(&ev, 1);
	yaml_emitter_emit(&e, &ev);
	yaml_stream_end_event_initialize(&ev);
	yaml_emitter_emit(&e, &ev);
	yaml_emitter_flush(&e);
	yaml_emitter_delete(&e);
	return strbuf_detach(&out, NULL);
}

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int parse_context(yaml_document_t *d, const char *name, yaml_node_t *m,
			 struct orchard_context *ret, char **ret_error)
{
	*ret = (struct orchard_context){.name = xstrdup(name)};
	if (m->type != YAML_MAPPING_NODE) {
		if (m->type == YAML_SCALAR_NODE && !*scalar(m))
			return 0; /* "name:" with nothing: an empty context */
		*ret_error = xasprintf("context %s: expected a mapping", name);
		return -EBADMSG;
	}
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		const char *k = scalar(yaml_document_get_node(d, p->key));
		const char *v = scalar(yaml_document_get_node(d, p->value));
		if (!k || !v) {
			*ret_error = xasprintf("context %s: expected string keys and values", name);
			return -EBADMSG;
		}
		char **slot = streq(k, "url")			? &ret->url
			      : streq(k, "serviceAccountName")	? &ret->sa_name
			      : streq(k, "serviceAccountToken") ? &ret->sa_token
								: NULL;
		if (slot) {
			free(*slot);
			*slot = xstrdup(v);
		} else if (streq(k, "certificate") && *v) {
			free(ret->cert_pem);
			ret->cert_pem = NULL;
			if (oci_base64_decode(v, &ret->cert_pem, &ret->cert_pem_len) < 0) {
				*ret_error =
				    xasprintf("context %s: the certificate is not base64", name);
				return -EBADMSG;
			}
		}
	}
	return 0;
}

int orchard_config_parse(const char *buf, size_t len, struct orchard_config *ret, char **ret_error)
{
	struct orchard_config c = {0};
	yaml_parser_t p;
	yaml_document_t d;
	int r = 0;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&p, &d)) {
		*ret_error =
		    xasprintf("invalid YAML: %s at line %zu",
			      p.problem ? p.problem : "syntax error", p.problem_mark.line + 1);
		yaml_parser_delete(&p);
		return -EBADMSG;
	}
	yaml_node_t *root = yaml_document_get_root_node(&d);
	if (!root)
		goto done; /* empty file */
	if (root->type != YAML_MAPPING_NODE) {
		*ret_error = xstrdup("invalid YAML: expected a mapping at the top");
		r = -EBADMSG;
		goto done;
	}
	for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
	     pr < root->data.mapping.pairs.top; pr++) {
		const char *k = scalar(yaml_document_get_node(&d, pr->key));
		yaml_node_t *v = yaml_document_get_node(&d, pr->value);
		if (!k)
			continue;
		if (streq(k, "default-context") && scalar(v)) {
			free(c.default_context);
			c.default_context = *scalar(v) ? xstrdup(scalar(v)) : NULL;
		} else if (streq(k, "contexts") && v && v->type == YAML_MAPPING_NODE) {
			for (yaml_node_pair_t *cp = v->data.mapping.pairs.start;
			     cp < v->data.mapping.pairs.top; cp++) {
				const char *name = scalar(yaml_document_get_node(&d, cp->key));
				yaml_node_t *m = yaml_document_get_node(&d, cp->value);
				if (!name || !m) {
					*ret_error =
					    xstrdup("invalid YAML: a context name is not a "
						    "string");
					r = -EBADMSG;
					goto done;
				}
				c.contexts = xrealloc(c.contexts, (c.n + 1) * sizeof(*c.contexts));
				r = parse_context(&d, name, m, &c.contexts[c.n++], ret_error);
				if (r < 0)
					goto done;
			}
		} else if (streq(k, "contexts") && !(scalar(v) && !*scalar(v))) {
			*ret_error = xstrdup("invalid YAML: \"contexts\" is not a mapping");
			r = -EBADMSG;
			goto done;
		}
	}
done:
	yaml_document_delete(&d);
	yaml_parser_delete(&p);
	if (r < 0) {
		orchard_config_release(&c);
		return r;
	}
	*ret = c;
	return 0;
}

/* ---- the file ------------------------------------------------------------------------------ */

static int config_paths(char **ret_file, char **ret_lock, char **ret_error)
{
	_cleanup_free_ char *dir = NULL;
	int r = orchard_home_dir(&dir, ret_error);
	if (r < 0)
		return r;
	*ret_file = path_join(dir, "orchard.yml");
	if (ret_lock)
		*ret_lock = path_join(dir, "orchard.yml.lock");
	return 0;
}

static int load_file(const char *path, struct orchard_config *ret, char **ret_error)
{
	_cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
	int r = fs_read_full(path, ORCHARD_CONFIG_CAP, &sb);
	if (r == -ENOENT) {
		*ret = (struct orchard_config){0};
		return 0;
	}
	if (r < 0) {
		*ret_error =
		    xasprintf("failed to read configuration file %s: %s", path, strerror(-r));
		return r;
	}
	_cleanup_free_ char *why = NULL;
	r = orchard_config_parse(sb.buf, sb.len, ret, &why);
	if (r < 0)
		*ret_error = xasprintf("failed to read configuration file %s: %s", path, why);
	return r;
}

int orchard_config_load(struct orchard_config *ret, char **ret_error)
{
	_cleanup_free_ char *file = NULL;
	int r = config_paths(&file, NULL, ret_error);
	if (r < 0)
		return r;
	return load_file(file, ret, ret_error);
}

static int save_file(const char *path, const struct orchard_config *c, char **ret_error)
{
	_cleanup_free_ char *text = orchard_config_format(c);
	int r = fs_write_atomic(path, text, strlen(text), 0600);
	if (r < 0)
		*ret_error =
		    xasprintf("failed to write configuration file %s: %s", path, strerror(-r));
	return r;
}

enum edit_op { EDIT_CREATE, EDIT_CREATE_FORCE, EDIT_DEFAULT, EDIT_DELETE, EDIT_ENSURE_DEFAULT };

/* One locked read-modify-write; EDIT_ENSURE_DEFAULT also returns the default context. */
static int edit(enum edit_op op, const struct orchard_context *ctx, const char *name,
		struct orchard_context *ret, char **ret_error)
{
	_cleanup_free_ char *file = NULL, *lock = NULL;
	int r = config_paths(&file, &lock, ret_error);
	if (r < 0)
		return r;
	_cleanup_close_ int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0 || fs_flock(lfd, true, false) < 0) {
		r = negerrno();
		*ret_error = xasprintf("cannot lock %s: %s", lock, strerror(-r));
		return r;
	}
	struct orchard_config c = {0};
	r = load_file(file, &c, ret_error);
	if (r < 0)
		return r;
	struct orchard_context *x;
	bool changed = true;
	switch (op) {
	case EDIT_CREATE:
	case EDIT_CREATE_FORCE:
		x = orchard_config_find(&c, ctx->name);
		if (x && op == EDIT_CREATE) {
			*ret_error = xasprintf("conflict while operating on configuration file: "
					       "context \"%s\" already exists",
					       ctx->name);
			r = -EEXIST;
			break;
		}
		if (!x) {
			c.contexts = xrealloc(c.contexts, (c.n + 1) * sizeof(*c.contexts));
			x = &c.contexts[c.n++];
		} else {
			orchard_context_release(x);
		}
		context_copy(x, ctx);
		if (!c.default_context)
			c.default_context = xstrdup(ctx->name);
		break;
	case EDIT_DEFAULT:
		if (!orchard_config_find(&c, name)) {
			*ret_error = xasprintf("conflict while operating on configuration file: no "
					       "such context: \"%s\"",
					       name);
			r = -ENOENT;
			break;
		}
		free(c.default_context);
		c.default_context = xstrdup(name);
		break;
	case EDIT_DELETE:
		x = orchard_config_find(&c, name);
		if (!x) {
			*ret_error = xasprintf("conflict while operating on configuration file: no "
					       "such context: \"%s\"",
					       name);
			r = -ENOENT;
			break;
		}
		orchard_context_release(x);
		memmove(x, x + 1, (size_t)(&c.contexts[c.n] - (x + 1)) * sizeof(*x));
		c.n--;
		if (c.default_context && streq(c.default_context, name)) {
			free(c.default_context);
			c.default_context = c.n ? xstrdup(c.contexts[0].name) : NULL;
		}
		break;
	case EDIT_ENSURE_DEFAULT:
		x = c.default_context ? orchard_config_find(&c, c.default_context) : NULL;
		changed = !x;
		if (!x) {
			_cleanup_free_ char *url =
			    xasprintf("http://127.0.0.1:%d", ORCHARD_DEFAULT_PORT);
			struct orchard_context d = {.name = (char *)"default", .url = url};
			x = orchard_config_find(&c, "default");
			if (x)
				orchard_context_release(x);
			else {
				c.contexts = xrealloc(c.contexts, (c.n + 1) * sizeof(*c.contexts));
				x = &c.contexts[c.n++];
			}
			context_copy(x, &d);
			if (!c.default_context)
				c.default_context = xstrdup("default");
			/* Orchard's SetContext keeps an existing default that names nothing */
			x = orchard_config_find(&c, c.default_context);
			if (!x)
				x = orchard_config_find(&c, "default");
		}
		context_copy(ret, x);
		break;
	}
	if (r >= 0 && changed)
		r = save_file(file, &c, ret_error);
	orchard_config_release(&c);
	return r;
}

int orchard_config_create_context(const struct orchard_context *ctx, bool force, char **ret_error)
{
	return edit(force ? EDIT_CREATE_FORCE : EDIT_CREATE, ctx, NULL, NULL, ret_error);
}

int orchard_config_set_default(const char *name, char **ret_error)
{
	return edit(EDIT_DEFAULT, NULL, name, NULL, ret_error);
}

int orchard_config_delete_context(const char *name, char **ret_error)
{
	return edit(EDIT_DELETE, NULL, name, NULL, ret_error);
}

static void override(char **slot, const char *env)
{
	const char *v = getenv(env);
	if (!v)
		return;
	free(*slot);
	*slot = xstrdup(v);
}

int orchard_config_current(struct orchard_context *ret, char **ret_error)
{
	struct orchard_context c = {0};
	int r = edit(EDIT_ENSURE_DEFAULT, NULL, NULL, &c, ret_error);
	if (r < 0)
		return r;
	override(&c.url, "ORCHARD_URL");
	override(&c.sa_name, "ORCHARD_SERVICE_ACCOUNT_NAME");
	override(&c.sa_token, "ORCHARD_SERVICE_ACCOUNT_TOKEN");
	*ret = c;
	return 0;
}

int orchard_client_from_config(struct orchard_client **ret, char **ret_error)
{
	struct orchard_context c;
	int r = orchard_config_current(&c, ret_error);
	if (r < 0)
		return r;
	struct orchard_client_options o = {
	    .url = c.url,
	    .sa_name = c.sa_name,
	    .sa_token = c.sa_token,
	    .cert_pem = c.cert_pem,
	    .cert_pem_len = c.cert_pem_len,
	};
	r = orchard_client_new(&o, ret, ret_error);
	orchard_context_release(&c);
	return r;
}
