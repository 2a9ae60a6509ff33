/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The CLI's contexts, in Orchard's file and shape: $ORCHARD_HOME/.orchard/orchard.yml (HOME
 * when ORCHARD_HOME is unset), mode 0600, written as Orchard's yaml.v3 writes it:
 *
 *   default-context: NAME
 *   contexts:
 *       NAME:
 *           url: https://host:6120
 *           certificate: <base64 of the PEM certificate>
 *           serviceAccountName: ...
 *           serviceAccountToken: ...
 *
 * Only that shape is read (libyaml); unknown keys are ignored, a malformed file is an error
 * that names it. Every change takes an exclusive flock on orchard.yml.lock, then writes a
 * temp file, fsyncs and renames. Failures come back as -errno with *ret_error (allocated).
 */

#include <stdbool.h>
#include <stddef.h>

#include "orchard/client.h"

#define ORCHARD_CONFIG_CAP (4u << 20)

struct orchard_context {
	char *name;
	char *url;
	char *cert_pem; /* decoded PEM, NULL when none */
	size_t cert_pem_len;
	char *sa_name;
	char *sa_token;
};

struct orchard_config {
	char *default_context;
	struct orchard_context *contexts;
	size_t n;
};

/* $ORCHARD_HOME/.orchard or ~/.orchard, created (0700) when missing. Allocates. */
int orchard_home_dir(char **ret, char **ret_error);

int orchard_config_load(struct orchard_config *ret, char **ret_error);
void orchard_config_release(struct orchard_config *c);
void orchard_context_release(struct orchard_context *c);

struct orchard_context *orchard_config_find(struct orchard_config *c, const char *name);

/*
 * The changes the commands make, each one locked read-modify-write of the file:
 * create (-EEXIST unless force; the first context becomes the default), set default
 * (-ENOENT for an unknown name), delete (-ENOENT; the default moves to another context).
 * ctx is copied.
 */
int orchard_config_create_context(const struct orchard_context *ctx, bool force, char **ret_error);
int orchard_config_set_default(const char *name, char **ret_error);
int orchard_config_delete_context(const char *name, char **ret_error);

/*
 * The context commands use: the default one (when there is none, a context "default" for
 * http://127.0.0.1:6120 is created and saved, as Orchard does), then ORCHARD_URL,
 * ORCHARD_SERVICE_ACCOUNT_NAME and ORCHARD_SERVICE_ACCOUNT_TOKEN override its fields.
 */
int orchard_config_current(struct orchard_context *ret, char **ret_error);

/* A client for the current context. */
int orchard_client_from_config(struct orchard_client **ret, char **ret_error);

/* Serialise / parse (exposed for the unit tests). */
char *orchard_config_format(const struct orchard_config *c);
int orchard_config_parse(const char *buf, size_t len, struct orchard_config *ret, char **ret_error);
