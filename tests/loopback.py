"""A loopback HTTP server for the data tests: files by path, served slowly, stalled or missing on request.

It listens on 127.0.0.1 only, on a free port, and stops with the fixture that made it;
a stalled answer stops by itself after `stall_seconds`.
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        with server.lock:
            server.log.append((self.path, self.headers.get("Range")))
        body = server.files.get(self.path)
        if body is None:
            return self._send(404, b"not here\n", {"Content-Type": "text/plain"})
        start = 0
        asked = self.headers.get("Range")
        if asked:
            start = int(asked.removeprefix("bytes=").split("-")[0])
        headers = {"Content-Type": "application/octet-stream"}
        status = 200
        if start:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        stall_at = server.stall.get(self.path)
        self._send(status, body[start:], headers, stall_at=None if start else stall_at)

    def _send(self, code, body, headers, stall_at=None):
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        step = self.server.chunk
        for offset in range(0, len(body), step):
            if stall_at is not None and offset >= stall_at:
                # Hold the connection open, sending nothing, then give up.
                time.sleep(self.server.stall_seconds)
                self.close_connection = True
                return
            try:
                self.wfile.write(body[offset:offset + step])
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                return
            if self.server.delay:
                time.sleep(self.server.delay)


class Loopback:
    """`files`: path -> bytes; `delay` seconds between chunks of `chunk` bytes; `stall`: path -> offset."""

    def __init__(self, files=None, delay=0.0, chunk=1 << 14, stall_seconds=5.0):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), LoopbackHandler)
        self.httpd.daemon_threads = True
        self.httpd.files = dict(files or {})
        self.httpd.log = []
        self.httpd.lock = threading.Lock()
        self.httpd.delay, self.httpd.chunk = delay, chunk
        self.httpd.stall, self.httpd.stall_seconds = {}, stall_seconds
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def files(self):
        return self.httpd.files

    @property
    def log(self):
        return self.httpd.log

    @property
    def stall(self):
        return self.httpd.stall

    def hits(self, path) -> int:
        return sum(1 for p, _ in self.httpd.log if p == path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
