// SPDX-License-Identifier: Apache-2.0
#include "cmd/cmd.h"
#include "oci/credentials.h"

static const struct cmd_help help = {
	.name = "logout",
	.overview = "Logout from a registry",
	.usage = "logout <host>",
	.details = "ARGUMENTS:\n"
		   "  <host>                  host\n\n"
		   "OPTIONS:\n"
		   "  -h, --help              Show help information.\n",
};

int cmd_logout(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	static const char *const names[] = {"<host>"};
	int c;

	cmd_getopt_init();
	while ((c = cmd_getopt(&help, argc, argv, "h", opts)) != -1) {
		if (c == 'h')
			return 0;
		return c < 0 ? c : CMD_EUSAGE;
	}
	int r = cmd_need_args(&help, argc - optind, 1, 1, argv + optind, names);
	if (r < 0)
		return r;
	r = oci_credentials_check_host(argv[optind]);
	if (r < 0)
		return r;
	/* nothing stored is success, as Tart's Keychain deletion treats "not found" */
	r = oci_credentials_erase(argv[optind]);
	return r < 0 ? 1 : 0;
}
