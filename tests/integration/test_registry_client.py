# SPDX-License-Identifier: Apache-2.0
"""The OCI registry client (src/oci/registry.c) against real docker-registry instances, the
Bearer token proxy and the fault-injecting proxy, driven through tests/helpers/registry-probe."""
import base64
import errno
import hashlib
import json

from registry_fixtures import (PASSWORD, USER, FaultProxy, TokenAuthProxy,  # noqa: F401
                               auth_registry, fault_proxy, probe, random_file, tls_registry,
                               token_proxy)

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def sha(path):
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def push(probe, host, ns, *files, chunk=None, creds=None, env=None):
    args = ["push-blob"] + (["--chunk", str(chunk)] if chunk else []) + [str(f) for f in files]
    p = probe.run(host, ns, *args, creds=creds, env=env)
    return dict(line.split(" ", 1)[::-1] for line in p.stdout.splitlines())


def pull_equal(probe, host, ns, src, dst, creds=None, env=None, resume=False):
    args = ["pull-blob"] + (["--resume"] if resume else []) + [f"{sha(src)}={dst}"]
    probe.run(host, ns, *args, creds=creds, env=env)
    assert dst.read_bytes() == src.read_bytes()


def manifest_for(probe, config_blob):
    m = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha(config_blob), "size": config_blob.stat().st_size},
         "layers": []}
    path = probe.workdir / "manifest.json"
    path.write_text(json.dumps(m, separators=(",", ":")))
    return path


# ------------------------------------------------------------------------------------------
# anonymous registry


def test_ping_push_pull_monolithic_and_chunked(probe, registry, tmp_path):
    probe.run(registry.host, "client/a", "ping")
    big = random_file(tmp_path / "big.bin", 3_100_000)
    small = random_file(tmp_path / "small.bin", 1000)
    empty = random_file(tmp_path / "empty.bin", 0)
    got = push(probe, registry.host, "client/a", big, small, empty)
    assert got[str(big)] == sha(big) and got[str(empty)] == sha(empty)
    # chunked: 3.1 MB in 1 MB PATCHes, the last 0.1 MB in the final PUT
    chunked = random_file(tmp_path / "chunked.bin", 3_100_000)
    push(probe, registry.host, "client/a", chunked, chunk=1_000_000)
    exact = random_file(tmp_path / "exact.bin", 2_000_000)  # size a multiple of the chunk
    push(probe, registry.host, "client/a", exact, chunk=1_000_000)
    for f in (big, small, empty, chunked, exact):
        out = probe.run(registry.host, "client/a", "exists", sha(f)).stdout.split()
        assert out == ["1", str(f.stat().st_size)]
        pull_equal(probe, registry.host, "client/a", f, tmp_path / (f.name + ".out"))
    p = probe.run(registry.host, "client/a", "exists", "sha256:" + "0" * 64)
    assert p.stdout.strip() == "0"


def test_resume_from_offset(probe, registry, tmp_path):
    f = random_file(tmp_path / "blob.bin", 2_000_000)
    push(probe, registry.host, "client/resume", f)
    part = tmp_path / "part.bin"
    part.write_bytes(f.read_bytes()[:777_777])
    pull_equal(probe, registry.host, "client/resume", f, part, resume=True)


def test_manifest_by_tag_and_digest(probe, registry, tmp_path):
    cfg = random_file(tmp_path / "cfg.bin", 100)
    push(probe, registry.host, "client/m", cfg)
    m = manifest_for(probe, cfg)
    digest = probe.run(registry.host, "client/m", "put-manifest", "v1", str(m)).stdout.strip()
    assert digest == sha(m)
    for ref in ("v1", digest):
        out = probe.run(registry.host, "client/m", "get-manifest", ref,
                        str(tmp_path / "got.json")).stdout.split()
        assert out == [MANIFEST_TYPE, digest]
        assert (tmp_path / "got.json").read_bytes() == m.read_bytes()
    p = probe.run(registry.host, "client/m", "get-manifest", "missing", str(tmp_path / "x"),
                  check=False)
    assert p.returncode == 1 and probe.errno_of(p) == errno.ENOENT
    assert "MANIFEST_UNKNOWN" in p.stderr  # the registry's error body is in the message


def test_cross_repository_mount(probe, registry, tmp_path):
    f = random_file(tmp_path / "shared.bin", 50_000)
    push(probe, registry.host, "client/src", f)
    p = probe.run(registry.host, "client/dst", "push-blob", "--mount-from", "client/src",
                  str(f))
    assert p.stdout.split()[0] == sha(f)
    assert probe.run(registry.host, "client/dst", "exists", sha(f)).stdout.startswith("1 ")


def test_parallel_transfers(probe, registry, tmp_path):
    files = [random_file(tmp_path / f"p{i}.bin", 1_500_000 + i) for i in range(4)]
    push(probe, registry.host, "client/par", *files, chunk=500_000)
    args = [f"{sha(f)}={tmp_path / (f.name + '.out')}" for f in files]
    probe.run(registry.host, "client/par", "pull-blob", *args)
    for f in files:
        assert (tmp_path / (f.name + ".out")).read_bytes() == f.read_bytes()


def test_connections_are_reused(probe, fault_proxy, tmp_path):
    # one thread, POST + 5 PATCH + PUT, sequentially through one client: keep-alive is used
    f = random_file(tmp_path / "k.bin", 600_000)
    push(probe, fault_proxy.host, "client/keep", f, chunk=100_000)
    requests = fault_proxy.stats["requests"]
    assert requests == 7
    assert fault_proxy.stats["connections"] == 1


def test_https_with_private_ca(probe, tls_registry, tmp_path):
    host, ca = tls_registry
    # the default scheme is https; the private CA is unknown: a TLS failure, not retried
    p = probe.run(host, "tls/x", "ping", insecure=False, check=False)
    assert p.returncode == 1 and probe.errno_of(p) == errno.EPROTO
    assert "certificate" in p.stderr and "retrying" not in p.stderr
    # trusted through SSL_CERT_FILE: push and pull over TLS
    env = {"SSL_CERT_FILE": str(ca)}
    f = random_file(tmp_path / "tls.bin", 1_000_000)
    push_args = ["push-blob", "--chunk", "300000", str(f)]
    assert probe.run(host, "tls/x", *push_args, insecure=False, env=env).stdout.split()[0] == sha(f)
    got = tmp_path / "tls.out"
    probe.run(host, "tls/x", "pull-blob", f"{sha(f)}={got}", insecure=False, env=env)
    assert got.read_bytes() == f.read_bytes()


# ------------------------------------------------------------------------------------------
# htpasswd Basic auth


def test_basic_auth_sources(probe, auth_registry, tmp_path):
    host = auth_registry.host
    f = random_file(tmp_path / "b.bin", 300_000)
    # no credentials at all: 401 -> -EACCES
    p = probe.run(host, "basic/x", "ping", check=False)
    assert probe.errno_of(p) == errno.EACCES
    # explicit (login validation path)
    push(probe, host, "basic/x", f, creds=(USER, PASSWORD))
    # environment, for every host and for the named one only
    env = {"TART_REGISTRY_USERNAME": USER, "TART_REGISTRY_PASSWORD": PASSWORD}
    pull_equal(probe, host, "basic/x", f, tmp_path / "env.out", env=env)
    p = probe.run(host, "basic/x", "ping", check=False,
                  env=dict(env, TART_REGISTRY_HOSTNAME="other.example.com"))
    assert probe.errno_of(p) == errno.EACCES
    probe.run(host, "basic/x", "ping", env=dict(env, TART_REGISTRY_HOSTNAME=host))
    # Docker config auths
    cfg = probe.workdir / "docker-config"
    cfg.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (cfg / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    pull_equal(probe, host, "basic/x", f, tmp_path / "cfg.out")
    # wrong password
    p = probe.run(host, "basic/x", "ping", creds=(USER, "wrong"), check=False)
    assert probe.errno_of(p) == errno.EACCES


# ------------------------------------------------------------------------------------------
# Bearer tokens


def test_bearer_token_flow(probe, token_proxy, tmp_path):
    host = token_proxy.host
    f = random_file(tmp_path / "t.bin", 2_500_000)
    creds = (USER, PASSWORD)
    probe.run(host, "tok/x", "ping", creds=creds)
    push(probe, host, "tok/x", f, chunk=1_000_000, creds=creds)
    pull_equal(probe, host, "tok/x", f, tmp_path / "t.out", creds=creds)
    cfg = random_file(tmp_path / "cfg.bin", 10)
    push(probe, host, "tok/x", cfg, creds=creds)
    m = manifest_for(probe, cfg)
    probe.run(host, "tok/x", "put-manifest", "latest", str(m), creds=creds)
    assert token_proxy.stats["tokens"] >= 1
    assert token_proxy.stats["expired"] == 0
    # bad credentials: the token service refuses -> -EACCES with its answer in the message
    p = probe.run(host, "tok/x", "ping", creds=(USER, "nope"), check=False)
    assert probe.errno_of(p) == errno.EACCES
    assert "bad credentials" in p.stderr
    assert PASSWORD not in p.stderr and "nope" not in p.stderr


def test_anonymous_bearer_tokens(probe, registry, tmp_path):
    # like Docker Hub's public images: a token service that asks for no credentials
    proxy = TokenAuthProxy(registry.host, lifetime=300).start()
    try:
        f = random_file(tmp_path / "anon.bin", 100_000)
        push(probe, proxy.host, "tok/anon", f)
        pull_equal(probe, proxy.host, "tok/anon", f, tmp_path / "anon.out")
        assert proxy.stats["tokens"] >= 1
    finally:
        proxy.stop()


def test_challenges_tart_rejects(probe, fault_proxy):
    for header, message in (("Digest realm=\"x\"", 'authentication scheme "Digest" is unsupported'),
                            ("Bearer whatever", "malformed WWW-Authenticate")):
        fault_proxy.add_rule(method="GET", path="^/v2/$", action="status", code=401,
                             headers={"WWW-Authenticate": header})
        p = probe.run(fault_proxy.host, "x/y", "ping", check=False)
        assert p.returncode == 1 and message in p.stderr


def test_token_renewed_mid_transfer(probe, registry, tmp_path):
    # tokens live 2 s; each proxied request takes 0.4 s, so a 12-chunk upload outlives several
    proxy = TokenAuthProxy(registry.host, USER, PASSWORD, ttl=2, delay=0.4, lifetime=300).start()
    try:
        # two threads share the registry object and its token cache
        f = random_file(tmp_path / "slow.bin", 1_200_000)
        g = random_file(tmp_path / "slow2.bin", 900_000)
        push(probe, proxy.host, "tok/renew", f, g, chunk=100_000, creds=(USER, PASSWORD))
        pull_equal(probe, proxy.host, "tok/renew", f, tmp_path / "slow.out",
                   creds=(USER, PASSWORD))
        assert proxy.stats["tokens"] >= 3
    finally:
        proxy.stop()


# ------------------------------------------------------------------------------------------
# faults


def test_dropped_connection_resumes(probe, fault_proxy, registry, tmp_path):
    f = random_file(tmp_path / "d.bin", 3_000_000)
    push(probe, registry.host, "fault/drop", f)
    fault_proxy.add_rule(method="GET", path="/blobs/sha256:", action="drop", after=1_000_000,
                         times=2)
    p = probe.run(fault_proxy.host, "fault/drop", "pull-blob", f"{sha(f)}={tmp_path / 'd.out'}")
    assert (tmp_path / "d.out").read_bytes() == f.read_bytes()
    assert fault_proxy.stats["fault_drop"] == 2
    assert "retrying" in p.stderr


def test_server_errors_and_rate_limits_are_retried(probe, fault_proxy, registry, tmp_path):
    f = random_file(tmp_path / "e.bin", 2_500_000)
    fault_proxy.add_rule(method="POST", path="/blobs/uploads/", action="status", code=500)
    fault_proxy.add_rule(method="PATCH", path="/blobs/uploads/", action="status", code=503)
    fault_proxy.add_rule(method="HEAD", path="/blobs/", action="status", code=429,
                         retry_after="1")
    push(probe, fault_proxy.host, "fault/err", f, chunk=1_000_000)
    assert probe.run(fault_proxy.host, "fault/err", "exists", sha(f)).stdout.startswith("1 ")
    fault_proxy.add_rule(method="GET", path="/blobs/", action="status", code=502)
    pull_equal(probe, fault_proxy.host, "fault/err", f, tmp_path / "e.out")
    assert fault_proxy.stats["fault_status"] == 4
    # a registry that keeps failing: -EAGAIN after the attempts, with its body in the message
    fault_proxy.add_rule(method="GET", path="/manifests/", action="status", code=500, times=5,
                         body="storage backend down")
    p = probe.run(fault_proxy.host, "fault/err", "get-manifest", "latest",
                  str(tmp_path / "m.json"), check=False)
    assert probe.errno_of(p) == errno.EAGAIN
    assert "storage backend down" in p.stderr


def test_upload_range_is_verified(probe, fault_proxy, tmp_path):
    # a registry acknowledging less than was sent (ECR Public's fixed Range): start over
    f = random_file(tmp_path / "rg.bin", 350_000)
    fault_proxy.add_rule(method="PATCH", path="/blobs/uploads/", action="header", name="Range",
                         value="0-10")
    p = push(probe, fault_proxy.host, "fault/range", f, chunk=100_000)
    assert p[str(f)] == sha(f)
    assert fault_proxy.stats["fault_header"] == 1
    assert fault_proxy.stats["method_POST"] == 2  # the upload was restarted
    assert probe.run(fault_proxy.host, "fault/range", "exists", sha(f)).stdout.startswith("1 ")
    out = tmp_path / "rg.out"
    pull_equal(probe, fault_proxy.host, "fault/range", f, out)


def test_stalled_response_is_aborted_and_retried(probe, fault_proxy, registry, tmp_path):
    f = random_file(tmp_path / "s.bin", 200_000)
    push(probe, registry.host, "fault/slow", f)
    fault_proxy.add_rule(method="GET", path="/blobs/sha256:", action="slow", delay=4)
    p = probe.run(fault_proxy.host, "fault/slow", "pull-blob", f"{sha(f)}={tmp_path / 's.out'}",
                  env={"TART_REGISTRY_STALL_TIMEOUT": "1"})
    assert (tmp_path / "s.out").read_bytes() == f.read_bytes()
    assert fault_proxy.stats["fault_slow"] == 1
    assert "retrying" in p.stderr


def test_corrupted_blob_is_detected(probe, fault_proxy, registry, tmp_path):
    f = random_file(tmp_path / "c.bin", 500_000)
    push(probe, registry.host, "fault/corrupt", f)
    fault_proxy.add_rule(method="GET", path="/blobs/sha256:", action="corrupt", at=123_456)
    p = probe.run(fault_proxy.host, "fault/corrupt", "pull-blob",
                  f"{sha(f)}={tmp_path / 'c.out'}", check=False)
    assert probe.errno_of(p) == errno.EBADMSG
    # manifests by digest are verified too
    cfg = random_file(tmp_path / "cfg.bin", 10)
    push(probe, registry.host, "fault/corrupt", cfg)
    m = manifest_for(probe, cfg)
    digest = probe.run(registry.host, "fault/corrupt", "put-manifest", "v", str(m)).stdout.strip()
    fault_proxy.add_rule(method="GET", path="/manifests/", action="corrupt", at=5)
    p = probe.run(fault_proxy.host, "fault/corrupt", "get-manifest", digest,
                  str(tmp_path / "m.out"), check=False)
    assert probe.errno_of(p) == errno.EBADMSG


def test_redirect_never_carries_authorization(probe, auth_registry, tmp_path):
    proxy = FaultProxy(auth_registry.host, upstream_auth=f"{USER}:{PASSWORD}",
                       lifetime=300).start()
    try:
        creds = (USER, PASSWORD)
        f = random_file(tmp_path / "r.bin", 1_000_000)
        push(probe, proxy.host, "fault/redir", f, creds=creds)
        proxy.add_rule(method="GET", path="/blobs/sha256:", action="redirect", times=2)
        pull_equal(probe, proxy.host, "fault/redir", f, tmp_path / "r.out", creds=creds)
        assert proxy.stats["fault_redirect"] == 1
        assert proxy.sidecar.stats["served"] == 1
        assert proxy.sidecar.stats["auth_violations"] == 0
        # a resumed download is redirected too and still carries no Authorization
        part = tmp_path / "r.part"
        part.write_bytes(f.read_bytes()[:400_000])
        pull_equal(probe, proxy.host, "fault/redir", f, part, creds=creds, resume=True)
        assert proxy.sidecar.stats["served"] == 2
        assert proxy.sidecar.stats["auth_violations"] == 0
    finally:
        proxy.stop()

