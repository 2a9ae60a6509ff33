/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The `orchard` binary's commands. Orchard's CLI is cobra's: `orchard <group> <verb|noun>`
 * ("controller run", "create vm", "list vms") or a single word ("dev"). Adding a command:
 *  1. write src/orchard/cmd/<group>[-<sub>].c with `int orchard_cmd_<...>(int argc, char **argv)`;
 *     argv[0] is the last command word ("run" for `orchard controller run`), options follow;
 *  2. declare it below and add a row to the table in src/orchard/main.c;
 *  3. add the file to src/orchard/meson.build (orchard_cmd_sources).
 *
 * Return values: >= 0 is the exit code; a negative errno exits 1 (cobra's exit code for any
 * error), ORCHARD_EUSAGE too. Whatever failed has been logged already ("Error: ..." on stderr).
 */

#define ORCHARD_EUSAGE (-10064)

#ifndef ORCHARD_VERSION
#define ORCHARD_VERSION "unknown"
#endif
#ifndef ORCHARD_COMMIT
#define ORCHARD_COMMIT "unknown"
#endif

int orchard_cmd_controller_run(int argc, char **argv);

/* orchard-wrk: the worker (src/orchard/worker/), the CLI (src/orchard/cli/) and dev */
int orchard_cmd_worker_run(int argc, char **argv);
int orchard_cmd_dev(int argc, char **argv);
int orchard_cmd_context_create(int argc, char **argv);
int orchard_cmd_context_default(int argc, char **argv);
int orchard_cmd_context_delete(int argc, char **argv);
int orchard_cmd_context_list(int argc, char **argv);
int orchard_cmd_create_vm(int argc, char **argv);
int orchard_cmd_create_service_account(int argc, char **argv);
int orchard_cmd_delete_vm(int argc, char **argv);
int orchard_cmd_delete_worker(int argc, char **argv);
int orchard_cmd_delete_service_account(int argc, char **argv);
int orchard_cmd_get_vm(int argc, char **argv);
int orchard_cmd_get_worker(int argc, char **argv);
int orchard_cmd_get_service_account(int argc, char **argv);
int orchard_cmd_get_bootstrap_token(int argc, char **argv);
int orchard_cmd_list_vms(int argc, char **argv);
int orchard_cmd_list_workers(int argc, char **argv);
int orchard_cmd_list_service_accounts(int argc, char **argv);
int orchard_cmd_logs_vm(int argc, char **argv);
int orchard_cmd_ip_vm(int argc, char **argv);
int orchard_cmd_ssh_vm(int argc, char **argv);
int orchard_cmd_port_forward_vm(int argc, char **argv);
int orchard_cmd_port_forward_worker(int argc, char **argv);
int orchard_cmd_get_cluster_settings(int argc, char **argv);
int orchard_cmd_set_cluster_settings(int argc, char **argv);
int orchard_cmd_pause_worker(int argc, char **argv);
int orchard_cmd_resume_worker(int argc, char **argv);
