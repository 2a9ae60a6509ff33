# SPDX-License-Identifier: Apache-2.0
"""Helpers for the OCI image tests: VMs with known disk content, a counting/throttling proxy in
front of the registry, an independent (pure Python) Tart image writer, registry storage access."""
import hashlib
import http.client
import http.server
import json
import os
import random
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from tart_image import tart_image  # noqa: E402

MiB = 1 << 20


def make_vm(tart, name, disk_gb=2, pieces=((100 * MiB, 5 * MiB),), seed=1):
    """`tart create --linux` then write random data at (offset, length) pieces."""
    tart.run("create", "--linux", "--disk-size", str(disk_gb), name)
    rnd = random.Random(seed)
    disk = tart.vm_dir(name) / "disk.img"
    with open(disk, "r+b") as f:
        for off, length in pieces:
            f.seek(off)
            f.write(rnd.randbytes(length))
    return tart.vm_dir(name)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MiB)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def allocated(path):
    return os.stat(path).st_blocks * 512


def cache_dir(tart, host, ns):
    return tart.home / "cache" / "OCIs" / host.replace(":", "%3A") / ns


def blob_path(registry, digest):
    hexd = digest.split(":", 1)[1]
    return Path(registry.root) / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"


def get_manifest(host, ns, ref):
    req = urllib.request.Request(f"http://{host}/v2/{ns}/manifests/{ref}",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req) as r:
        body = r.read()
    return body, "sha256:" + hashlib.sha256(body).hexdigest()


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _forward(self):
        srv = self.server
        rec = {"method": self.command, "path": self.path, "range": self.headers.get("Range"),
               "bytes": 0}
        with srv.lock:
            srv.requests.append(rec)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(srv.upstream, timeout=120)
        # the Host header is kept so the registry's absolute Location URLs point back here
        hdrs = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, self.path, body=body, headers=hdrs)
        resp = conn.getresponse()
        if srv.fail_blob and srv.fail_blob in self.path and self.command == "GET":
            with srv.lock:
                fail = srv.fail_left > 0
                srv.fail_left -= 1
            if fail:
                resp.read()
                conn.close()
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                rec["failed"] = True
                self.close_connection = True
                return
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ("connection", "transfer-encoding"):
                continue
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()
        cut = None
        if (srv.cut_after and self.command == "GET" and "/blobs/sha256:" in self.path
                and resp.status == 200):
            with srv.lock:
                if self.path not in srv.cut_done:
                    srv.cut_done.add(self.path)
                    cut = srv.cut_after
        if self.command != "HEAD":
            while True:
                chunk = resp.read(64 * 1024)
                if not chunk:
                    break
                if cut is not None and rec["bytes"] + len(chunk) > cut:
                    # drop the connection mid-body, once per blob
                    self.wfile.write(chunk[:max(0, cut - rec["bytes"])])
                    self.wfile.flush()
                    rec["bytes"] = cut
                    rec["cut"] = True
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    break
                rec["bytes"] += len(chunk)
                if srv.delay:
                    time.sleep(srv.delay)
        conn.close()
        self.close_connection = True

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward


class Proxy:
    """HTTP proxy in front of the registry that records requests and can throttle bodies."""

    def __init__(self, upstream):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self.server.daemon_threads = True
        self.server.upstream = upstream
        self.server.requests = []
        self.server.lock = threading.Lock()
        self.server.delay = 0.0
        self.server.cut_after = 0  # > 0: the first GET of each blob is cut after that many bytes
        self.server.cut_done = set()
        self.server.fail_blob = None  # digest whose GETs answer 503 ...
        self.server.fail_left = 0     # ... this many times
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set_delay(self, seconds_per_64k):
        self.server.delay = seconds_per_64k

    def requests(self, method=None):
        with self.server.lock:
            return [dict(r) for r in self.server.requests if method is None or r["method"] == method]

    def blob_gets(self):
        return [r["path"] for r in self.requests("GET") if "/blobs/sha256:" in r["path"]]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def upload_blob(host, ns, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    req = urllib.request.Request(f"http://{host}/v2/{ns}/blobs/uploads/", method="POST", data=b"")
    with urllib.request.urlopen(req) as r:
        loc = r.headers["Location"]
    if loc.startswith("/"):
        loc = f"http://{host}{loc}"
    sep = "&" if "?" in loc else "?"
    req = urllib.request.Request(f"{loc}{sep}digest={digest}", method="PUT", data=data,
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 201
    return digest


def push_python_image(host, ns, tag, config_json, disk, nvram, chunk=1 * MiB):
    """Write a Tart image with an encoder of the tests' own (tart_image.py) and plain json (no
    Swift escapes)."""
    manifest, blobs = tart_image(config_json, disk, nvram, chunk)
    for data in blobs.values():
        upload_blob(host, ns, data)
    body = json.dumps(manifest, indent=2).encode()
    req = urllib.request.Request(f"http://{host}/v2/{ns}/manifests/{tag}", method="PUT", data=body,
                                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 201
    return "sha256:" + hashlib.sha256(body).hexdigest()


def lz4_frame(data):
    """Standard LZ4 frame, made by the lz4(1) tool."""
    import subprocess
    return subprocess.run(["lz4", "-c", "-q"], input=data, capture_output=True, check=True).stdout


def push_vetu_image(host, ns, tag, config_json, kernel, disk, chunk=1 * MiB, initramfs=None):
    """A Vetu-style image: vetu media types, LZ4 frame disk layers with Vetu's annotations."""
    layers = [{"mediaType": "application/vnd.cirruslabs.vetu.config.v1",
               "digest": upload_blob(host, ns, config_json), "size": len(config_json)},
              {"mediaType": "application/vnd.cirruslabs.vetu.kernel.v1",
               "digest": upload_blob(host, ns, kernel), "size": len(kernel)}]
    if initramfs is not None:
        layers.append({"mediaType": "application/vnd.cirruslabs.vetu.initramfs.v1",
                       "digest": upload_blob(host, ns, initramfs), "size": len(initramfs)})
    for i in range(0, len(disk), chunk):
        piece = disk[i:i + chunk]
        blob = lz4_frame(piece)
        layers.append({"mediaType": "application/vnd.cirruslabs.vetu.disk.v1",
                       "digest": upload_blob(host, ns, blob), "size": len(blob),
                       "annotations": {"org.cirruslabs.vetu.name": "disk.img",
                                       "org.cirruslabs.vetu.uncompressed-size": str(len(piece))}})
    stub = b"{}"
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": upload_blob(host, ns, stub), "size": len(stub)},
                "layers": layers}
    body = json.dumps(manifest).encode()
    req = urllib.request.Request(f"http://{host}/v2/{ns}/manifests/{tag}", method="PUT", data=body,
                                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 201
