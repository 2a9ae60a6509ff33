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
	static const char *const names[] = {"<host>"};
	static const struct cmd_spec spec = {
	    .help = &help, .min_args = 1, .max_args = 1, .arg_names = names};
	int a = cmd_parse(&spec, argc, argv, NULL);
	if (a <= 0)
		return a;
	int r = oci_credentials_check_host(argv[a]);
	if (r < 0)
		return r;
	/* nothing stored is success, as Tart's Keychain deletion treats "not found" */
	r = oci_credentials_erase(argv[a]);
	return r < 0 ? 1 : 0;
}
