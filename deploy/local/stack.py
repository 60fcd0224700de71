"""Start, stop and report the local stack with no Docker: PostgreSQL, Kafka, the SMTP and
provider sinks and Parcours' services, each its own process, logs and pids under ``.run/``.

    python deploy/local/stack.py up | down | status
    python deploy/local/stack.py start|stop|kill|restart NAME
    PARCOURS_STACK_WORKERS=2 python deploy/local/stack.py up   # processor-2, sender-email-2

Every start waits for readiness with a deadline and says what to look at when it fails.
Run it with the project's virtualenv (``make up`` does).
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from shared.settings import RUN_DIR, get_settings  # noqa: E402

settings = get_settings()
LOGS, PIDS = RUN_DIR / "logs", RUN_DIR / "pids"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_DATA, PG_SOCK, PG_PORT = RUN_DIR / "pgdata", RUN_DIR / "pgsock", 5433
KAFKA_DIR = RUN_DIR / "kafka"
PYTHON = sys.executable


class StackError(Exception):
    pass


# Every process the stack starts carries this in its environment (PostgreSQL and Kafka
# too, through ours), so ``down`` finds what a pid file no longer names — a service a
# test started again over another, a process left by a run that failed — and stops it.
STACK_MARK = "PARCOURS_STACK_RUN_DIR"
os.environ[STACK_MARK] = str(RUN_DIR)


def wait_until(check: Callable[[], bool], what: str, deadline_s: float, log: Path | None) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)
    hint = f"; see {log.relative_to(ROOT)}" if log else ""
    raise StackError(f"{what} not ready after {deadline_s:.0f}s{hint}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# --- processes ---------------------------------------------------------------------------

def read_pid(name: str) -> int | None:
    try:
        pid = int((PIDS / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, **(env or {})},
        )
    (PIDS / f"{name}.pid").write_text(str(process.pid))
    return process.pid


def terminate(name: str, sig: int = signal.SIGTERM, deadline_s: float = 30) -> bool:
    pid = read_pid(name)
    if pid is None:
        return False
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and read_pid(name) is not None:
        _reap(pid)
        time.sleep(0.1)
    if read_pid(name) is not None:
        os.killpg(pid, signal.SIGKILL)
        time.sleep(0.2)
        _reap(pid)
    (PIDS / f"{name}.pid").unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# --- PostgreSQL ---------------------------------------------------------------------------

def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _pg_ready() -> bool:
    probe = subprocess.run(
        [str(PG_BIN / "pg_isready"), "-h", str(PG_SOCK), "-p", str(PG_PORT), "-q"], check=False
    )
    return probe.returncode == 0


def pg_start() -> None:
    if _pg_ready():
        return
    if not (PG_BIN / "initdb").exists():
        raise StackError("PostgreSQL 15 is not installed; run deploy/local/install.sh")
    for path in (PG_DATA.parent, PG_SOCK):
        path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(PG_SOCK, "postgres")
    if not (PG_DATA / "PG_VERSION").exists():
        PG_DATA.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(PG_DATA, "postgres")
        subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(PG_DATA), "-A", "trust",
                                     "-U", "postgres", "-E", "UTF8", "--no-locale"]),
                       check=True, stdout=subprocess.DEVNULL)
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / "postgres.log"
    log.touch()
    if os.geteuid() == 0:
        shutil.chown(log, "postgres")
    # Bulk writes (profile imports, journey entries) touch the profiles' five indexes all
    # over: with 256 MB of shared buffers and 1 GB of WAL between checkpoints, a 1,000,000-
    # row import checkpointed every 15-30 s and wrote every index page in full again after
    # each (full-page writes), evicting dirty pages on the way: 29,953 → 43,125-47,434
    # profiles/s with these (README, Benchmarks: IMPORT). The machine has 24 GiB.
    # Terse errors: the DETAIL and CONTEXT lines of the default quote the rows and JSON a
    # statement carried (addresses among them) into the log (tests/integration/test_zzz_scans.py).
    options = (f"-p {PG_PORT} -k {PG_SOCK} -c listen_addresses=127.0.0.1"
               " -c max_connections=200 -c shared_buffers=2GB -c max_wal_size=8GB"
               " -c checkpoint_timeout=15min -c log_error_verbosity=terse")
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(PG_DATA), "-l", str(log),
                                 "-o", options, "-w", "-t", "60", "start"]),
                   check=True, stdout=subprocess.DEVNULL)
    wait_until(_pg_ready, "PostgreSQL", 60, log)
    _pg_bootstrap()


def _psql(sql: str, database: str = "postgres") -> str:
    result = subprocess.run(
        ["psql", "-h", str(PG_SOCK), "-p", str(PG_PORT), "-U", "postgres", "-d", database,
         "-tAc", sql], check=True, capture_output=True, text=True,
    )
    return result.stdout.strip()


def _pg_bootstrap() -> None:
    if _psql("SELECT 1 FROM pg_roles WHERE rolname = 'parcours'") != "1":
        _psql("CREATE ROLE parcours LOGIN")
    if _psql("SELECT 1 FROM pg_database WHERE datname = 'parcours'") != "1":
        _psql("CREATE DATABASE parcours OWNER parcours")


def pg_stop() -> None:
    if (PG_DATA / "postmaster.pid").exists():
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(PG_DATA), "-m", "fast",
                                     "-w", "stop"]), check=False, stdout=subprocess.DEVNULL)


def migrate() -> None:
    subprocess.run([PYTHON, "-m", "shared.adapters.postgres"], cwd=ROOT, check=True)


# --- Kafka -------------------------------------------------------------------------------

def _kafka_classpath() -> str:
    marker = RUN_DIR / "kafka-lib"
    if not marker.exists():
        raise StackError("Kafka jars are not installed; run deploy/local/install.sh")
    return f"{marker.read_text().strip()}/*"


def _kafka_java(main: str, *args: str) -> list[str]:
    return ["java", "-cp", _kafka_classpath(),
            f"-Dlog4j2.configurationFile={ROOT / 'deploy/kafka/log4j2.properties'}", main, *args]


def kafka_start() -> None:
    if read_pid("kafka") is not None:
        return
    if port_open(9092):
        raise StackError("port 9092 is taken by another process; stop it or free the port")
    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    properties = KAFKA_DIR / "server.properties"
    template = (ROOT / "deploy/kafka/server.properties").read_text()
    properties.write_text(template.replace("@LOG_DIRS@", str(KAFKA_DIR / "data")))
    if not (KAFKA_DIR / "data" / "meta.properties").exists():
        cluster_id = subprocess.run(_kafka_java("kafka.tools.StorageTool", "random-uuid"),
                                    check=True, capture_output=True, text=True).stdout.split()[-1]
        subprocess.run(_kafka_java("kafka.tools.StorageTool", "format", "--standalone",
                                   "-t", cluster_id, "-c", str(properties), "--ignore-formatted"),
                       check=True, stdout=subprocess.DEVNULL)
    argv = ["java", "-Xms512m", "-Xmx512m", "-XX:+UseG1GC", "-cp", _kafka_classpath(),
            f"-Dlog4j2.configurationFile={ROOT / 'deploy/kafka/log4j2.properties'}",
            "kafka.Kafka", str(properties)]
    spawn("kafka", argv)
    log = LOGS / "kafka.log"
    wait_until(lambda: port_open(9092), "Kafka's listener", 60, log)
    wait_until(_kafka_metadata_answers, "Kafka metadata", 60, log)
    subprocess.run([PYTHON, "-m", "shared.adapters.kafka"], cwd=ROOT, check=True)


def _kafka_metadata_answers() -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                    request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.describe_cluster()
            return True
        except Exception:
            return False
        finally:
            await admin.close()

    return asyncio.run(probe())


def kafka_stop() -> None:
    terminate("kafka", deadline_s=40)


# --- Parcours' services ------------------------------------------------------------------

@dataclass(frozen=True)
class Service:
    name: str
    module: str
    ready_url: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # settings of this process alone
    group_members: int = 1  # members its consumer group must show before it is ready


SERVICES = (
    Service("smtp-sink", "services.smtp_sink",
            f"http://127.0.0.1:{settings.smtp_sink_http_port}/health/ready"),
    Service("smtp-sink-bulk", "services.smtp_sink",
            f"http://127.0.0.1:{settings.smtp_bulk_sink_http_port}/health/ready", ("--bulk",)),
    Service("provider-sink", "services.provider_sink",
            f"http://127.0.0.1:{settings.provider_sink_port}/health/ready"),
    # The second relay and provider the senders fail over to (shared/sending/failover.py).
    Service("smtp-sink-2", "services.smtp_sink",
            f"http://127.0.0.1:{settings.smtp_secondary_sink_http_port}/health/ready",
            ("--secondary",)),
    Service("provider-sink-2", "services.provider_sink",
            f"http://127.0.0.1:{settings.provider_sink_secondary_port}/health/ready",
            ("--secondary",)),
    Service("gateway", "services.gateway",
            f"http://127.0.0.1:{settings.gateway_port}/health/ready"),
    Service("admin", "services.admin",
            f"http://127.0.0.1:{settings.admin_port}/health/ready"),
    Service("tracking", "services.tracking",
            f"http://127.0.0.1:{settings.tracking_port}/health/ready"),
    Service("console", "services.console",
            f"http://127.0.0.1:{settings.console_port}/health/ready"),
    Service("reactions", "services.reactions",
            f"http://127.0.0.1:{settings.reactions_metrics_port}/metrics"),
    # Locally the tenants' endpoints are on this machine (tests run receivers on loopback).
    Service("webhooks", "services.webhooks",
            f"http://127.0.0.1:{settings.webhooks_metrics_port}/metrics",
            ("--allow-local-targets",)),
    Service("journeys", "services.journeys",
            f"http://127.0.0.1:{settings.journeys_metrics_port}/metrics",
            ("--allow-local-targets",)),
    Service("processor", "services.processor",
            f"http://127.0.0.1:{settings.processor_metrics_port}/metrics"),
    Service("sender-email", "services.sender_email",
            f"http://127.0.0.1:{settings.sender_email_metrics_port}/metrics"),
    Service("sender-email-bulk", "services.sender_email_bulk",
            f"http://127.0.0.1:{settings.sender_email_bulk_metrics_port}/metrics"),
    Service("sender-sms", "services.sender_sms",
            f"http://127.0.0.1:{settings.sender_sms_metrics_port}/metrics"),
    Service("sender-push", "services.sender_push",
            f"http://127.0.0.1:{settings.sender_push_metrics_port}/metrics"),
    Service("sender-sms-bulk", "services.sender_sms_bulk",
            f"http://127.0.0.1:{settings.sender_sms_bulk_metrics_port}/metrics"),
    Service("sender-push-bulk", "services.sender_push_bulk",
            f"http://127.0.0.1:{settings.sender_push_bulk_metrics_port}/metrics"),
    Service("profile-ingest", "services.profile_ingest",
            f"http://127.0.0.1:{settings.profile_ingest_metrics_port}/metrics"),
    Service("bounces", "services.bounces",
            f"http://127.0.0.1:{settings.bounces_metrics_port}/health/ready"),
)

# Scale-out (README, Scale-out): a second worker of the processor and of the email sender
# joins its group and takes half the partitions. `make up WORKERS=2` (PARCOURS_STACK_WORKERS)
# starts them with the rest; `stack.py start processor-2` starts one alone. A worker has
# the first's settings but its own metrics port (the first's + 100 per worker).
SCALABLE = {"processor": "processor_metrics_port", "sender-email": "sender_email_metrics_port"}
MAX_WORKERS = 4
WORKERS = max(1, min(MAX_WORKERS, int(os.environ.get("PARCOURS_STACK_WORKERS") or 1)))


def worker(name: str, number: int) -> Service:
    first = next(s for s in SERVICES if s.name == name)
    setting = SCALABLE[name]
    port = getattr(settings, setting) + 100 * (number - 1)
    return Service(f"{name}-{number}", first.module,
                   first.ready_url.replace(f":{getattr(settings, setting)}/", f":{port}/"),
                   first.args,
                   ((f"PARCOURS_{setting.upper()}", str(port)),),
                   group_members=number)


EXTRA_WORKERS = tuple(worker(name, n) for n in range(2, MAX_WORKERS + 1) for name in SCALABLE)
SERVICE_BY_NAME = {s.name: s for s in (*SERVICES, *EXTRA_WORKERS)}
GROUPS = {"processor": "parcours-processor", "sender-email": "parcours-sender-email",
          "sender-email-bulk": "parcours-sender-email-bulk",
          "sender-sms": "parcours-sender-sms", "sender-push": "parcours-sender-push",
          "sender-sms-bulk": "parcours-sender-sms-bulk",
          "sender-push-bulk": "parcours-sender-push-bulk",
          "profile-ingest": "parcours-profile-ingest"}


def _group_has_members(group: str, at_least: int = 1) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        try:
            await admin.start()
            [description] = await admin.describe_consumer_groups([group])
            groups = description.to_object()["groups"]
            return bool(groups and groups[0]["state"] == "Stable"
                        and len(groups[0]["members"]) >= at_least)
        except Exception:
            return False
        finally:
            await admin.close()

    return asyncio.run(probe())


# The local stack is for development and demos: `make demo` publishes the seed journey
# with its day compressed to seconds.
LOCAL_SETTINGS = {"PARCOURS_JOURNEYS_COMPRESSED_TIME": "true"}


def local_secrets() -> dict[str, str]:
    """A DKIM master key for the local stack, made once and kept under .run/ (unless the
    environment gives one): without it the admin API refuses DKIM keys."""
    if os.environ.get("PARCOURS_DKIM_MASTER_KEY"):
        return {}
    path = RUN_DIR / "dkim-master.key"
    if not path.exists():
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.urlsafe_b64encode(os.urandom(32)))
        path.chmod(0o600)
    return {"PARCOURS_DKIM_MASTER_KEY": path.read_text().strip()}


def service_start(service: Service) -> None:
    if read_pid(service.name) is None:
        spawn(service.name, [PYTHON, "-m", service.module, *service.args],
              {**local_secrets(), **LOCAL_SETTINGS, **dict(service.env)})
    log = LOGS / f"{service.name}.log"
    wait_until(lambda: http_ok(service.ready_url), service.name, 60, log)
    group = GROUPS.get(service.name.rsplit("-", 1)[0] if service.group_members > 1
                       else service.name)
    if group:
        # Consuming only once the group has settled: a test may post right away.
        wait_until(lambda: _group_has_members(group, service.group_members),
                   f"{service.name}'s consumer group", 60, log)


# --- commands ----------------------------------------------------------------------------

def start(name: str) -> None:
    if name == "postgres":
        pg_start()
        migrate()
    elif name == "kafka":
        kafka_start()
    else:
        service_start(SERVICE_BY_NAME[name])


def stop(name: str, sig: int = signal.SIGTERM) -> bool | None:
    """False when ``name`` was a worker that was not running."""
    if name == "postgres":
        pg_stop()
    elif name == "kafka" and sig == signal.SIGTERM:
        kafka_stop()
    else:
        stopped = terminate(name, sig)
        if not stopped and name not in ORDER:
            return False
    return None


WORKERS_UP = tuple(w.name for w in EXTRA_WORKERS if w.group_members <= WORKERS)
ORDER = ("postgres", "kafka", *(s.name for s in SERVICES), *WORKERS_UP)
KNOWN = (*ORDER, *(w.name for w in EXTRA_WORKERS if w.name not in WORKERS_UP))


def up() -> None:
    for name in ORDER:
        began = time.monotonic()
        start(name)
        print(f"  {name:<17} ready in {time.monotonic() - began:4.1f}s", flush=True)


def down() -> None:
    failures = []
    for name in reversed(KNOWN):  # workers started by hand too
        try:  # one that will not stop leaves the others to stop
            if stop(name) is not False:
                print(f"  stopped {name}")
        except (StackError, OSError) as error:
            failures.append(f"{name}: {error}")
    for pid, command in sweep():
        print(f"  stopped {pid} left over, no pid file named it: {command[:100]}")
    if failures:
        raise StackError("; ".join(failures))


def _marked(pid: int, mark: bytes) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours to read (a zombie's reads empty)
        return False
    return mark in environ.split(b"\0")


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return pids


def sweep(mark: str = f"{STACK_MARK}={RUN_DIR}", deadline_s: float = 10
          ) -> list[tuple[int, str]]:
    """Stop every process whose environment holds ``mark`` (this stack's, by default)
    still running (SIGTERM, then SIGKILL after the deadline), but this one and those
    that started it; (pid, command) of each."""
    mine, marked = _ancestors(), mark.encode()
    left = [int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and int(p.name) not in mine and _marked(int(p.name), marked)]
    found = []
    for pid in left:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            os.kill(pid, signal.SIGTERM)
        except (OSError, ProcessLookupError):
            continue
        found.append((pid, command.decode(errors="replace").strip()))
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and any(_marked(pid, marked) for pid, _ in found):
        for pid, _ in found:
            _reap(pid)
        time.sleep(0.1)
    for pid, _ in found:
        if _marked(pid, marked):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return found


def running(name: str) -> bool:
    return _pg_ready() if name == "postgres" else read_pid(name) is not None


def status() -> int:
    ready = {
        "postgres": _pg_ready,
        "kafka": lambda: port_open(9092),
        **{s.name: (lambda s=s: http_ok(s.ready_url)) for s in SERVICE_BY_NAME.values()},
    }
    print(f"{'service':<18}{'pid':>8}  {'state':<9}{'log'}")
    all_ready = True
    for name in KNOWN:
        if name not in ORDER and read_pid(name) is None:
            continue  # a worker not asked for
        pid = read_pid(name) if name != "postgres" else None
        state = "ready" if ready[name]() else ("starting" if running(name) else "stopped")
        all_ready &= state == "ready"
        print(f"{name:<18}{pid or '-':>8}  {state:<9}.run/logs/{name}.log")
    return 0 if all_ready else 1


def main(argv: list[str]) -> int:
    command, *names = argv or ["status"]
    try:
        if command == "up":
            up()
        elif command == "down":
            down()
        elif command == "status":
            return status()
        elif command in ("start", "stop", "kill", "restart") and names:
            for name in names:
                if name not in KNOWN:
                    raise StackError(f"unknown service {name!r}; one of {', '.join(KNOWN)}")
                if command in ("stop", "restart"):
                    stop(name)
                if command == "kill":
                    stop(name, signal.SIGKILL)
                if command in ("start", "restart"):
                    start(name)
        else:
            print(__doc__)
            return 2
    except StackError as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
