"""A sandbox on a real port, for tests whose code talks HTTP to it."""

import threading

from werkzeug.serving import make_server

from wechat.sandbox import create_sandbox


class SandboxServer:
    def __init__(self):
        self.app = create_sandbox()
        self.state = self.app.extensions["sandbox"]
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        """No tenants, no faults, no callbacks or errors recorded, the platform's clock on
        time: a test starts empty."""
        with self.state.lock:
            self.state.tenants.clear()
            self.state.faults.clear()
            self.state.deliveries.clear()
            self.state.error_counts.clear()
            self.state.clock_offset = 0

    def close(self):
        self.server.shutdown()
        self.server.server_close()
