#!/usr/bin/env python3
"""A peer that lies: it answers the version routes of an exporter or a
pull-backup (docs/protocol.md, "Serving a version") the way the file
named by its second argument says, one scenario at a time:

  good          a manifest of one file f, and its bytes
  path          an entry whose path climbs out (../escape)
  absolute      an entry with an absolute path (/tmp/...)
  count         "entries 100000000" and one line
  hugesize      a file the manifest says is 2^62 bytes
  lie-long      the file route sends 5 MB for a 6-byte file
  lie-content   the file route sends other bytes of the right size
  endless       the file route sends a chunked body that never ends
  garbage       deltas are random bytes, and the file lies too
  short-close   the file route says 6 bytes, sends 3 and closes
  slow          the file route sends a byte a second
  zstd-bomb     the file route sends, as zstd, 50 MB of zeros
  zstd-garbage  the file route sends random bytes as zstd
  gzip          the file route sends its bytes as gzip, not asked for

Usage: hostile_peer.py PORT SCENARIO_FILE
"""
import hashlib
import http.server
import os
import socketserver
import sys
import time

PORT = int(sys.argv[1])
SCENARIO = sys.argv[2]


def scenario():
    with open(SCENARIO) as f:
        return f.read().strip()


def manifest(version, lines, count=None):
    head = ["understudy-manifest 1", "source db", "version " + version]
    n = len(lines) if count is None else count
    return ("\n".join(head + ["entries %d" % n] + lines + ["end"]) + "\n").encode()


def entry(path, data, size=None):
    size = len(data) if size is None else size
    return "F 0644 %d 1763754068.000000000 %s %s" % (
        size, hashlib.sha256(data).hexdigest(), path)


GOOD = b"hello\n"
# 50 MB of zeros in 1.6 KB of zstd (the fuzz corpus's).
BOMB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz",
                    "corpus", "wirez", "bomb.zst")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("hostile: " + fmt % args + "\n")

    def send(self, code, body, ctype="text/plain", encoding=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if encoding is not None:
            self.send_header("Content-Encoding", encoding)
        self.send_header("X-Understudy-Protocol", "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def parts(self):
        path, _, query = self.path.partition("?")
        p = path.split("/")
        # /v1/sources/db/versions/V/what
        if len(p) != 7 or p[1] != "v1" or p[2] != "sources":
            return None, None, query
        return p[5], p[6], query

    def version_content(self):
        # Each scenario's file differs, so a delta is asked for once the
        # archive holds a version.
        return ("content of %s\n" % scenario()).encode()[:64]

    def do_GET(self):
        version, what, query = self.parts()
        s = scenario()
        if version is None:
            self.send(404, b'{"proto":1,"error":"no"}', "application/json")
            return
        data = GOOD if s == "good" else self.version_content()
        if what == "manifest":
            if s == "path":
                body = manifest(version, [entry("../escape", data)])
            elif s == "absolute":
                body = manifest(version, [entry("/tmp/understudy-escape", data)])
            elif s == "count":
                body = manifest(version, [entry("f", data)], count=100000000)
            elif s == "hugesize":
                body = manifest(version, [entry("f", data, size=1 << 62)])
            else:
                body = manifest(version, [entry("f", data)])
            self.send(200, body)
        elif what == "file":
            if s == "lie-long" or s == "garbage":
                self.send(200, b"x" * (5 << 20))
            elif s == "lie-content":
                self.send(200, bytes(len(data)))
            elif s == "zstd-bomb":
                with open(BOMB, "rb") as f:
                    self.send(200, f.read(), encoding="zstd")
            elif s == "zstd-garbage":
                self.send(200, os.urandom(4096), encoding="zstd")
            elif s == "gzip":
                import gzip
                self.send(200, gzip.compress(data), encoding="gzip")
            elif s == "short-close":
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:3])
                self.wfile.flush()
                self.close_connection = True
            elif s == "slow":
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    for i in range(len(data)):
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                        time.sleep(1)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True
            elif s == "endless":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for _ in range(200000):
                        self.wfile.write(b"1000\r\n" + b"y" * 4096 + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True
            else:
                self.send(200, data)
        elif what == "delta":
            # No stored delta: the client posts a signature.
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send(404, b'{"proto":1,"error":"no"}', "application/json")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        version, what, _ = self.parts()
        if what == "delta":
            self.send(200, os.urandom(4096), "application/octet-stream")
        elif self.path == "/v1/events":
            self.send(200, b'{"proto":1,"queued":true}', "application/json")
        else:
            self.send(404, b'{"proto":1,"error":"no"}', "application/json")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


Server(("127.0.0.1", PORT), Handler).serve_forever()
