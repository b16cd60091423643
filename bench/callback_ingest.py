"""Callback ingest bench: our endpoint against a bare baseline, on the same load.

    .venv/bin/python bench/callback_ingest.py [--requests N] [--rate R] [--concurrency C]

Creates a throwaway PostgreSQL database (dropped at the end, even on failure),
starts our app and bench/bare_app.py under gunicorn with the same settings,
drives both with pre-generated, signed and encrypted OA callbacks, then checks
that every `success` our app answered is a row in inbound_events.

The load generator is plain Python: a few processes, each with threads that
keep one HTTP/1.1 connection open and send prepared request bytes. Traffic
goes to 127.0.0.1 only.
"""

import argparse
import http.client
import itertools
import multiprocessing
import os
import queue
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: make app, models and wechat importable

from app import create_app  # noqa: E402
from config import ENVIRONMENT_VARIABLES  # noqa: E402
from crm import channels  # noqa: E402
from models import migrate  # noqa: E402
from wechat import simulate  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
HOST = "127.0.0.1"
WORKERS = 2
WARMUP_REQUESTS = 200
FIRST_MSG_ID = 24_000_000_000_000_000
SPAWN_LEAD_SECONDS = 0.5  # generator processes connect, then all start together
PHASE_LIMIT_SECONDS = 60  # no phase sends after this, whatever is left
OPEN_LOOP_GRACE_SECONDS = 5  # an open-loop phase may run this late before it stops
REQUEST_TIMEOUT_SECONDS = 10
READY_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 15

TARGET_RATIO = 0.6
TARGET_P99_MS = 50.0


# --- load generator (runs in child processes) ------------------------------------


class KeepAliveConnection:
    """One persistent HTTP/1.1 connection: send prepared bytes, read one answer.

    Lighter than http.client (no header objects), so on a 2-core box the
    generator takes less of the CPU the servers need. Enough HTTP for gunicorn:
    answers with Content-Length, `Connection: close` honoured.
    """

    def __init__(self, port: int):
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = b""

    def connect(self) -> None:
        self.sock = socket.create_connection((HOST, self.port), timeout=REQUEST_TIMEOUT_SECONDS)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None

    def exchange(self, raw_request: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self.connect()
        self.sock.sendall(raw_request)
        status, headers, body = self._read_response()
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, body

    def _read_response(self) -> tuple[int, dict[bytes, bytes], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.split(b"\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"transfer-encoding" in headers:
            raise ValueError("chunked answers are not supported")
        length = int(headers.get(b"content-length", b"0"))
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        return int(status_line.split(b" ", 2)[1]), headers, rest[:length]

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return chunk


@dataclass(frozen=True)
class Schedule:
    """When a generator process sends its share of a phase.

    Process `offset` of `stride` sends the phase's requests offset, offset +
    stride, ...; open loop sends global request i at start_at + i / rate.
    """

    start_at: float  # time.monotonic(), the same clock in every process on Linux
    stop_at: float
    offset: int
    stride: int
    rate: float | None = None  # None: closed loop, as fast as answers come

    def due(self, local_index: int) -> float | None:
        if self.rate is None:
            return None
        return self.start_at + (self.offset + local_index * self.stride) / self.rate


@dataclass
class Tally:
    ok: int = 0  # 200 with body `success`
    failed: int = 0  # any other answer, or no answer
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    finished_at: float = 0.0
    cpu_seconds: float = 0.0

    def add(self, other: "Tally") -> None:
        self.ok += other.ok
        self.failed += other.failed
        self.latencies += other.latencies
        self.finished_at = max(self.finished_at, other.finished_at)
        self.cpu_seconds += other.cpu_seconds


def raw_request(port: int, path: str, query: str, body: bytes) -> bytes:
    head = (
        f"POST {path}?{query} HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\n"
        "Content-Type: text/xml\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def client_thread(port: int, requests: list[bytes], next_index, schedule: Schedule) -> Tally:
    tally = Tally()
    conn = KeepAliveConnection(port)
    try:
        conn.connect()
        _sleep_until(schedule.start_at)
        while (index := next(next_index)) < len(requests):
            due = schedule.due(index)
            if due is not None:
                _sleep_until(due)
            sent_at = time.monotonic()
            if sent_at > schedule.stop_at:
                break
            _send_one(conn, requests[index], due or sent_at, tally)
    except OSError:
        tally.failed += 1  # could not connect at all
    finally:
        conn.close()
        tally.finished_at = time.monotonic()
    return tally


def _send_one(conn: KeepAliveConnection, request: bytes, since: float, tally: Tally) -> None:
    try:
        status, body = conn.exchange(request)
    except (OSError, ValueError):
        conn.close()
        tally.failed += 1
        return
    tally.latencies.append(time.monotonic() - since)
    if status == 200 and body == b"success":
        tally.ok += 1
    else:
        tally.failed += 1


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def generator_process(port, path, callbacks, schedule, threads, results) -> None:
    """One generator process: `threads` connections share this process's requests."""
    cpu_start = time.process_time()
    requests = [raw_request(port, path, query, body) for query, body in callbacks]
    next_index = itertools.count()  # next() on a count is atomic under the GIL
    tallies = [None] * threads

    def run(slot: int) -> None:
        tallies[slot] = client_thread(port, requests, next_index, schedule)

    workers = [threading.Thread(target=run, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = Tally()
    for tally in tallies:
        total.add(tally or Tally(failed=1))
    total.cpu_seconds = time.process_time() - cpu_start
    results.put(total)


# --- phases and rounds -------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    path: str
    process: subprocess.Popen
    log_path: Path
    log_text: str = ""


@dataclass
class PhaseResult:
    server: str
    mode: str  # "warmup", "closed" or "open"
    sent: int
    tally: Tally
    elapsed: float
    cores_used_by_generator: float

    @property
    def unsent(self) -> int:
        return self.sent - self.tally.ok - self.tally.failed

    @property
    def errors(self) -> int:
        return self.tally.failed + self.unsent

    @property
    def per_second(self) -> float:
        return self.tally.ok / self.elapsed if self.elapsed > 0 else 0.0


def run_phase(server: Server, mode: str, callbacks, args) -> PhaseResult:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = min(args.processes, args.concurrency)
    start_at = time.monotonic() + SPAWN_LEAD_SECONDS
    stop_at = start_at + _phase_seconds(mode, args)
    rate = args.rate if mode == "open" else None
    children = [
        context.Process(
            target=generator_process,
            args=(
                server.port,
                server.path,
                callbacks[offset::processes],
                Schedule(start_at, stop_at, offset, processes, rate),
                _threads_for(offset, processes, args.concurrency),
                results,
            ),
            daemon=True,
        )
        for offset in range(processes)
    ]
    for child in children:
        child.start()
    total = _collect(results, children, stop_at)
    elapsed = max(total.finished_at - start_at, 1e-9)
    return PhaseResult(
        server.name, mode, len(callbacks), total, elapsed, total.cpu_seconds / elapsed
    )


def _phase_seconds(mode: str, args) -> float:
    if mode == "open":
        return min(args.duration + OPEN_LOOP_GRACE_SECONDS, PHASE_LIMIT_SECONDS)
    return PHASE_LIMIT_SECONDS


def _threads_for(offset: int, processes: int, concurrency: int) -> int:
    """Spread `concurrency` connections over the processes."""
    return concurrency // processes + (1 if offset < concurrency % processes else 0)


def _collect(results, children, stop_at: float) -> Tally:
    """Every child's tally; children that overrun or outlive an error are killed."""
    give_up_at = stop_at + REQUEST_TIMEOUT_SECONDS + 5
    total = Tally()
    try:
        for _ in children:
            total.add(results.get(timeout=max(give_up_at - time.monotonic(), 0.1)))
    except queue.Empty:
        _reap(children, time.monotonic())
        raise RuntimeError("a generator process gave no result (crashed or overran)") from None
    except BaseException:  # Ctrl-C included: do not wait for the phase to end
        _reap(children, time.monotonic())
        raise
    _reap(children, give_up_at)
    return total


def _reap(children, kill_at: float) -> None:
    for child in children:
        child.join(timeout=max(kill_at - time.monotonic(), 0))
        if child.is_alive():
            child.kill()
            child.join(timeout=5)


def make_callbacks(creds: simulate.Credentials, count: int, serial) -> list[tuple[str, bytes]]:
    """`count` text messages, each from its own follower with its own MsgId."""
    callbacks = []
    for _ in range(count):
        n = next(serial)
        xml = simulate.oa_text(f"oBench{n:022d}", f"bench message {n}", FIRST_MSG_ID + n)
        callback = simulate.oa_message(creds, xml, mode="safe")
        callbacks.append((callback.query, callback.body))
    return callbacks


def run_rounds(servers: list[Server], creds, args) -> list[PhaseResult]:
    """Warm both up, then per round: closed loop, open loop; the order flips each round."""
    serial = itertools.count()
    results = []

    def phase(mode: str, count: int, order: list[Server]) -> None:
        callbacks = make_callbacks(creds, count, serial)  # the same requests for each server
        for server in order:
            results.append(run_phase(server, mode, callbacks, args))
            print_phase(results[-1])
            time.sleep(0.5)

    phase("warmup", WARMUP_REQUESTS, servers)
    for round_index in range(args.rounds):
        order = servers if round_index % 2 == 0 else servers[::-1]
        print(f"round {round_index + 1} of {args.rounds}")
        phase("closed", args.requests, order)
        phase("open", int(args.rate * args.duration), order)
    return results


# --- servers -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn_server(name: str, app_spec: list[str], env: dict, path: str, log_dir: Path):
    """Run gunicorn in its own process group; stop the whole group on the way out."""
    port = free_port()
    log_path = log_dir / f"{name}.log"
    command = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", *app_spec]
    server_env = {**env, "HARPOON_BIND": f"{HOST}:{port}", "HARPOON_WEB_WORKERS": str(WORKERS)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name, port, path, process, log_path)
    try:
        wait_ready(server)
        yield server
    finally:
        stop_process_group(process)
        server.log_text = log_path.read_text(errors="replace")


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        if _healthz_status(server.port) == 200:
            return
        time.sleep(0.2)
    tail = server.log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{server.name} did not come up on port {server.port}:\n{tail}")


def _healthz_status(port: int) -> int | None:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def stop_process_group(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_SECONDS), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


# --- database, Redis and the channel ---------------------------------------------


@contextmanager
def bench_database(admin_url: str):
    """A fresh database for this run, dropped afterwards whatever happens."""
    admin = make_url(admin_url)
    name = f"harpoon_bench_{uuid.uuid4().hex[:10]}"
    admin_dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_channel(settings: dict, creds: simulate.Credentials) -> int:
    """One workspace with one safe-mode OA, through the app's own code."""
    app = create_app(settings)
    db = app.extensions["harpoon"].db
    try:
        with app.app_context(), db.session() as session:
            channel = channels.add_channel(
                session,
                channels.workspace_named(session, "bench"),
                kind="oa",
                name="bench OA",
                app_id=creds.app_id,
                token=creds.token,
                aes_key=creds.aes_key,
                message_mode="safe",
                account_type="service",
            )
            session.commit()
            return channel.id
    finally:
        db.dispose()


def count_inbox(database_url: str) -> int:
    dsn = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(dsn.render_as_string(hide_password=False)) as conn:
        return conn.execute("SELECT count(*) FROM inbound_events").fetchone()[0]


def flush_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.flushdb()
    finally:
        client.close()


# --- report ------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def print_phase(result: PhaseResult) -> None:
    latencies = result.tally.latencies
    line = (
        f"  {result.mode:6} {result.server:4}  {result.tally.ok:6} ok {result.errors:5} errors"
        f"  {result.per_second:8.1f} req/s"
        f"  p50 {percentile(latencies, 0.50) * 1000:7.1f} ms"
        f"  p99 {percentile(latencies, 0.99) * 1000:7.1f} ms"
        f"  generator {result.cores_used_by_generator:.2f} cores"
    )
    print(line, flush=True)


@dataclass(frozen=True)
class Summary:
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    ok: int
    open_per_second: float  # what the open loop achieved, against --rate


def summarize(results: list[PhaseResult], server: str) -> Summary:
    mine = [r for r in results if r.server == server]
    closed = [r.per_second for r in mine if r.mode == "closed"]
    opened = [r.per_second for r in mine if r.mode == "open"]
    open_latencies = [x for r in mine if r.mode == "open" for x in r.tally.latencies]
    return Summary(
        per_second=statistics.median(closed) if closed else 0.0,
        p50_ms=percentile(open_latencies, 0.50) * 1000,
        p99_ms=percentile(open_latencies, 0.99) * 1000,
        errors=sum(r.errors for r in mine),
        ok=sum(r.tally.ok for r in mine),
        open_per_second=statistics.median(opened) if opened else 0.0,
    )


def print_report(results: list[PhaseResult], stored: int, servers: list[Server], args) -> None:
    bare, ours = summarize(results, "bare"), summarize(results, "ours")
    rate = f"@{args.rate:g}/s"
    print()
    print(
        f"{'server':8}{'closed req/s':>14}{'p50 ms ' + rate:>18}{'p99 ms ' + rate:>18}{'errors':>8}"
    )
    for name, s in (("bare", bare), ("ours", ours)):
        print(f"{name:8}{s.per_second:14.1f}{s.p50_ms:18.1f}{s.p99_ms:18.1f}{s.errors:8}")
        if s.open_per_second < 0.95 * args.rate:
            print(
                f"  ({name} kept up with only {s.open_per_second:.0f} of {args.rate:g} req/s"
                " in the open loop: its latencies are mostly queueing)"
            )
    print()
    ratio = ours.per_second / bare.per_second if bare.per_second else 0.0
    lost = ours.ok - stored
    checks = [
        (f"ratio ours/bare req/s {ratio:.2f}", f">= {TARGET_RATIO}", ratio >= TARGET_RATIO),
        (
            f"p99 ours {rate} {ours.p99_ms:.1f} ms",
            f"< {TARGET_P99_MS:g} ms",
            ours.p99_ms < TARGET_P99_MS,
        ),
        (
            f"success answers {ours.ok}, inbound_events rows {stored}, LOST={lost}",
            "LOST=0",
            lost == 0,
        ),
    ]
    for text, target, passed in checks:
        print(f"{text:62} target {target:10} {'PASS' if passed else 'FAIL'}")
    if lost < 0:
        print(f"  ({-lost} rows stored whose answer never arrived: retried by WeChat, deduped)")
    print_log_problems(servers)


def print_log_problems(servers: list[Server]) -> None:
    for server in servers:
        lines = [
            line
            for line in server.log_text.splitlines()
            if any(word in line for word in ("ERROR", "CRITICAL", "WARNING", "Traceback"))
        ]
        if lines:
            print(f"\n{server.name}: {len(lines)} warning/error lines in its log, first ones:")
            for line in lines[:10]:
                print(f"  {line}")


# --- main --------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000, help="closed loop, per round")
    parser.add_argument("--rate", type=float, default=1000.0, help="open loop req/s")
    parser.add_argument("--duration", type=float, default=5.0, help="open loop seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="connections")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", type=int, default=2, help="generator processes")
    args = parser.parse_args()
    if min(args.requests, args.rate, args.duration, args.concurrency, args.rounds) <= 0:
        parser.error("--requests, --rate, --duration, --concurrency and --rounds must be > 0")
    if args.processes <= 0 or args.duration > PHASE_LIMIT_SECONDS - OPEN_LOOP_GRACE_SECONDS:
        longest = PHASE_LIMIT_SECONDS - OPEN_LOOP_GRACE_SECONDS
        parser.error(f"--processes must be > 0 and --duration <= {longest}")
    return args


def bench_credentials() -> simulate.Credentials:
    return simulate.Credentials(
        app_id="wxbench" + secrets.token_hex(5),
        token=secrets.token_hex(16),
        aes_key=channels.generate_aes_key(),
    )


def server_env(database_url: str, redis_url: str, key: str, instance_dir: Path, creds, channel_id):
    """The same environment for both servers; app settings not set here are the defaults.

    Gunicorn knobs (HARPOON_WEB_THREADS, HARPOON_ACCESS_LOG) pass through to both.
    """
    env = {name: value for name, value in os.environ.items() if name not in ENVIRONMENT_VARIABLES}
    return {
        **env,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "HARPOON_ENCRYPTION_KEYS": key,
        "HARPOON_SECRET_KEY": secrets.token_hex(32),
        "HARPOON_INSTANCE_DIR": str(instance_dir),
        "HARPOON_LOG_LEVEL": "WARNING",
        "BARE_CHANNEL_ID": str(channel_id),
        "BARE_TOKEN": creds.token,
        "BARE_AES_KEY": creds.aes_key,
        "BARE_APP_ID": creds.app_id,
    }


def main() -> int:
    args = parse_args()
    # A plain `kill` unwinds like Ctrl-C: servers stopped, database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    admin_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    key = Fernet.generate_key().decode()
    creds = bench_credentials()
    with (
        tempfile.TemporaryDirectory(prefix="harpoon-bench-") as tmp,
        bench_database(admin_url) as database_url,
    ):
        instance_dir = Path(tmp) / "instance"
        migrate.upgrade(database_url)
        settings = {
            "database_url": database_url,
            "redis_url": redis_url,
            "encryption_keys": (key,),
            "secret_key": secrets.token_hex(32),
            "instance_dir": instance_dir,
            "log_level": "WARNING",
        }
        channel_id = create_channel(settings, creds)
        flush_redis(redis_url)
        env = server_env(database_url, redis_url, key, instance_dir, creds, channel_id)
        path = f"/callbacks/wechat/{channel_id}"
        bare_spec = ["--pythonpath", str(ROOT / "bench"), "bare_app:app"]
        with ExitStack() as stack:
            servers = [
                stack.enter_context(gunicorn_server("bare", bare_spec, env, path, Path(tmp))),
                stack.enter_context(gunicorn_server("ours", ["wsgi:app"], env, path, Path(tmp))),
            ]
            print(f"bare on :{servers[0].port}, ours on :{servers[1].port}, {WORKERS} workers")
            results = run_rounds(servers, creds, args)
        stored = count_inbox(database_url)
        flush_redis(redis_url)
    print_report(results, stored, servers, args)  # PASS / FAIL are for reading only
    return 0


if __name__ == "__main__":
    sys.exit(main())
