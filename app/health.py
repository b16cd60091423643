from flask import Blueprint, jsonify
from sqlalchemy import text

from app.extensions import harpoon

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Database and queue reachability, for load balancers and `make run`."""
    h = harpoon()
    checks = {}
    try:
        with h.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report any failure, do not raise it
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        h.queue.ping()
        checks["redis"] = "ok" if not h.settings.embedded_queue else "ok (embedded)"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(v.startswith("ok") for v in checks.values())
    return jsonify(status="ok" if healthy else "error", **checks), 200 if healthy else 503
