# SPDX-License-Identifier: Apache-2.0
"""`tart login` / `tart logout`: flags, validation against real registries, Docker config and
credential-helper storage."""
import base64
import json
import os
import select
import signal
import stat
import subprocess
import sys
import termios
import time

import pytest

from conftest import TART_BIN
from registry_fixtures import (PASSWORD, USER, auth_registry, fault_proxy,  # noqa: F401
                               probe, token_proxy)


def config_path(tart):
    return tart.home / "docker-config" / "config.json"


def login(tart, host, user=USER, password=PASSWORD, *extra, check=True):
    return tart.run("login", host, "--username", user, "--password-stdin", "--insecure", *extra,
                    input=password + "\n", check=check)


def test_username_and_password_stdin_go_together(tart):
    for args in (["--username", "u"], ["--password-stdin"]):
        p = tart.run("login", "example.com", *args, check=False, input="x")
        assert p.returncode == 64
        assert "both --username and --password-stdin are required" in p.stderr


def test_malformed_host(tart):
    p = tart.run("login", "https://example.com", check=False)
    assert p.returncode == 1
    assert ('improperly formatted host "https://example.com" was provided, make sure that it '
            "doesn't start with http:// or https://") in p.stderr
    p = tart.run("logout", "bad host", check=False)
    assert p.returncode == 1 and "improperly formatted host" in p.stderr


def test_login_validates_stores_and_logout_removes(tart, auth_registry):
    host = auth_registry.host
    cfg = config_path(tart)
    cfg.parent.mkdir()
    # other keys and entries survive
    cfg.write_text(json.dumps({"auths": {"other.example.com": {"auth": "eDp5"}},
                               "psFormat": "table"}))
    p = login(tart, host, USER, "wrong", check=False)
    assert p.returncode == 1
    assert "invalid credentials:" in p.stderr
    assert "wrong" not in p.stderr
    assert host not in json.loads(cfg.read_text())["auths"]

    login(tart, host)
    data = json.loads(cfg.read_text())
    assert base64.b64decode(data["auths"][host]["auth"]).decode() == f"{USER}:{PASSWORD}"
    assert data["auths"]["other.example.com"] == {"auth": "eDp5"}
    assert data["psFormat"] == "table"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600

    tart.run("logout", host)
    data = json.loads(cfg.read_text())
    assert host not in data["auths"] and "other.example.com" in data["auths"]
    tart.run("logout", host)  # nothing stored: still success


def test_password_stdin_strips_trailing_newlines_only(tart, auth_registry):
    host = auth_registry.host
    tart.run("login", host, "--username", USER, "--password-stdin", "--insecure",
             input=PASSWORD + "\n\n")
    auth = json.loads(config_path(tart).read_text())["auths"][host]["auth"]
    assert base64.b64decode(auth).decode() == f"{USER}:{PASSWORD}"


def test_no_validate_stores_without_contacting(tart):
    tart.run("login", "127.0.0.1:1", "--username", "a", "--password-stdin", "--no-validate",
             input="b")
    auth = json.loads(config_path(tart).read_text())["auths"]["127.0.0.1:1"]["auth"]
    assert base64.b64decode(auth).decode() == "a:b"


def test_interactive_prompts_without_tty(tart, auth_registry):
    # no controlling terminal (new session): the prompts go to stderr, answers come from stdin
    host = auth_registry.host
    p = subprocess.run([TART_BIN, "login", host, "--insecure"], input=f"{USER}\n{PASSWORD}\n",
                       capture_output=True, text=True, env=tart.env, start_new_session=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert "User: " in p.stderr and "Password: " in p.stderr
    assert PASSWORD not in p.stderr + p.stdout
    assert host in json.loads(config_path(tart).read_text())["auths"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_at_the_password_prompt_restores_echo(tart, sig):
    """Ctrl-C (or a kill) while the password is typed must not leave the terminal without
    echo: tart turns it back on, then dies of the signal as before."""
    master, slave = os.openpty()
    try:
        # as from an interactive shell: a background job would inherit SIGINT ignored
        p = tart.popen("login", "example.com", "--no-validate", stdin=slave, stdout=slave,
                       stderr=slave, start_new_session=True,
                       preexec_fn=lambda: signal.signal(sig, signal.SIG_DFL))
        seen = b""
        deadline = time.time() + 30
        while b"Password: " not in seen and time.time() < deadline:
            r, _, _ = select.select([master], [], [], 1)
            if r:
                seen += os.read(master, 1024)
                if b"User: " in seen and b"\n" not in seen.split(b"User: ")[-1]:
                    os.write(master, b"someone\n")
        assert b"Password: " in seen, seen
        deadline = time.time() + 10
        while termios.tcgetattr(slave)[3] & termios.ECHO and time.time() < deadline:
            time.sleep(0.02)  # the prompt is printed just before echo goes off
        assert not termios.tcgetattr(slave)[3] & termios.ECHO
        p.send_signal(sig)
        assert p.wait(timeout=30) == -sig
        assert termios.tcgetattr(slave)[3] & termios.ECHO
        assert not config_path(tart).exists()
    finally:
        os.close(master)
        os.close(slave)


def test_login_through_bearer_token_service(tart, token_proxy):
    login(tart, token_proxy.host)
    assert token_proxy.stats["tokens"] >= 1
    p = login(tart, token_proxy.host, USER, "bad", check=False)
    assert p.returncode == 1 and "invalid credentials:" in p.stderr


FAKE_HELPER = """#!{python}
import json, os, sys
store = os.environ["FAKE_HELPER_STORE"]
data = json.load(open(store)) if os.path.exists(store) else {{}}
action = sys.argv[1]
if action == "store":
    req = json.load(sys.stdin)
    data[req["ServerURL"]] = [req["Username"], req["Secret"]]
elif action == "get":
    host = sys.stdin.read().strip()
    if host not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": host, "Username": data[host][0], "Secret": data[host][1]}}))
elif action == "erase":
    host = sys.stdin.read().strip()
    if host not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    del data[host]
json.dump(data, open(store, "w"))
"""


def install_helper(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    h = bindir / "docker-credential-fake"
    h.write_text(FAKE_HELPER.format(python=sys.executable))
    h.chmod(0o755)
    store = tmp_path / "helper-store.json"
    return {"PATH": f"{bindir}:{os.environ.get('PATH', '')}", "FAKE_HELPER_STORE": str(store)}, store


def test_creds_store_helper_round_trip(tart, auth_registry, probe, tmp_path):
    host = auth_registry.host
    env, store = install_helper(tmp_path)
    cfg = config_path(tart)
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"credsStore": "fake"}))
    tart.run("login", host, "--username", USER, "--password-stdin", "--insecure",
             input=PASSWORD, env=env)
    assert json.loads(store.read_text())[host] == [USER, PASSWORD]
    assert "auths" not in json.loads(cfg.read_text())  # the secret stays in the helper
    # the client finds it through the helper
    probe.env["DOCKER_CONFIG"] = str(cfg.parent)
    probe.run(host, "helper/x", "ping", env=env)
    tart.run("logout", host, env=env)
    assert host not in json.loads(store.read_text())
    tart.run("logout", host, env=env)  # "not found" from the helper is success
    p = probe.run(host, "helper/x", "ping", env=env, check=False)
    assert probe.errno_of(p) == 13


def test_cred_helpers_regex_lookup(probe, auth_registry, tmp_path):
    host = auth_registry.host
    env, store = install_helper(tmp_path)
    store.write_text(json.dumps({host: [USER, PASSWORD]}))
    cfg = probe.workdir / "docker-config"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps({"credHelpers": {r"127\.0\.0\.1:[0-9]+": "fake"}}))
    probe.run(host, "helper/y", "ping", env=env)
    # a helper that fails is reported and the request goes on without credentials
    (cfg / "config.json").write_text(json.dumps({"credHelpers": {host: "missing"}}))
    p = probe.run(host, "helper/y", "ping", env=env, check=False)
    assert probe.errno_of(p) == 13
    assert "Failed to retrieve credentials using" in p.stderr


def test_failures_exit_1(tart, fault_proxy):
    # a registry answering 404 on /v2/: invalid credentials, exit 1 (not 2, "no such VM")
    fault_proxy.add_rule(method="GET", path="^/v2/$", action="status", code=404, times=5)
    p = login(tart, fault_proxy.host, check=False)
    assert p.returncode == 1 and "invalid credentials:" in p.stderr
    # a configured credential helper that is not installed
    cfg = config_path(tart)
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"credHelpers": {"127.0.0.1:1": "not-installed"}}))
    p = tart.run("login", "127.0.0.1:1", "--username", "a", "--password-stdin", "--no-validate",
                 input="b", check=False)
    assert p.returncode == 1 and "docker-credential-not-installed" in p.stderr
    p = tart.run("logout", "127.0.0.1:1", check=False)
    assert p.returncode == 1 and "docker-credential-not-installed" in p.stderr


def test_password_with_colon_round_trip(tart, registry, probe):
    from registry_fixtures import TokenAuthProxy
    proxy = TokenAuthProxy(registry.host, "colon-user", "pa:ss:word", lifetime=120).start()
    try:
        login(tart, proxy.host, "colon-user", "pa:ss:word")
        # the stored entry is read back by the client (token service checks the Basic pair)
        probe.env["DOCKER_CONFIG"] = str(config_path(tart).parent)
        probe.run(proxy.host, "colon/x", "exists", "sha256:" + "0" * 64)
        assert proxy.stats.get("token_denied", 0) == 0 and proxy.stats["tokens"] >= 1
    finally:
        proxy.stop()
