/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Registry credentials, looked up in Tart's order (first hit wins):
 *  1. TART_REGISTRY_USERNAME + TART_REGISTRY_PASSWORD, for every host, or only for
 *     TART_REGISTRY_HOSTNAME (host with port) when that is set;
 *  2. the Docker config: $DOCKER_CONFIG/config.json, else ~/.docker/config.json:
 *     auths[host].auth (base64 "user:pass"; also "username"/"password" fields),
 *     then credHelpers (key equal to the host, or a regular expression matching the whole
 *     host), then the global credsStore; helpers run as `docker-credential-<name> get` with
 *     the host on stdin.
 * (Tart's third provider, the macOS Keychain, has no Linux counterpart: `tart login` writes
 * into the Docker config instead.) Secrets never reach a log line or an error text.
 */

#include <jansson.h>
#include <stdbool.h>

/*
 * 0 and allocated user/pass when found; -ENOENT when no provider knows the host. A failing
 * provider prints `Failed to retrieve credentials using <provider>, authentication may fail:
 * <why>` (a warning) and the next one is tried, as Tart does.
 */
int oci_credentials_lookup(const char *host, char **ret_user, char **ret_pass);

/*
 * Store for host: into the helper named by credHelpers[host] or credsStore when there is one,
 * else into auths[host].auth of the Docker config (written atomically, mode 0600, other keys
 * kept). Logs failures.
 */
int oci_credentials_store(const char *host, const char *user, const char *pass);
/* Remove host's credentials (helper and config file); absent is success. Logs failures. */
int oci_credentials_erase(const char *host);

/* The Docker config path (allocated): $DOCKER_CONFIG/config.json or ~/.docker/config.json. */
char *oci_docker_config_path(void);

/* True when a credHelpers key applies to host: equal, or a regex matching all of it. */
bool oci_cred_helper_key_matches(const char *key, const char *host);

/*
 * Pure lookup in a parsed Docker config. Returns 1 with allocated user/pass for an auths
 * entry, 2 with the allocated helper name (credHelpers, then credsStore), 0 when nothing
 * applies, -EBADMSG for a malformed auths entry.
 */
int oci_docker_config_find(const json_t *cfg, const char *host, char **ret_user, char **ret_pass,
			   char **ret_helper);

/*
 * Check a `tart login/logout <host>` argument: host[:port] as in remote names. Logs Tart's
 * `improperly formatted host "<h>" was provided` (with a hint for http:// and https://) and
 * returns -EINVAL otherwise.
 */
int oci_credentials_check_host(const char *host);
