// SPDX-License-Identifier: Apache-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "util/alloc.h"
#include "util/fs.h"
#include "util/log.h"
#include "vm/archive.h"

static const struct cmd_help help = {
    .name = "export",
    .overview = "Export VM to a compressed .tvm file",
    .usage = "export <name> [<path>]",
    .details = "Exports a VM as an OCI image-layout archive (a tar of oci-layout, index.json and "
	       "blobs/sha256/...) holding the same manifest and blobs as `tart push`. It can be "
	       "imported with `tart import` or pushed with `skopeo copy oci-archive:<path> "
	       "docker://...`.\n\n"
	       "ARGUMENTS:\n"
	       "  <name>                  Source VM name.\n"
	       "  <path>                  Path to the destination file. (default: <name>.tvm)\n\n"
	       "OPTIONS:\n"
	       "  -h, --help              Show help information.\n",
};

/* Tart asks before overwriting only a defaulted path. */
static bool confirm_overwrite(const char *path)
{
	fprintf(stderr,
		"file %s already exists, are you sure you want to overwrite it? (yes, [no])? ",
		path);
	fflush(stderr);
	char line[16] = "";
	if (!fgets(line, sizeof(line), stdin))
		return false;
	line[strcspn(line, "\r\n")] = 0;
	return streq(line, "yes");
}

int cmd_export(int argc, char **argv)
{
	static const char *const names[] = {"<name>", "<path>"};
	static const struct cmd_spec spec = {
	    .help = &help, .min_args = 1, .max_args = 2, .arg_names = names};
	int a = cmd_parse(&spec, argc, argv, NULL);
	if (a <= 0)
		return a;
	const char *name = argv[a];
	_cleanup_free_ char *path = NULL;
	if (argc - a == 2) {
		path = xstrdup(argv[a + 1]);
	} else {
		const char *base = strrchr(name, '/');
		path = xasprintf("%s.tvm", base ? base + 1 : name);
		if (fs_exists(path) && !confirm_overwrite(path))
			return 1;
	}
	log_info("exporting...");
	int r = vm_export(name, path);
	return r < 0 ? r : 0;
}
