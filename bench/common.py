"""What every benchmark shares: the bench event, its request bodies, result rows, progress."""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from shared.domain.events import EventConfig, build_ingest_model
from shared.domain.events import trigger_record as gateway_record
from shared.domain.pkeys import mint_pkey
from shared.settings import RUN_DIR, get_settings

settings = get_settings()
GATEWAY = f"http://127.0.0.1:{settings.gateway_port}"
SINK = f"http://127.0.0.1:{settings.smtp_sink_http_port}"
BULK_SINK = f"http://127.0.0.1:{settings.smtp_bulk_sink_http_port}"  # bulk email's relay
SENDER_METRICS = f"http://127.0.0.1:{settings.sender_email_metrics_port}/metrics"
# The tx email sender's series in its metrics (shared.sending.metrics, one set for every
# channel): messages sent, and gateway acceptance → SMTP acceptance.
SENDER_SENT = "parcours_sender_sent_total"
SENDER_LATENCY = "parcours_sender_accepted_to_provider_seconds"
EMAIL_TX = {"channel": "email", "priority": "tx"}
TENANT = "default"
BENCH_TOPIC = "parcours.bench.v1"  # bench-only; never read by the services
BENCH_DOMAIN = "bench.example.com"  # every bench recipient, so our mail is easy to pick out
RUNS = 3  # each measurement runs this many times; the median is reported

# Event-based targeting: no profile lookup, so P4 measures the chain, not seeding.
BENCH_EVENT = EventConfig.model_validate({
    "event_id": "EVTbench",
    "label": "Benchmark event (bench/)",
    "channel": "email",
    "targeting": "event",
    "fields": [{"id": "orderId", "type": "string", "required": True},
               {"id": "amount", "type": "decimal"},
               {"id": "sentAt", "type": "string"}],
})
# sent-at is read back from the SMTP sink to time each message (P4). Senders cache the
# compiled template by its content, so a change here takes effect at once.
BENCH_TEMPLATE = {
    "subject": "Order {{ ctx.orderId }}",
    "html": "<p>Order {{ ctx.orderId }}: {{ ctx.amount }}</p><p>sent-at={{ ctx.sentAt }}</p>",
    "text": "order={{ ctx.orderId }}\nsent-at={{ ctx.sentAt }}\n",
}
# An expiration in the past makes the processor end each P1 event as tooOld (one status
# write) instead of sending tens of thousands of emails into the shared sink; the
# gateway's work is the same either way. B2 parses the very same bodies.
PAST_EXPIRATION = "2000-01-01T00:00:00Z"
BODY_VARIANTS = 64  # distinct targets, so records spread over the topic's partitions


def request_headers() -> dict[str, str]:
    """JSON, with the ingestion key bench.pipeline created (inherited by subprocesses)."""
    key = os.environ.get("PARCOURS_BENCH_KEY")
    return {"Content-Type": "application/json",
            **({"Authorization": f"Bearer {key}"} if key else {})}


def ingest_bodies(count: int = BODY_VARIANTS) -> list[bytes]:
    """The B2/P1 request bodies: same shape and size, one target each."""
    return [
        orjson.dumps({
            "email": f"bench-{i:03d}@{BENCH_DOMAIN}",
            "ctx": {"orderId": f"ORD-{i:06d}", "amount": 42.5},
            "expiration": PAST_EXPIRATION,
        })
        for i in range(count)
    ]


def trigger_record(body: bytes) -> tuple[bytes, bytes]:
    """(key, value) exactly as the gateway would write ``body`` to Kafka (for B1)."""
    parsed = build_ingest_model(BENCH_EVENT).model_validate_json(body)
    pkey = mint_pkey(b"bench", TENANT, BENCH_EVENT.event_id, bytes(12))  # a real pKey's size
    record = gateway_record(parsed, pkey=pkey, tenant=TENANT,
                            event_id=BENCH_EVENT.event_id, accepted_at=time.time())
    key = next(iter(record["target"].values())).lower().encode()
    return key, orjson.dumps(record)


@dataclass
class Row:
    """One line of the result table (and of the JSON file)."""

    id: str
    what: str
    figure: float | None
    unit: str
    baseline: str = "—"
    ratio: float | None = None
    target: str = "—"
    met: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)


def progress(text: str, *, end: str = "\n") -> None:
    print(text, end=end, flush=True)


def overwrite(text: str) -> None:
    """Rewrite the current line (a counter while something drains)."""
    sys.stdout.write(f"\r{text}\033[K")
    sys.stdout.flush()


# --- the stack's processes, read from /proc (parsed by bench.stats) -----------------------

def service_pid(service: str) -> int | None:
    """A stack service's pid (``.run/pids/<service>.pid``; ``kafka`` the broker), or None
    when it is not running."""
    try:
        pid = int((RUN_DIR / "pids" / f"{service}.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def stack_services() -> dict[str, int]:
    """Every running process of the stack that has a pid file, by name."""
    found = {}
    for path in sorted((RUN_DIR / "pids").glob("*.pid")):
        if (pid := service_pid(path.stem)) is not None:
            found[path.stem] = pid
    return found


def service_processes() -> dict[str, int]:
    """``stack_services()`` and every other process running ``python -m services.<x>``
    (a worker started by hand, an A/B copy whose pid file was overwritten), those named
    ``<x> (pid N, no pid file)``."""
    found = stack_services()
    known = set(found.values())
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
            pid = int(cmdline.parent.name)
        except (OSError, ValueError):
            continue  # ended meanwhile
        if pid in known or b"-m" not in args[:-1]:
            continue
        module = args[args.index(b"-m") + 1].decode(errors="replace")
        if module.startswith("services.") and module != "services.cli":  # a command
            name = module.removeprefix("services.").replace("_", "-")
            found[f"{name} (pid {pid}, no pid file)"] = pid
    return found


def postgres_pids() -> list[int]:
    """The postmaster (first line of ``postmaster.pid``) and its children: backends,
    checkpointer, writers."""
    try:
        master = int((RUN_DIR / "pgdata" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [master]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
    return pids


def proc_cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system) a process has used, or None if it is not there."""
    from bench.stats import stat_cpu_ticks

    if pid is None:
        return None
    try:
        return stat_cpu_ticks(Path(f"/proc/{pid}/stat").read_text()) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def proc_rss_mb(pid: int | None) -> float | None:
    """Resident set size in MB (10^6 bytes), or None if the process is not there."""
    from bench.stats import status_rss_kb

    if pid is None:
        return None
    try:
        kb = status_rss_kb(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return None if kb is None else kb * 1024 / 1e6


class CpuMeter:
    """CPU seconds used by named processes between construction and ``used()``. A name may
    stand for several pids (PostgreSQL: the postmaster and its backends); a pid that ended
    meanwhile counts for nothing, a process restarted meanwhile (another pid) gives None."""

    def __init__(self, processes: dict[str, list[int]]) -> None:
        self.processes = processes
        self.began = time.monotonic()
        self.before = {name: self._sum(pids) for name, pids in processes.items()}

    @staticmethod
    def _sum(pids: list[int]) -> dict[int, float]:
        return {pid: cpu for pid in pids if (cpu := proc_cpu_s(pid)) is not None}

    def used(self) -> tuple[dict[str, float | None], float]:
        """CPU seconds per name, and the wall seconds since construction."""
        wall = time.monotonic() - self.began
        out: dict[str, float | None] = {}
        for name, pids in self.processes.items():
            before, after = self.before[name], self._sum(pids)
            if not before:
                out[name] = None
                continue
            total = sum(after[pid] - cpu for pid, cpu in before.items() if pid in after)
            out[name] = None if total < 0 else total
        return out, wall


def chain_processes(*services: str) -> dict[str, list[int]]:
    """The named services' pids, each with its other workers' (``processor-2``...: a
    service scaled out counts as one), and PostgreSQL's (all its processes, as one)."""
    running = service_processes()
    found = {}
    for service in services:
        pids = [pid for name, pid in running.items()
                if re.fullmatch(rf"{re.escape(service)}(-\d+)?( \(pid \d+, no pid file\))?",
                                name)]
        if pids:
            found[service] = pids
    found["postgres"] = postgres_pids()
    return found


def machine_load() -> str:
    """``/proc/loadavg``'s three averages, to print beside a figure."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
