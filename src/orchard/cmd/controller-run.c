// SPDX-License-Identifier: Apache-2.0
#include <stdio.h>

#include "orchard/cmd/cmd.h"

int orchard_cmd_controller_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "Error: orchard controller run: not implemented yet\n");
	return 1;
}
