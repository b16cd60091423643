"""`flask worker` and `flask cron` outlive Redis and PostgreSQL going away.

RQ's worker leaves its loop (and its teardown raises) when Redis goes away anywhere but
in its wait for a job, and RQ's cron scheduler exits. Here each run of RQ's loop ends
quietly on a lost connection; `keep_running` logs one line, waits with exponential
backoff (1 s doubling to 30 s) until the service answers again, and starts a fresh loop.
SIGINT and SIGTERM still stop the process at once, while waiting too.

A job that failed because PostgreSQL did not answer is given RQ retries (it runs again
once the database is back; the sweeper finds whatever is left after those), and the
worker waits for the database before it takes the next job rather than failing the queue
one job at a time.
"""

import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.cron import CronScheduler
from rq.exceptions import StopRequested
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.extensions import harpoon
from app.queue import AppWorker

log = logging.getLogger(__name__)

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
# Retries for a job that met an unreachable database: 10 s, then up to 5 minutes apart.
JOB_RETRY_SECONDS = (10, 30, 60, 120, 300)


@dataclass(frozen=True)
class Backoff:
    first: float = 1.0
    cap: float = 30.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(self.cap, delay * 2)


class Lost(Exception):
    """Redis or PostgreSQL went away under a running loop (the cause is chained)."""


class _LoopEnded(StopRequested):
    """Ends RQ's work loop the way a stop does: without its 'unhandled exception'
    traceback, and with the worker's registration torn down where Redis allows."""


def _stop(signum, frame):
    raise StopRequested()


def keep_running(
    run: Callable[[], None],
    ping: Callable[[], None],
    what: str,
    backoff: Backoff = Backoff(),
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Call `run` until it returns (a stop was asked, or a burst is done). Each time it
    raises Lost, wait until `ping` succeeds, backing off, then call it again."""
    try:
        while True:
            try:
                run()
                return
            except Lost as exc:
                cause = exc.__cause__ or exc
                log.warning(
                    "%s: lost its connection (%s: %s); reconnecting every %g to %g s",
                    what,
                    type(cause).__name__,
                    cause,
                    backoff.first,
                    backoff.cap,
                )
            _wait_until_answered(ping, what, backoff, sleep)
    except StopRequested:
        log.info("%s: stopped", what)


def _wait_until_answered(ping, what: str, backoff: Backoff, sleep) -> None:
    # RQ's handlers belong to the loop that ended; ours end the wait.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    waited = 0.0
    for delay in backoff.delays():
        sleep(delay)
        waited += delay
        try:
            ping()
        except (*REDIS_DOWN, DBAPIError) as exc:
            log.debug("%s: still unreachable after %g s: %s", what, waited, exc)
            continue
        log.info("%s: reconnected after %g s", what, waited)
        return


def ping_database(engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


class ReconnectingWorker(AppWorker):
    """AppWorker whose loop ends quietly when Redis or PostgreSQL goes away (see the
    module docstring); `stop_asked` and `lost` tell why it ended."""

    max_connection_wait_time = Backoff.cap  # RQ's own retries while it waits for a job

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stop_asked = False
        self.lost: BaseException | None = None
        self.push_exc_handler(self._retry_when_database_is_down)

    def request_stop(self, signum, frame):
        self.stop_asked = True
        super().request_stop(signum, frame)

    @contextmanager
    def _ends_on_lost_redis(self):
        try:
            yield
        except REDIS_DOWN as exc:
            self.lost = exc
            raise _LoopEnded() from exc

    # The calls of RQ's work loop that meet Redis outside its wait for a job.
    def check_for_suspension(self, burst: bool):
        with self._ends_on_lost_redis():
            super().check_for_suspension(burst)

    def run_maintenance_tasks(self):
        with self._ends_on_lost_redis():
            super().run_maintenance_tasks()

    def heartbeat(self, *args, **kwargs):
        with self._ends_on_lost_redis():
            super().heartbeat(*args, **kwargs)

    def execute_job(self, job, queue):
        with self._ends_on_lost_redis():
            super().execute_job(job, queue)
        if self.lost is not None:  # the job met an unreachable database
            raise _LoopEnded()

    def _pubsub_exception_handler(self, exc, pubsub, pubsub_thread):
        if isinstance(exc, RedisConnectionError):  # RQ would log a line every 2 s
            time.sleep(2.0)
            return
        super()._pubsub_exception_handler(exc, pubsub, pubsub_thread)

    def forget(self) -> None:
        """Stop listening for commands where RQ's teardown could not (Redis was gone)."""
        if self.pubsub_thread is not None:
            self.pubsub_thread.stop()
            self.pubsub_thread.join(timeout=1)
            with suppress(RedisError):
                self.pubsub.close()

    def _retry_when_database_is_down(self, job, exc_type, exc_value, traceback) -> bool:
        if isinstance(exc_value, DBAPIError) and not self._database_answers():
            self.lost = exc_value
            if job.retries_left is None:
                job.retries_left = len(JOB_RETRY_SECONDS)
                job.retry_intervals = list(JOB_RETRY_SECONDS)
        return True  # the other handlers (RQ's failure record) still run

    def _database_answers(self) -> bool:
        try:
            ping_database(harpoon().db.engine)  # in the job's app context
        except DBAPIError:
            return False
        return True


def run_worker(worker: Callable[[], ReconnectingWorker], **work) -> None:
    """One run of RQ's loop on a fresh worker; Lost when it ended on a lost connection."""
    try:
        current = worker()  # RQ asks Redis for this client's address already
    except REDIS_DOWN as exc:
        raise Lost() from exc
    try:
        current.work(**work)
    except REDIS_DOWN as exc:  # registering or tearing down, with Redis gone
        current.forget()
        if current.stop_asked:
            return
        raise Lost() from exc
    if current.stop_asked or work.get("burst"):
        return
    # Not asked to stop: a lost connection, or RQ quit on an error of its own (logged).
    raise Lost("the work loop ended") from current.lost


class ReconnectingCron(CronScheduler):
    """RQ's cron scheduler, kept across reconnects so each job keeps its schedule."""

    stop_asked = False

    def _request_stop(self, signum, frame):
        self.stop_asked = True
        super()._request_stop(signum, frame)


def run_cron(scheduler: ReconnectingCron) -> None:
    try:
        scheduler.start()
    except REDIS_DOWN as exc:
        if scheduler.stop_asked:
            return
        raise Lost() from exc
