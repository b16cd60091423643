"""The job queue: real RQ on Redis, or the same RQ on an in-process fakeredis.

The embedded default runs its worker on a thread of the web process, so a
new user sees callbacks processed with nothing but `make run`.
"""

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress

import fakeredis
import redis
from flask import Flask
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.exceptions import DuplicateJobError
from rq.timeouts import TimerDeathPenalty

from config import Settings
from core.jobs import HIGH_PRIORITY, Job

log = logging.getLogger(__name__)


class AppWorker(SimpleWorker):
    """An RQ worker that runs each job inside the Flask app context.

    SimpleWorker (no fork per job): drains are short and frequent, and a fork
    would cost more than the job and reconnect to the database every time.
    """

    def __init__(self, *args, app: Flask, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = app

    def perform_job(self, job, queue, execution):
        with self.app.app_context():
            return super().perform_job(job, queue, execution)


class ThreadWorker(AppWorker):
    """AppWorker for a non-main thread: no signal handlers, timer-based timeouts."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self):
        pass


class DrainRequests:
    """Callbacks mark their workspace; a thread of the process asks for the drains.

    The callback answers WeChat without a Redis round trip, and a burst of
    callbacks costs one request per workspace per pass, not one per callback.
    A mark is made after the row is committed, so the ordering request_drain
    relies on still holds; if the process dies first, the sweeper finds the row.
    """

    PASS_INTERVAL_SECONDS = 0.02

    def __init__(self, queue: "JobQueue"):
        self._queue = queue
        self._marked: set[int] = set()
        self._lock = threading.Lock()  # guards _marked and the thread's start
        self._sending = threading.Lock()  # one pass at a time; flush() waits for it
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def mark(self, workspace_id: int) -> None:
        with self._lock:
            self._marked.add(workspace_id)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="harpoon-drain-requests", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def flush(self) -> None:
        """Send every pending mark now (and wait for a pass already under way)."""
        with self._sending:
            with self._lock:
                marked, self._marked = self._marked, set()
            for workspace_id in sorted(marked):
                try:
                    self._queue.request_drain(workspace_id)
                except Exception as exc:  # the thread must live on; the rows are stored
                    log.warning(
                        "drain request failed for workspace %s (the sweeper will ask again): %s",
                        workspace_id,
                        exc,
                    )

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            self.flush()
            # Marks made meanwhile ride the next pass: under load, a few Redis calls a second.
            time.sleep(self.PASS_INTERVAL_SECONDS)


class JobQueue:
    """Enqueues jobs by name: `jobs` maps each name to its function (app.jobs.JOBS), and
    `cron` lists the periodic ones with their intervals in seconds."""

    def __init__(
        self,
        settings: Settings,
        jobs: Mapping[Job, Callable],
        cron: Sequence[tuple[Callable, int]] = (),
    ):
        self.settings = settings
        self.jobs = jobs
        self.cron = cron
        if settings.embedded_queue:
            self.connection = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        else:
            self.connection = redis.Redis.from_url(
                settings.redis_url, socket_connect_timeout=1, socket_timeout=2
            )
        high, default = settings.queue_names
        self.high = Queue(high, connection=self.connection)
        self.default = Queue(default, connection=self.connection)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.drain_requests = DrainRequests(self)

    @property
    def queues(self) -> list[Queue]:
        return [self.high, self.default]

    def _drain_flag(self, workspace_id: int) -> str:
        return f"{self.settings.queue_prefix}:drain-requested:{workspace_id}"

    def request_drain(self, workspace_id: int) -> bool:
        """Ask for a drain of this workspace; a burst of requests makes one job.

        The flag is set until a drain job starts (it clears the flag before it
        reads the inbox), so every row committed before a request is seen by
        the job that request made or by one already on its way.
        """
        flag = self._drain_flag(workspace_id)
        if not self.connection.set(flag, 1, nx=True, ex=60):
            return False
        try:
            self.enqueue_drain(workspace_id)
        except Exception:
            with suppress(RedisError):  # do not leave a flag that blocks the next request
                self.connection.delete(flag)
            raise
        return True

    def enqueue_drain(self, workspace_id: int, *, job_id: str | None = None) -> bool:
        """Enqueue a drain regardless of the flag; with a job_id, at most one is queued."""
        try:
            self.high.enqueue(
                self.jobs[Job.DRAIN_INBOX],
                workspace_id,
                job_id=job_id,
                unique=job_id is not None,
                result_ttl=0,
                failure_ttl=86400,
                job_timeout=300,
            )
        except DuplicateJobError:
            return False
        self._wake.set()
        return True

    def enqueue(
        self, job: Job, *args, job_id: str | None = None, timeout: int = 600, high: bool = False
    ) -> bool:
        """Enqueue a job by name (on the high-priority queue with `high`); with a job_id, at
        most one waits in the queue (a burst of asks makes one job)."""
        try:
            (self.high if high else self.default).enqueue(
                self.jobs[job],
                *args,
                job_id=job_id,
                unique=job_id is not None,
                result_ttl=0,
                failure_ttl=86400,
                job_timeout=timeout,
            )
        except DuplicateJobError:
            return False
        self._wake.set()
        return True

    def _followup_flag(self, name: str, channel_id: int) -> str:
        return f"{self.settings.queue_prefix}:requested:{name}:{channel_id}"

    def enqueue_followups(self, jobs: set[tuple[Job, int]]) -> None:
        """The per-channel jobs a drain or an admin action asked for (core.jobs.Followups).

        Like drains: a flag set with NX makes a burst of asks one job, and the job clears
        it when it starts, so an ask made while it runs queues the next run (a unique job
        id would refuse that ask while the job exists, and the work would wait for the
        sweeper)."""
        for name, channel_id in sorted(jobs):
            if self.connection.set(self._followup_flag(name, channel_id), 1, nx=True, ex=300):
                self.enqueue(name, channel_id, high=name in HIGH_PRIORITY)

    def followup_started(self, name: str, channel_id: int) -> None:
        self.connection.delete(self._followup_flag(name, channel_id))

    def drain_started(self, workspace_id: int) -> None:
        self.connection.delete(self._drain_flag(workspace_id))

    def drain_requested(self, workspace_id: int) -> bool:
        """A callback asked for a drain since the last drain_started."""
        return bool(self.connection.exists(self._drain_flag(workspace_id)))

    def enqueue_sweep(self) -> None:
        self.default.enqueue(self.jobs[Job.SWEEP_INBOX], result_ttl=0, job_timeout=120)
        self._wake.set()

    def _enqueue_periodic(self, last_run: dict[str, float]) -> None:
        """The embedded stand-in for RQ cron: each cron job when its interval has passed."""
        now = time.monotonic()
        for func, interval in self.cron:
            if now - last_run.get(func.__name__, -interval) >= interval:
                last_run[func.__name__] = now
                self.default.enqueue(func, result_ttl=0, job_timeout=600)

    def worker(self, app: Flask, worker_class: type[AppWorker] = AppWorker) -> AppWorker:
        return worker_class(self.queues, connection=self.connection, app=app)

    def ping(self) -> bool:
        return bool(self.connection.ping())

    def start_embedded_worker(self, app: Flask) -> None:
        """Run jobs on a thread of this process (embedded queue only)."""
        if not self.settings.embedded_queue or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run_embedded, args=(app,), name="harpoon-worker", daemon=True
        )
        self._thread.start()

    def _run_embedded(self, app: Flask) -> None:
        interval = self.settings.sweep_interval_seconds
        last_run: dict[str, float] = {}
        while True:
            self._wake.wait(timeout=interval)
            self._wake.clear()
            # Every pass, not only on a quiet timeout: steady traffic wakes this thread
            # constantly, and the cron jobs (sweeper, due pushes) must still run.
            self._enqueue_periodic(last_run)
            try:
                # RQ's per-burst lines would drown the service's own log.
                self.worker(app, ThreadWorker).work(burst=True, logging_level="WARNING")
            except Exception:  # keep the thread alive; the sweeper re-queues the work
                log.exception("embedded worker failed")
