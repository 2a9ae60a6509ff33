# SPDX-License-Identifier: Apache-2.0
"""A registry that misbehaves on purpose (Python stdlib only, loopback only).

It serves one small Tart image of its own under many repositories, and each repository
`<case>/vm` misbehaves in one way a hostile or broken registry could: stalls, lying sizes and
digests, endless manifests, LZ4 bombs, redirect loops, headers trickled byte by byte, huge
header lines, a Content-Length that lies, a 206 for the wrong range, a gzip bomb as an error
body, Bearer token loops, a token service that stalls, the errors users meet (401, 403, 404,
429, 5xx), a broken config.json, ... `CASES` lists them. `ok/vm` behaves, as a control.

FaultProxy and TokenAuthProxy (registry_proxies.py) inject faults in front of a real
docker-registry; this server needs none and can send what no real registry would.
`.stats` counts requests per case (`<case> <kind>`: kind manifest, blob, token). By hand:
`python3 tests/helpers/hostile_registry.py` prints host:port and serves for 10 minutes.
"""
import gzip
import json
import re
import struct
import threading
import time

from registry_proxies import _Base
from tart_image import MANIFEST_TYPE, MiB, digest_of as _digest, tart_image


def lz4_bomb(decoded):
    """One 'bv41' block whose LZ4 sequence expands a single zero byte into `decoded` bytes."""
    match = decoded - 1 - 5  # one literal first, five literals at the end (LZ4's rule)
    extra = match - 4 - 15
    seq = bytes([0x1F, 0x00]) + struct.pack("<H", 1) + b"\xff" * (extra // 255) + \
        bytes([extra % 255]) + bytes([0x50]) + b"\x00" * 5
    return b"bv41" + struct.pack("<II", decoded, len(seq)) + seq + b"bv4$"


def _errors(code, message):
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


# case -> what the client must be told (a substring of its one error line), or None for cases
# that must succeed. The tests iterate over this.
CASES = {
    "stall": "stalled",               # half a blob, then silence; every later request stalls
    "auth": "tart login",             # 401 with a Basic challenge
    "denied": "denied access",        # 403
    "missing": "no such image or tag",  # 404
    "ratelimit": "rate-limiting",     # 429 with Retry-After, every time
    "broken": "error of its own",     # 503 with a distribution-spec error body
    "endless": "Error:",              # a manifest that never ends
    "lyingsize": "Error:",            # a blob larger than its descriptor
    "baddigest": "Error:",            # a blob whose bytes do not match its digest
    "dotdot": "Error:",               # '..' in a layer digest
    "lz4bomb": "Error:",              # a layer that decodes to 256 MiB instead of 1 MiB
    "hugedisk": "Error:",             # a 32 TiB disk layer
    "manylayers": "Error:",           # 9,000 disk layers
    "redirectloop": "redirect",       # a blob GET redirected to itself, forever
    "slowloris": "stalled",           # response headers trickled, a few bytes at a time
    "hugeheader": "too large",        # a 1 MiB response header line
    "clength": "Error:",              # a manifest shorter than its Content-Length
    "wrongrange": "range",            # a cut blob, then a 206 for another range
    "gzipbomb": "error of its own",   # a 500 whose gzip body inflates to 100 MiB
    "tokenloop": "tart login",        # tokens granted, then refused again and again
    "tokenstall": "token service stalled",  # a token service that never answers
    "hugewww": "Error:",              # a 1 MiB WWW-Authenticate
    "badconfig": "invalid config.json",  # config.json that is not JSON
    "badvalues": "invalid config.json",  # cpuCount 1e300, memorySize -5
    "index": "Error:",                # an image index instead of a manifest
    "notjson": "Error:",              # a manifest that is not JSON
    "noauth": "tart login",           # 401 without any WWW-Authenticate
    "emptyblob": "Error:",            # 200 and no bytes for a disk layer
    "emptyconfig": "Error:",          # 200 and no bytes for every blob (config.json first)
    "negsize": "Error:",              # a layer of size -1
    "bydigest": "returned content with digest",  # pulled by digest, answered with another
}
# the reference each case is pulled by (default ":latest")
CASE_REF = {"bydigest": "@sha256:" + "0" * 64}


class HostileRegistry(_Base):
    def __init__(self, config, disk, nvram, hold=30, **kw):
        super().__init__(None, **kw)
        self.hold = hold  # how long a stalled answer keeps its connection open
        self.manifest, self.blobs = tart_image(config, disk, nvram)
        self.stopping = threading.Event()
        self.cut_done = set()  # (case, digest) already cut once
        self.log = []  # (case, method, blob digest or "uploads/...", Range header)
        # a 500 body that inflates to 100 MiB (made once: compressing it takes a while)
        self.bomb = gzip.compress(b"\0" * (100 * MiB), compresslevel=9)
        self.variants = {}
        for case in list(CASES) + ["ok", "stallonce"]:
            self.variants[case] = self._variant(case, config, disk)

    def stop(self):
        self.stopping.set()
        super().stop()

    # -- images per case ------------------------------------------------------------------

    def _variant(self, case, config, disk):
        m = json.loads(json.dumps(self.manifest))
        layers = m["layers"]
        if case in ("badconfig", "badvalues"):
            bad = b"this is not JSON {" if case == "badconfig" else \
                json.dumps(dict(json.loads(config), cpuCount=1e300, memorySize=-5)).encode()
            d = _digest(bad)
            self.blobs[d] = bad
            layers[0].update(digest=d, size=len(bad))
        elif case == "lyingsize":
            layers[1]["size"] -= 100
        elif case == "baddigest":
            real = self.blobs[layers[1]["digest"]]
            fake = _digest(real + b"x")
            self.blobs[fake] = real
            layers[1]["digest"] = fake
        elif case == "dotdot":
            layers[1]["digest"] = "sha256:../../../../../../tmp/tart-hostile-dotdot"
        elif case == "lz4bomb":
            bomb = lz4_bomb(256 * MiB)
            d = _digest(bomb)
            self.blobs[d] = bomb
            layers[1].update(digest=d, size=len(bomb))
        elif case == "hugedisk":
            size = 1 << 45  # 32 TiB: more than ext4 lets a file be
            layers[1]["annotations"]["org.cirruslabs.tart.uncompressed-size"] = str(size)
            m["annotations"]["org.cirruslabs.tart.uncompressed-disk-size"] = str(
                size + len(disk) - MiB)
        elif case == "manylayers":
            piece = layers[1]
            m["layers"] = [layers[0]] + [dict(piece) for _ in range(9000)] + [layers[-1]]
            m["annotations"]["org.cirruslabs.tart.uncompressed-disk-size"] = str(9000 * MiB)
        elif case == "negsize":
            layers[1]["size"] = -1
        elif case == "index":
            m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [{"mediaType": MANIFEST_TYPE, "digest": "sha256:" + "0" * 64,
                                "size": 10}]}
        body = json.dumps(m, indent=2).encode()
        if case == "notjson":
            body = b"<html>not a manifest</html>"
        return body

    # -- request handling -----------------------------------------------------------------

    def handle(self, h):
        path = h.path.split("?", 1)[0]
        if path == "/v2/":
            return h.reply(200, b"{}", {"Content-Type": "application/json"})
        if path.startswith("/token/"):
            return self._token(h, path.split("/")[2])
        m = re.match(r"^/v2/([a-z0-9-]+)/vm/(manifests|blobs)/(.+)$", path)
        if not m or m.group(1) not in self.variants:
            return h.reply(404, _errors("NAME_UNKNOWN", "repository name not known"))
        case, kind, ref = m.group(1), m.group(2), m.group(3)
        self.count(f"{case} {'manifest' if kind == 'manifests' else 'blob'}")
        if kind == "blobs":
            with self.lock:
                self.log.append((case, h.command, ref, h.headers.get("Range")))
        h.read_body()
        special = getattr(self, "_case_" + case, None)
        if special and special(h, kind, ref) is not False:
            return None
        if kind == "manifests":
            return self._manifest(h, self.variants[case])
        return self._blob(h, case, ref)

    def _manifest(self, h, body):
        return h.reply(200, body, {"Content-Type": MANIFEST_TYPE,
                                   "Docker-Content-Digest": _digest(body)})

    def _blob(self, h, case, digest, cut_at=None):
        data = self.blobs.get(digest)
        if data is None:
            return h.reply(404, _errors("BLOB_UNKNOWN", "blob unknown to registry"))
        rng = h.headers.get("Range")
        start = 0
        if rng:
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
        body = data[start:]
        h.send_response(206 if rng else 200)
        if rng:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command == "HEAD":
            return None
        if cut_at is None:
            h.wfile.write(body)
            return None
        h.wfile.write(body[:cut_at])
        h.wfile.flush()
        return True

    def _hold(self, h):
        """Keep the connection open and silent until the client gives up (or `hold` ends)."""
        h.wfile.flush()
        self.stopping.wait(self.hold)
        h.close_connection = True

    def _disk_layer(self, ref):
        return ref == self.manifest["layers"][1]["digest"]

    # -- the cases ------------------------------------------------------------------------

    def _case_stall(self, h, kind, ref):
        if kind == "blobs" and ref.startswith("uploads"):  # push: the upload never starts
            self._hold(h)
            return True
        if kind != "blobs" or not self._disk_layer(ref):
            return False
        key = ("stall", ref)
        with self.lock:
            first = key not in self.cut_done
            self.cut_done.add(key)
        if first:  # half of the blob, then silence
            self._blob(h, "stall", ref, cut_at=len(self.blobs[ref]) // 2)
        else:  # headers, then silence
            h.send_response(206 if h.headers.get("Range") else 200)
            h.send_header("Content-Length", str(len(self.blobs[ref])))
            h.end_headers()
        self._hold(h)
        return True

    def _case_stallonce(self, h, kind, ref):
        if kind != "blobs" or not self._disk_layer(ref):
            return False
        key = ("stallonce", ref)
        with self.lock:
            first = key not in self.cut_done
            self.cut_done.add(key)
        if not first:
            return False
        self._blob(h, "stallonce", ref, cut_at=len(self.blobs[ref]) // 2)
        self._hold(h)
        return True

    def _case_auth(self, h, kind, ref):
        return h.reply(401, _errors("UNAUTHORIZED", "authentication required"),
                       {"WWW-Authenticate": 'Basic realm="hostile"',
                        "Content-Type": "application/json"})

    def _case_denied(self, h, kind, ref):
        return h.reply(403, _errors("DENIED", "requested access to the resource is denied"),
                       {"Content-Type": "application/json"})

    def _case_missing(self, h, kind, ref):
        return h.reply(404, _errors("MANIFEST_UNKNOWN", f"manifest unknown: {ref}"),
                       {"Content-Type": "application/json"})

    def _case_ratelimit(self, h, kind, ref):
        return h.reply(429, _errors("TOOMANYREQUESTS", "pull rate limit exceeded"),
                       {"Retry-After": "1", "Content-Type": "application/json"})

    def _case_broken(self, h, kind, ref):
        return h.reply(503, _errors("UNAVAILABLE", "storage backend down"),
                       {"Content-Type": "application/json"})

    def _case_endless(self, h, kind, ref):
        if kind != "manifests":
            return False
        h.send_response(200)
        h.send_header("Content-Type", MANIFEST_TYPE)
        h.send_header("Connection", "close")
        h.end_headers()
        chunk = b'{"schemaVersion": 2, "layers": [' + b" " * 65536
        try:
            for _ in range(4096):  # 256 MiB at most, whatever the client does
                if self.stopping.is_set():
                    break
                h.wfile.write(chunk)
        except OSError:
            pass
        h.close_connection = True
        return True

    def _case_redirectloop(self, h, kind, ref):
        if kind != "blobs":
            return False
        return h.reply(307, b"", {"Location": h.path})

    def _case_slowloris(self, h, kind, ref):
        h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        try:
            deadline = time.time() + self.hold
            while time.time() < deadline and not self.stopping.is_set():
                h.wfile.write(b"a" * 40)  # 2 KB/s: above any low-speed limit
                h.wfile.flush()
                time.sleep(0.02)
        except OSError:
            pass
        h.close_connection = True
        return True

    @staticmethod
    def _huge_header(h, status, name, value):
        h.send_response(status)
        h.send_header(name, value)
        h.send_header("Content-Length", "0")
        try:
            h.end_headers()
        except OSError:
            pass
        return True

    def _case_hugeheader(self, h, kind, ref):
        return self._huge_header(h, 200, "X-Huge", "a" * MiB)

    def _case_hugewww(self, h, kind, ref):
        return self._huge_header(h, 401, "WWW-Authenticate", 'Bearer realm="' + "r" * MiB + '"')

    def _case_noauth(self, h, kind, ref):
        return h.reply(401, b"", {})

    def _case_emptyblob(self, h, kind, ref):
        if kind != "blobs" or not self._disk_layer(ref):
            return False
        return h.reply(200, b"", {})

    def _case_emptyconfig(self, h, kind, ref):
        if kind != "blobs":
            return False
        return h.reply(200, b"", {})

    def _case_clength(self, h, kind, ref):
        if kind != "manifests":
            return False
        body = self.variants["clength"]
        h.send_response(200)
        h.send_header("Content-Type", MANIFEST_TYPE)
        h.send_header("Content-Length", str(len(body) + 5000))
        h.end_headers()
        h.wfile.write(body)
        h.close_connection = True
        return True

    def _case_wrongrange(self, h, kind, ref):
        if kind != "blobs" or not self._disk_layer(ref):
            return False
        data = self.blobs[ref]
        if not h.headers.get("Range"):
            self._blob(h, "wrongrange", ref, cut_at=len(data) // 2)
            h.close_connection = True
            return True
        h.send_response(206)
        h.send_header("Content-Range", f"bytes 0-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        return True

    def _case_gzipbomb(self, h, kind, ref):
        body = self.bomb
        h.send_response(500)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
        return True

    def _challenge(self, h, case):
        realm = f"http://{self.host}/token/{case}"
        return h.reply(401, _errors("UNAUTHORIZED", "authentication required"),
                       {"WWW-Authenticate":
                        f'Bearer realm="{realm}",service="hostile",scope="repository:{case}/vm:pull"',
                        "Content-Type": "application/json"})

    def _case_tokenloop(self, h, kind, ref):
        return self._challenge(h, "tokenloop")

    def _case_tokenstall(self, h, kind, ref):
        return self._challenge(h, "tokenstall")

    def _token(self, h, case):
        self.count(f"{case} token")
        if case == "tokenstall":
            self._hold(h)
            return None
        return h.reply(200, json.dumps({"token": "t0k3n", "expires_in": 300}).encode(),
                       {"Content-Type": "application/json"})



def main():
    """Serve the cases by hand: prints host:port, then `tart pull --insecure HOST/<case>/vm:latest`."""
    import argparse
    import os
    ap = argparse.ArgumentParser()
    ap.add_argument("--lifetime", type=int, default=600)
    a = ap.parse_args()
    config = json.dumps({"version": 1, "os": "linux", "arch": "amd64", "cpuCountMin": 1,
                         "cpuCount": 1, "memorySizeMin": 1 << 28, "memorySize": 1 << 29,
                         "macAddress": "52:54:00:12:34:56",
                         "display": {"width": 1024, "height": 768}}).encode()
    srv = HostileRegistry(config, os.urandom(MiB) + b"\0" * MiB, os.urandom(4096),
                          lifetime=a.lifetime).start()
    print(srv.host, flush=True)
    time.sleep(a.lifetime)
    srv.stop()


if __name__ == "__main__":
    main()
