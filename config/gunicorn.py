"""Gunicorn settings: `gunicorn -c config/gunicorn.py wsgi:app`.

Read from the environment like the rest of config/; on the embedded default
there is one process, whose in-process worker drains the inbox.
"""

import os

bind = os.environ.get("HARPOON_BIND", "127.0.0.1:8000")
_embedded_queue = not os.environ.get("REDIS_URL")
workers = 1 if _embedded_queue else int(os.environ.get("HARPOON_WEB_WORKERS", "2"))
worker_class = "gthread"
# Threads overlap database and Redis waits; 8 measured best on 2 cores (bench/README.md).
threads = int(os.environ.get("HARPOON_WEB_THREADS", "8"))
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("HARPOON_ACCESS_LOG") or None
errorlog = "-"


def post_worker_init(worker):
    """The embedded queue's worker thread lives in the web process."""
    app = worker.wsgi
    harpoon = getattr(app, "extensions", {}).get("harpoon")
    if harpoon is not None:
        harpoon.queue.start_embedded_worker(app)
