# SPDX-License-Identifier: Apache-2.0
"""Test-only HTTP servers that sit in front of a real docker-registry (Python stdlib only).

TokenAuthProxy: a Bearer token service plus an auth-enforcing reverse proxy. Every /v2/
request needs `Authorization: Bearer <token>` whose scope covers the repository and action
(pull for GET/HEAD, push for the rest); otherwise 401 with a Docker-style challenge. Tokens
live `ttl` seconds (expired ones get 401). /token checks Basic credentials when configured.

FaultProxy: a reverse proxy that applies scripted faults to matching requests: drop the
connection after N body bytes, answer a status (with Retry-After), delay, corrupt a byte,
redirect blob GETs to a sidecar on another loopback host that rejects any Authorization
header (and fetches the blob from upstream itself).

Both listen on loopback only, stop after `max_requests` requests or `lifetime` seconds, and
expose counters in `.stats`. Use in-process (start()/stop()) or from the command line:
    python3 registry_proxies.py token --upstream 127.0.0.1:5000 [--user u --password p]
    python3 registry_proxies.py fault --upstream 127.0.0.1:5000 --rules rules.json
"""
import argparse
import base64
import http.client
import json
import re
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authorization", "proxy-authenticate"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Base:
    """A bounded loopback server with a request counter."""

    def __init__(self, upstream, host="127.0.0.1", max_requests=20000, lifetime=600):
        self.upstream = upstream
        self.max_requests = max_requests
        self.lifetime = lifetime
        self.lock = threading.Lock()
        self.stats = {"requests": 0, "connections": 0}
        self.httpd = _Server((host, 0), self._handler_class())
        self.host = f"{host}:{self.httpd.server_address[1]}"
        self._timer = None

    def count(self, key, n=1):
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + n
            return self.stats[key]

    def start(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self):
        if self._timer:
            self._timer.cancel()
        threading.Thread(target=self.httpd.shutdown, daemon=True).start()
        self.httpd.server_close()

    def _handler_class(self):
        owner = self

        class Handler(_ProxyHandler):
            server_owner = owner
        return Handler

    # overridden
    def handle(self, h):
        h.forward()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_owner = None

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.server_owner.count("connections")

    def _dispatch(self):
        o = self.server_owner
        o.count("method_" + self.command)
        if o.count("requests") > o.max_requests:
            self.reply(503, b"request budget exhausted\n")
            self.close_connection = True
            return
        o.handle(self)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _dispatch

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        chunks = []
        while n > 0:
            c = self.rfile.read(min(n, 1 << 20))
            if not c:
                break
            chunks.append(c)
            n -= len(c)
        return b"".join(chunks)

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def upstream_request(self, body, drop_auth=True, extra=None, path=None):
        conn = http.client.HTTPConnection(self.server_owner.upstream, timeout=120)
        hdrs = {k: v for k, v in self.headers.items()
                if k.lower() not in HOP_HEADERS and (k.lower() != "authorization" or not drop_auth)}
        hdrs.update(extra or {})
        conn.request(self.command, path or self.path, body=body if body or self.command in
                     ("PUT", "POST", "PATCH") else None, headers=hdrs)
        return conn, conn.getresponse()

    def forward(self, drop_auth=True, fault=None, extra=None, path=None, override=None):
        """Relay to upstream; fault(handler, resp) may take over the body relay; override
        replaces response headers (lower-case names)."""
        body = self.read_body()
        conn, resp = self.upstream_request(body, drop_auth, extra, path)
        try:
            self.send_response(resp.status)
            length = resp.getheader("Content-Length")
            override = override or {}
            for k, v in resp.getheaders():
                if k.lower() not in HOP_HEADERS and k.lower() != "content-length":
                    self.send_header(k, override.pop(k.lower(), v))
            for k, v in override.items():
                self.send_header(k, v)
            if length is not None:
                self.send_header("Content-Length", length)
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command == "HEAD":
                return
            if fault:
                fault(self, resp)
                return
            while True:
                c = resp.read(1 << 16)
                if not c:
                    break
                self.wfile.write(c)
        finally:
            conn.close()


# ------------------------------------------------------------------------------------------
# Bearer tokens


class TokenAuthProxy(_Base):
    def __init__(self, upstream, user=None, password=None, ttl=60, delay=0.0, **kw):
        super().__init__(upstream, **kw)
        self.user, self.password, self.ttl, self.delay = user, password, ttl, delay
        self.tokens = {}  # token -> (expiry, set of (repo, action))
        self.stats.update({"tokens": 0, "challenges": 0, "expired": 0, "bad_scope": 0})

    def handle(self, h):
        path = h.path.split("?", 1)[0]
        if path == "/token":
            return self.token(h)
        if not path.startswith("/v2/"):
            return h.reply(404)
        need = self.needed_scope(h.command, path)
        auth = h.headers.get("Authorization", "")
        ok = False
        if auth.startswith("Bearer "):
            with self.lock:
                entry = self.tokens.get(auth[7:])
            if entry and entry[0] < time.time():
                self.count("expired")
            elif entry and need and need not in entry[1]:
                self.count("bad_scope")
            elif entry:
                ok = True
        if not ok:
            self.count("challenges")
            chal = f'Bearer realm="http://{self.host}/token",service="test-registry"'
            if need:
                chal += f',scope="repository:{need[0]}:pull,push"'
            h.read_body()
            return h.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                           {"WWW-Authenticate": chal, "Content-Type": "application/json"})
        if self.delay:
            time.sleep(self.delay)
        h.forward()

    @staticmethod
    def needed_scope(method, path):
        m = re.match(r"^/v2/(.+?)/(manifests|blobs|tags)/", path)
        if not m:
            return None
        return (m.group(1), "pull" if method in ("GET", "HEAD") else "push")

    def token(self, h):
        if self.user is not None:
            want = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if h.headers.get("Authorization") != want:
                self.count("token_denied")
                return h.reply(401, b'{"details":"bad credentials"}')
        from urllib.parse import parse_qs, urlsplit
        q = parse_qs(urlsplit(h.path).query)
        granted = set()
        for scope in q.get("scope", []):
            parts = scope.split(":")
            if len(parts) == 3 and parts[0] == "repository":
                for action in parts[2].split(","):
                    granted.add((parts[1], action))
        tok = secrets.token_hex(16)
        now = time.time()
        with self.lock:
            self.tokens[tok] = (now + self.ttl, granted)
        self.count("tokens")
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        body = json.dumps({"token": tok, "expires_in": self.ttl, "issued_at": issued}).encode()
        h.reply(200, body, {"Content-Type": "application/json"})


# ------------------------------------------------------------------------------------------
# Faults


class _Sidecar(_Base):
    """Redirect target: serves /fetch/<path> from upstream, rejects any Authorization."""

    def __init__(self, upstream, upstream_auth, **kw):
        super().__init__(upstream, **kw)
        self.upstream_auth = upstream_auth
        self.stats.update({"auth_violations": 0, "served": 0})

    def handle(self, h):
        if "Authorization" in h.headers:
            self.count("auth_violations")
            return h.reply(400, b"Authorization must not reach this host\n")
        if not h.path.startswith("/fetch/"):
            return h.reply(404)
        self.count("served")
        extra = {}
        if self.upstream_auth:
            extra["Authorization"] = "Basic " + base64.b64encode(self.upstream_auth.encode()).decode()
        h.forward(drop_auth=True, extra=extra, path=h.path[len("/fetch"):])


class FaultProxy(_Base):
    """rules: dicts with method, path (regex), action, times (default 1) and action options:
      drop:     after=<bytes of body relayed before the connection is cut>
      status:   code=<int>, retry_after=<str>, body=<str>, headers=<dict> (not forwarded)
      slow:     delay=<seconds before forwarding>
      corrupt:  at=<offset in the body whose byte is flipped>
      redirect: 307 to the sidecar (blob GETs)
      header:   name=<response header>, value=<str> replaces it in the upstream's answer
    """

    def __init__(self, upstream, rules=(), upstream_auth=None, **kw):
        super().__init__(upstream, **kw)
        self.rules = [dict(r, left=r.get("times", 1)) for r in rules]
        self.sidecar = _Sidecar(upstream, upstream_auth, host=self._other_loopback())
        self.stats.update({"faults": 0})

    @staticmethod
    def _other_loopback():
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.2", 0))
            return "127.0.0.2"
        except OSError:
            return "127.0.0.1"

    def start(self):
        self.sidecar.start()
        return super().start()

    def stop(self):
        self.sidecar.stop()
        super().stop()

    def add_rule(self, **rule):
        with self.lock:
            self.rules.append(dict(rule, left=rule.get("times", 1)))

    def _match(self, h):
        with self.lock:
            for r in self.rules:
                if r["left"] > 0 and r.get("method", h.command) == h.command and \
                        re.search(r.get("path", ""), h.path):
                    r["left"] -= 1
                    self.stats["faults"] += 1
                    key = "fault_" + r["action"]
                    self.stats[key] = self.stats.get(key, 0) + 1
                    return r
        return None

    def handle(self, h):
        r = self._match(h)
        if not r:
            return h.forward(drop_auth=False)
        a = r["action"]
        if a == "status":
            h.read_body()
            hdrs = dict(r.get("headers", {}))
            if "retry_after" in r:
                hdrs["Retry-After"] = str(r["retry_after"])
            return h.reply(int(r["code"]), r.get("body", "injected fault").encode(), hdrs)
        if a == "slow":
            time.sleep(float(r.get("delay", 1)))
            return h.forward(drop_auth=False)
        if a == "redirect":
            h.read_body()
            return h.reply(307, b"", {"Location": f"http://{self.sidecar.host}/fetch{h.path}"})
        if a == "header":
            return h.forward(drop_auth=False, override={r["name"].lower(): r["value"]})
        if a == "drop":
            return h.forward(drop_auth=False, fault=lambda hh, resp: self._drop(hh, resp, r))
        if a == "corrupt":
            return h.forward(drop_auth=False, fault=lambda hh, resp: self._corrupt(hh, resp, r))
        raise ValueError(f"unknown action {a}")

    @staticmethod
    def _drop(h, resp, r):
        left = int(r.get("after", 0))
        while left > 0:
            c = resp.read(min(left, 1 << 16))
            if not c:
                break
            h.wfile.write(c)
            left -= len(c)
        h.wfile.flush()
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    @staticmethod
    def _corrupt(h, resp, r):
        at, pos = int(r.get("at", 0)), 0
        while True:
            c = resp.read(1 << 16)
            if not c:
                break
            if pos <= at < pos + len(c):
                b = bytearray(c)
                b[at - pos] ^= 0xFF
                c = bytes(b)
            h.wfile.write(c)
            pos += len(c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["token", "fault"])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--ttl", type=int, default=60)
    ap.add_argument("--rules", help="JSON file with a list of fault rules")
    ap.add_argument("--upstream-auth", help="user:pass the redirect sidecar uses upstream")
    ap.add_argument("--max-requests", type=int, default=20000)
    ap.add_argument("--lifetime", type=int, default=600)
    a = ap.parse_args()
    kw = {"max_requests": a.max_requests, "lifetime": a.lifetime}
    if a.kind == "token":
        srv = TokenAuthProxy(a.upstream, a.user, a.password, a.ttl, **kw)
    else:
        rules = json.load(open(a.rules)) if a.rules else []
        srv = FaultProxy(a.upstream, rules, a.upstream_auth, **kw)
    srv.start()
    print(srv.host, flush=True)
    deadline = time.time() + a.lifetime
    while time.time() < deadline and srv.stats["requests"] <= a.max_requests:
        time.sleep(0.5)
    srv.stop()


if __name__ == "__main__":
    main()
