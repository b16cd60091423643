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
from core.jobs import AT_FRONT, QUEUE_OF, Job, Urgency

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
    """Callbacks mark their (workspace, lane); a thread of the process asks for the drains.

    The callback answers WeChat without a Redis round trip, and a burst of
    callbacks costs one request per lane per pass, not one per callback.
    A mark is made after the row is committed, so the ordering request_drain
    relies on still holds; if the process dies first, the sweeper finds the row.
    """

    PASS_INTERVAL_SECONDS = 0.02

    def __init__(self, queue: "JobQueue"):
        self._queue = queue
        self._marked: set[tuple[int, int]] = set()
        self._lock = threading.Lock()  # guards _marked and the thread's start
        self._sending = threading.Lock()  # one pass at a time; flush() waits for it
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def mark(self, workspace_id: int, lane: int | None = None) -> None:
        """Ask for a drain of the lane that holds a new row (None: every lane, for a row
        whose lane the caller does not know)."""
        lanes = range(self._queue.settings.inbox_lanes) if lane is None else (lane,)
        with self._lock:
            # Marks already waiting mean the thread was woken and will take this one too
            # (every wake is followed by a pass that takes what is marked): no second wake,
            # whose Condition round costs a busy endpoint more than the mark itself.
            wake = not self._marked
            self._marked.update((workspace_id, each) for each in lanes)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="harpoon-drain-requests", daemon=True
                )
                self._thread.start()
        if wake:
            self._wake.set()

    def flush(self) -> None:
        """Send every pending mark now (and wait for a pass already under way)."""
        with self._sending:
            with self._lock:
                marked, self._marked = self._marked, set()
            for workspace_id, lane in sorted(marked):
                try:
                    self._queue.request_drain(workspace_id, lane)
                except Exception as exc:  # the thread must live on; the rows are stored
                    log.warning(
                        "drain request failed for workspace %s lane %s "
                        "(the sweeper will ask again): %s",
                        workspace_id,
                        lane,
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
        self.by_urgency = {
            urgency: Queue(name, connection=self.connection)
            for urgency, name in zip(Urgency, settings.queue_names, strict=True)
        }
        self.high = self.by_urgency[Urgency.HIGH]
        self.default = self.by_urgency[Urgency.DEFAULT]
        self.low = self.by_urgency[Urgency.LOW]
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.drain_requests = DrainRequests(self)

    @property
    def queues(self) -> list[Queue]:
        """Every queue, in the order a worker serves them."""
        return list(self.by_urgency.values())

    def queue_of(self, job: Job) -> Queue:
        return self.by_urgency[QUEUE_OF[job]]

    def _drain_flag(self, workspace_id: int, lane: int) -> str:
        return f"{self.settings.queue_prefix}:drain-requested:{workspace_id}:{lane}"

    def request_drain(self, workspace_id: int, lane: int) -> bool:
        """Ask for a drain of this lane; a burst of requests makes one job.

        The flag is set while a drain job of the lane waits in the queue (a drain
        clears it before it reads the inbox), so every row committed before a
        request is seen by the job that request made or by one already on its
        way. Its TTL bounds how long a lost job (Redis restarted) holds it.
        """
        flag = self._drain_flag(workspace_id, lane)
        if not self.connection.set(flag, 1, nx=True, ex=60):
            return False
        self._enqueue_drain_job(workspace_id, lane, flag)
        return True

    def enqueue_drain(self, workspace_id: int, lane: int) -> None:
        """Enqueue a drain of the lane at the back of the high queue, whatever the flag says
        (a drain with work left, the operator's retry). No job id: a killed job holds none,
        and a second drain of a lane already draining ends at once (its advisory lock)."""
        flag = self._drain_flag(workspace_id, lane)
        self.connection.set(flag, 1, ex=60)
        self._enqueue_drain_job(workspace_id, lane, flag)

    def _enqueue_drain_job(self, workspace_id: int, lane: int, flag: str) -> None:
        try:
            self.queue_of(Job.DRAIN_INBOX).enqueue(
                self.jobs[Job.DRAIN_INBOX],
                workspace_id,
                lane,
                result_ttl=0,
                failure_ttl=86400,
                job_timeout=300,
            )
        except Exception:
            with suppress(RedisError):  # do not leave a flag that blocks the next request
                self.connection.delete(flag)
            raise
        self._wake.set()

    def enqueue(self, job: Job, *args, job_id: str | None = None, timeout: int = 600) -> bool:
        """Enqueue a job by name on the queue of its urgency (core.jobs.QUEUE_OF); with a
        job_id, at most one waits in the queue (a burst of asks makes one job)."""
        try:
            self.queue_of(job).enqueue(
                self.jobs[job],
                *args,
                job_id=job_id,
                unique=job_id is not None,
                result_ttl=0,
                failure_ttl=86400,
                job_timeout=timeout,
                at_front=job in AT_FRONT,
            )
        except DuplicateJobError:
            return False
        self._wake.set()
        return True

    def _followup_flag(self, name: str, channel_id: int) -> str:
        return f"{self.settings.queue_prefix}:requested:{name}:{channel_id}"

    def enqueue_followups(self, jobs: set[tuple[Job, int]], *, force: bool = False) -> None:
        """The per-channel jobs a drain or an admin action asked for (core.jobs.Followups).

        Like drains: a flag set with NX makes a burst of asks one job, and the job clears
        it when it starts, so an ask made while it runs queues the next run (a unique job
        id would refuse that ask while the job exists, and the work would wait for the
        sweeper). With `force` (the sweeper, for work overdue), the job is queued whatever
        the flag says: a job killed after its flag was set must not hold it for 300 s."""
        for name, channel_id in sorted(jobs):
            flag = self._followup_flag(name, channel_id)
            if self.connection.set(flag, 1, nx=not force, ex=300):
                try:
                    self.enqueue(name, channel_id)
                except Exception:
                    with suppress(RedisError):  # a flag without its job would hold the asks
                        self.connection.delete(flag)
                    raise

    def request_followups(self, jobs: set[tuple[Job, int]]) -> bool:
        """`enqueue_followups` for work a periodic pass would pick up anyway (attribution
        after an opportunity is saved): Redis away costs a log line, not the request."""
        try:
            self.enqueue_followups(jobs)
        except RedisError as exc:
            log.warning("follow-up request failed for %s: %s", sorted(jobs), exc)
            return False
        return True

    def followup_started(self, name: str, channel_id: int) -> None:
        self.connection.delete(self._followup_flag(name, channel_id))

    def drain_started(self, workspace_id: int, lane: int) -> None:
        self.connection.delete(self._drain_flag(workspace_id, lane))

    def drain_requested(self, workspace_id: int, lane: int) -> bool:
        """A drain of the lane was asked for since the last drain_started."""
        return bool(self.connection.exists(self._drain_flag(workspace_id, lane)))

    def enqueue_sweep(self) -> None:
        self.queue_of(Job.SWEEP_INBOX).enqueue(
            self.jobs[Job.SWEEP_INBOX], result_ttl=0, job_timeout=120
        )
        self._wake.set()

    def _enqueue_periodic(self, last_run: dict[str, float]) -> None:
        """The embedded stand-in for RQ cron: each cron job when its interval has passed."""
        now = time.monotonic()
        for func, interval in self.cron:
            if now - last_run.get(func.__name__, -interval) >= interval:
                last_run[func.__name__] = now
                self.queue_of(Job(func.__name__)).enqueue(func, result_ttl=0, job_timeout=600)

    def worker(
        self,
        app: Flask,
        worker_class: type[AppWorker] = AppWorker,
        urgencies: Sequence[Urgency | str] | None = None,
    ) -> AppWorker:
        """A worker serving these queues (all by default), most urgent first: a dedicated
        high worker (`flask worker --queues high`) keeps welcomes clear of any backlog."""
        wanted = set(Urgency) if urgencies is None else {Urgency(u) for u in urgencies}
        queues = [queue for urgency, queue in self.by_urgency.items() if urgency in wanted]
        return worker_class(queues, connection=self.connection, app=app)

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
