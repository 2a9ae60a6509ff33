// SPDX-License-Identifier: Apache-2.0
#include <errno.h>

#include "cmd/cmd.h"
#include "util/log.h"

/* Placeholder until this command's issue lands. */
int cmd_stop(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	log_error("'tart stop' is not implemented yet");
	return -ENOSYS;
}
