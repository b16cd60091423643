"""A webhook receiver on 127.0.0.1 for the tests: records every request it gets and
answers by path (/ok, /status/<code>, /redirect -> /landed, /slow, /huge, and /hold, which
answers once the test calls `release`)."""

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_SECONDS = 3
HUGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_GET(self):
        self._answer(b"")

    def do_POST(self):
        self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _answer(self, body: bytes) -> None:
        self.server.received.append(Received(self.path, dict(self.headers), body))
        if self.path == "/redirect":
            self._send(302, b"", {"Location": "/landed"})
        elif self.path.startswith("/status/"):
            self._send(int(self.path.rsplit("/", 1)[1]), b"no")
        elif self.path == "/slow":
            time.sleep(SLOW_SECONDS)
            self._send(200, b"late")
        elif self.path == "/hold":
            self.server.released.wait(60)
            self._send(200, b"ok")
        elif self.path == "/huge":
            self._huge()
        else:
            self._send(200, b"ok")

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        try:
            self.send_response(status)
            for name, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up waiting (the slow receiver's test)
            pass

    def _huge(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(HUGE_BYTES))
        self.end_headers()
        chunk = b"x" * 65536
        try:
            for _ in range(HUGE_BYTES // len(chunk)):
                self.wfile.write(chunk)
                self.server.sent_bytes += len(chunk)
        except OSError:  # the client hung up: what the cap is for
            pass

    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    received: list[Received]
    sent_bytes: int
    released: threading.Event


class Receiver:
    def __init__(self):
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.received, self.server.sent_bytes = [], 0
        self.server.released = threading.Event()
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/ok", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def received(self) -> list[Received]:
        return self.server.received

    def paths(self) -> list[str]:
        return [r.path for r in self.received]

    def release(self) -> None:
        """/hold answers (those waiting, and every later one at once)."""
        self.server.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
