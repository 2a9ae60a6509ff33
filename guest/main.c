// SPDX-License-Identifier: Apache-2.0
/*
 * tart-guest-agent for Linux guests: Tart's guest agent protocol (gRPC service `Agent` on
 * vsock port 8080 and on the virtio-serial port org.tart.agent.0) and the root filesystem
 * growth after `tart set --disk-size`. See docs/agent.md.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "agent/grpc.h"
#include "exec.h"
#include "loop.h"
#include "resize.h"
#include "transport.h"
#include "util/log.h"
#include "util/parse.h"

static const char usage[] =
    "Usage: tart-guest-agent [OPTIONS]\n"
    "\n"
    "Guest agent for Tart VMs (Linux): serves `tart exec` and `tart ip --resolver agent`\n"
    "over vsock port 8080 and the virtio-serial port org.tart.agent.0, and grows the root\n"
    "filesystem after `tart set --disk-size`.\n"
    "\n"
    "Components:\n"
    "  --resize-disk          grow the root partition and filesystem to the disk's size, once\n"
    "  --resize-mount DIR     with --resize-disk: the filesystem mounted at DIR, not /\n"
    "  --run-rpc              run the RPC service (tart exec, tart ip --resolver agent)\n"
    "  --run-vdagent          clipboard sharing: macOS guests only, ignored here\n"
    "Component groups (as tart-guest-agent):\n"
    "  --run-daemon           = --resize-disk (then keep running)\n"
    "  --run-agent            = --run-vdagent --run-rpc\n"
    "\n"
    "Transports (with --run-rpc: vsock and the serial port unless disabled):\n"
    "  --serial PATH          the serial port (default " AGENT_SERIAL_PORT_PATH ")\n"
    "  --no-serial            do not use the serial port\n"
    "  --no-vsock             do not listen on vsock\n"
    "  --listen-unix PATH     also serve every connection to this Unix socket\n"
    "  --serial-listen PATH   a Unix socket that behaves like the serial port (one host at a\n"
    "                         time, reset on disconnect): for tests without a VM\n"
    "\n"
    "  --first-message-timeout SECONDS  end a call without its first message after this\n"
    "                         long (default 30, 0 = never)\n"
    "  --debug                debug logging\n"
    "  --version, --help\n";

enum {
	OPT_RESIZE = 1000,
	OPT_RPC,
	OPT_VDAGENT,
	OPT_DAEMON,
	OPT_AGENT,
	OPT_SERIAL,
	OPT_NO_SERIAL,
	OPT_NO_VSOCK,
	OPT_LISTEN_UNIX,
	OPT_SERIAL_LISTEN,
	OPT_TIMEOUT,
	OPT_RESIZE_MOUNT,
	OPT_DEBUG,
	OPT_VERSION,
	OPT_HELP,
};

static const struct option options[] = {
    {"resize-disk", no_argument, NULL, OPT_RESIZE},
    {"run-rpc", no_argument, NULL, OPT_RPC},
    {"run-vdagent", no_argument, NULL, OPT_VDAGENT},
    {"run-daemon", no_argument, NULL, OPT_DAEMON},
    {"run-agent", no_argument, NULL, OPT_AGENT},
    {"serial", required_argument, NULL, OPT_SERIAL},
    {"no-serial", no_argument, NULL, OPT_NO_SERIAL},
    {"no-vsock", no_argument, NULL, OPT_NO_VSOCK},
    {"listen-unix", required_argument, NULL, OPT_LISTEN_UNIX},
    {"serial-listen", required_argument, NULL, OPT_SERIAL_LISTEN},
    {"first-message-timeout", required_argument, NULL, OPT_TIMEOUT},
    {"resize-mount", required_argument, NULL, OPT_RESIZE_MOUNT},
    {"debug", no_argument, NULL, OPT_DEBUG},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int setup_signals(void)
{
	sigset_t set;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGIO);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static bool quit;

static void on_signal(struct loop_watch *w, short revents)
{
	struct signalfd_siginfo si;
	(void)revents;
	while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			exec_reap();
			break;
		case SIGIO:
			transport_poke();
			break;
		case SIGHUP:
			break;
		default:
			log_info("signal %u: stopping", si.ssi_signo);
			quit = true;
		}
	}
}

int main(int argc, char **argv)
{
	bool resize = false, rpc = false, vdagent = false, daemon = false, vsock = true;
	const char *resize_mount = "/";
	struct transport_config cfg = {
	    .session.first_message_timeout_ms = 30000,
	    .serial_device = AGENT_SERIAL_PORT_PATH,
	};
	struct loop_watch sigw;
	struct loop *l;
	uint64_t secs;
	int c, sfd, r = 0;

	setvbuf(stderr, NULL, _IOLBF, 0);
	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case OPT_RESIZE:
			resize = true;
			break;
		case OPT_RPC:
			rpc = true;
			break;
		case OPT_VDAGENT:
			vdagent = true;
			break;
		case OPT_DAEMON:
			daemon = resize = true;
			break;
		case OPT_AGENT:
			vdagent = rpc = true;
			break;
		case OPT_SERIAL:
			cfg.serial_device = optarg;
			break;
		case OPT_NO_SERIAL:
			cfg.serial_device = NULL;
			break;
		case OPT_NO_VSOCK:
			vsock = false;
			break;
		case OPT_LISTEN_UNIX:
			cfg.listen_unix = optarg;
			break;
		case OPT_SERIAL_LISTEN:
			cfg.serial_listen = optarg;
			break;
		case OPT_TIMEOUT:
			if (parse_u64(optarg, 86400, &secs) < 0) {
				log_error("invalid --first-message-timeout '%s'", optarg);
				return 64;
			}
			cfg.session.first_message_timeout_ms = (uint32_t)(secs * 1000);
			break;
		case OPT_RESIZE_MOUNT:
			resize_mount = optarg;
			break;
		case OPT_DEBUG:
			log_set_level(LOG_DEBUG);
			break;
		case OPT_VERSION:
			printf("tart-guest-agent %s\n", TART_VERSION);
			return 0;
		case OPT_HELP:
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 64;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument '%s'", argv[optind]);
		return 64;
	}
	if (!resize && !rpc && !vdagent && !cfg.listen_unix && !cfg.serial_listen) {
		fputs(usage, stderr);
		return 64;
	}
	if (vdagent)
		log_info("clipboard sharing (vdagent) is for macOS guests: not run here");
	if (resize) {
		r = agent_resize_mount(resize_mount);
		if (r < 0)
			log_warning_errno(r, "cannot grow the filesystem at '%s'", resize_mount);
		if (r < 0 && !rpc && !daemon && !cfg.listen_unix && !cfg.serial_listen)
			return 1;
	}
	if (!rpc) {
		/* Explicit transports without --run-rpc serve only those. */
		cfg.serial_device = NULL;
		vsock = false;
	}
	cfg.vsock = vsock;
	if (!rpc && !cfg.listen_unix && !cfg.serial_listen && !daemon)
		return 0;

	sfd = setup_signals();
	if (sfd < 0)
		return log_error_errno(sfd, "cannot set up signals"), 1;
	l = loop_new();
	exec_setup(l);
	loop_watch_init(&sigw, sfd, on_signal, NULL);
	sigw.events = POLLIN;
	loop_add(l, &sigw);
	if (transport_start(l, &cfg) < 0)
		return 1;
	while (!quit) {
		r = loop_run_once(l, -1);
		if (r < 0) {
			log_error_errno(r, "poll");
			break;
		}
	}
	exec_kill_all();
	transport_stop();
	loop_free(l);
	return r < 0 ? 1 : 0;
}
