/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "util/strbuf.h"
#include "util/strvec.h"

/*
 * Run a program from an argv vector (no shell) and wait for it. stdin is /dev/null. When out
 * or err are given, that stream is captured (appended, bounded by the strbuf's cap: excess is
 * read and dropped); otherwise it is inherited. ret_status gets the exit status (128+signal
 * when killed). Returns -errno when the program could not be started.
 */
int run_argv(const struct strvec *argv, struct strbuf *out, struct strbuf *err, int *ret_status);

/*
 * Same, with `input` (input_len bytes) fed to the program's stdin, which is then closed; a
 * program that exits without reading it all is not an error. input NULL means /dev/null.
 */
int run_argv_input(const struct strvec *argv, const void *input, size_t input_len,
		   struct strbuf *out, struct strbuf *err, int *ret_status);

/*
 * Same again, telling on_pid (when set) the child's pid once it is spawned and 0 once it has
 * exited but before it is reaped, so another thread may kill() the pid in between without
 * ever hitting a recycled one. For commands that must be cancellable.
 */
int run_argv_hooked(const struct strvec *argv, const void *input, size_t input_len,
		    struct strbuf *out, struct strbuf *err, void (*on_pid)(pid_t pid, void *ud),
		    void *ud, int *ret_status);

/* Find an executable in PATH (or take it as is when it contains '/'). Allocates. */
int find_program(const char *name, char **ret_path);
