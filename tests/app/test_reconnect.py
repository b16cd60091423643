"""`flask worker` and `flask cron` as production runs them, on a Redis of their own that
goes away and comes back: both stay up, reconnect and carry on; SIGTERM still stops them."""

import os
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import pytest
import redis
from rq import Queue, Worker
from rq.cron import get_cron_job_ids

from app.jobs import JOBS
from config import ENVIRONMENT_VARIABLES, ROOT
from core.jobs import Job
from tests.helpers import ENCRYPTION_KEY, free_port, harpoon_of

SWEEP_SECONDS = 2


def wait_for(condition, what: str, timeout: float = 60.0, processes=()):
    """Poll until `condition()` holds; the processes must stay up meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        for process in processes:
            assert process.poll() is None, f"{process.args[-1]} exited while waiting for {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.2)


class RedisServer:
    """A redis-server of the test's own on a free port, stopped and started at will."""

    def __init__(self, tmp_path: Path):
        self.port = free_port()
        self.dir = tmp_path
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.dir)),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self.answers, "redis-server")

    def stop(self) -> None:
        """Gone, with everything it held (SHUTDOWN NOSAVE)."""
        with suppress(redis.ConnectionError):  # it closes the connection as it goes
            self.client().shutdown(nosave=True)
        self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.process.terminate()
        server.process.wait(timeout=10)


@pytest.fixture
def harpoon_process(app, database_url, redis_server, tmp_path):
    """Starts `flask <command>` on the test database and the test's own Redis."""
    settings = harpoon_of(app).settings
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_server.url,
        HARPOON_ENCRYPTION_KEYS=ENCRYPTION_KEY,
        HARPOON_SECRET_KEY=settings.secret_key,
        HARPOON_INSTANCE_DIR=str(tmp_path / "instance"),
        HARPOON_SWEEP_INTERVAL_SECONDS=str(SWEEP_SECONDS),
    )
    started = []

    def start(command: str) -> subprocess.Popen:
        with (tmp_path / f"{command}.log").open("w") as log:
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", command],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def sweeps_enqueued_by_cron(redis_server) -> list[str]:
    sweep = JOBS[Job.SWEEP_INBOX]
    return get_cron_job_ids(f"{sweep.__module__}.{sweep.__name__}", redis_server.client())


def a_job_runs(redis_server, queue_name: str, processes) -> None:
    """Enqueue the sweeper on `queue_name` and wait until a worker has run it."""
    queue = Queue(queue_name, connection=redis_server.client())
    job = queue.enqueue(JOBS[Job.SWEEP_INBOX], result_ttl=600)
    wait_for(lambda: job.get_status(refresh=True) == "finished", "the job run", processes=processes)


def test_worker_and_cron_outlive_a_redis_restart_and_carry_on(
    app, redis_server, harpoon_process, tmp_path
):
    high, default, _ = harpoon_of(app).settings.queue_names
    worker, cron = harpoon_process("worker"), harpoon_process("cron")
    both = (worker, cron)
    wait_for(lambda: sweeps_enqueued_by_cron(redis_server), "sweep from cron", processes=both)
    a_job_runs(redis_server, default, both)

    redis_server.stop()
    # Long enough for each to meet the loss: cron wakes every SWEEP_SECONDS, the worker
    # at once (its wait for a job is a connection to Redis).
    time.sleep(4 * SWEEP_SECONDS)
    assert worker.poll() is None, (tmp_path / "worker.log").read_text()
    assert cron.poll() is None, (tmp_path / "cron.log").read_text()

    redis_server.start()  # empty: NOSAVE kept nothing
    wait_for(lambda: sweeps_enqueued_by_cron(redis_server), "sweep after restart", processes=both)
    wait_for(lambda: Worker.all(connection=redis_server.client()), "worker re-registered", 60, both)
    a_job_runs(redis_server, high, both)
    a_job_runs(redis_server, default, both)
    assert "reconnected" in (tmp_path / "worker.log").read_text()
    assert "reconnected" in (tmp_path / "cron.log").read_text()

    for process in both:
        process.terminate()
    for process in both:
        assert process.wait(timeout=30) == 0


def test_sigterm_stops_a_worker_and_a_cron_waiting_for_redis(
    app, redis_server, harpoon_process, tmp_path
):
    worker, cron = harpoon_process("worker"), harpoon_process("cron")
    wait_for(lambda: sweeps_enqueued_by_cron(redis_server), "sweep from cron", processes=(cron,))
    wait_for(lambda: Worker.all(connection=redis_server.client()), "worker", 60, (worker,))
    redis_server.stop()
    log = tmp_path / "worker.log"
    wait_for(lambda: "lost its connection" in log.read_text(), "the worker to notice")
    wait_for(lambda: "lost its connection" in (tmp_path / "cron.log").read_text(), "cron")
    for process in (worker, cron):
        process.terminate()
    for process in (worker, cron):
        assert process.wait(timeout=30) == 0
