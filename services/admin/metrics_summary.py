"""The admin service's own sampling of the services' metrics, for the console's operations
page (``GET /admin/v1/metrics/summary``, metrics_summary_routes.py): there is no
Prometheus server in the local stack, so every ``admin_metrics_sample_s`` (15 s) the
admin scrapes each service's ``/metrics`` (their ports are the settings'), keeps only the
series the summary reads (shared/domain/metrics_summary.py parses them) in a ring of an
hour, and the summary is the counters' increases per minute.

A service that does not answer is marked down (its name, URL, when it last answered, the
error), never an error of the summary. One round scrapes every service at once, each
with a timeout of its own; its CPU time is kept (``last_round_cpu_s``). A scrape is one
plain HTTP/1.0 GET on its own connection (``fetch``; the metrics servers close each
connection anyway): 14 services cost about 4.5 ms of CPU a round this way, 16 ms through
httpx; parsing the kept series 1.5-2 ms more (measured on the local stack, README "What
the console reads").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.domain.metrics_summary import Ring, Scrape, Values, parse
from shared.settings import Settings

log = logging.getLogger(__name__)
TIMEOUT_S = 2.0
FIRST_PAIR_S = 2.0
MAX_BYTES = 8 * 1024 * 1024  # a metrics page larger than this is an error, not a memory hog


class ScrapeError(Exception):
    pass


async def fetch(url: str, timeout_s: float) -> str:
    """The body of ``GET url`` over HTTP/1.0 (no keep-alive, never chunked), within
    ``timeout_s``; ``ScrapeError`` for anything but a 200."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ScrapeError(f"not an http:// URL: {url}")
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        try:
            writer.write(f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {parts.netloc}\r\n"
                         "Accept: text/plain\r\n\r\n".encode())
            chunks: list[bytes] = []
            size = 0
            while chunk := await reader.read(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_BYTES:
                    raise ScrapeError(f"more than {MAX_BYTES} bytes")
        finally:
            writer.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(status_line) < 2 or status_line[1] != b"200":
        raise ScrapeError(f"answered {b' '.join(status_line[1:]).decode(errors='replace')!r}")
    return body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Target:
    name: str
    url: str


def targets(settings: Settings, host: str | None = None) -> tuple[Target, ...]:
    """The services whose metrics the summary reads (one worker each), on
    ``settings.admin_metrics_host``: 127.0.0.1 for the local stack, ``{service}`` for each
    service's own name in docker-compose and Kubernetes."""
    ports = (
        ("gateway", settings.gateway_port), ("processor", settings.processor_metrics_port),
        ("sender-email", settings.sender_email_metrics_port),
        ("sender-email-bulk", settings.sender_email_bulk_metrics_port),
        ("sender-sms", settings.sender_sms_metrics_port),
        ("sender-sms-bulk", settings.sender_sms_bulk_metrics_port),
        ("sender-push", settings.sender_push_metrics_port),
        ("sender-push-bulk", settings.sender_push_bulk_metrics_port),
        ("profile-ingest", settings.profile_ingest_metrics_port),
        ("reactions", settings.reactions_metrics_port),  # the consumer lag
        ("journeys", settings.journeys_metrics_port),
        ("webhooks", settings.webhooks_metrics_port),
        ("tracking", settings.tracking_port),
        ("bounces", settings.bounces_metrics_port),
    )
    host = settings.admin_metrics_host if host is None else host
    return tuple(Target(name, f"http://{host.replace('{service}', name)}:{port}/metrics")
                 for name, port in ports)


@dataclass
class ServiceState:
    up: bool = False
    last_scrape_at: float | None = None  # when it last answered
    error: str | None = None  # why its last scrape failed


class Sampler:
    def __init__(self, to_scrape: tuple[Target, ...], interval_s: float,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.targets = to_scrape
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.ring = Ring(interval_s)
        self.states = {t.name: ServiceState() for t in to_scrape}
        self.rounds = 0
        self.last_round_at: float | None = None
        self.last_round_s: float | None = None  # wall time of the last round
        self.last_round_cpu_s: float | None = None  # the admin's CPU time of it
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metrics-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.scrape_round()
            except Exception:  # never the end of the sampling: logged, tried next round
                log.exception("metrics sampling round failed")
            # The second round soon after the first: the summary has its first pair (the
            # current minute covered) a couple of seconds after the admin starts.
            wait = min(FIRST_PAIR_S, self.interval_s) if self.rounds == 1 else self.interval_s
            await asyncio.sleep(max(0.0, wait - (time.monotonic() - started)))

    async def scrape_round(self) -> None:
        """Every service at once; each answer (or silence) into the ring."""
        cpu, wall, at = time.thread_time(), time.perf_counter(), time.time()
        results = await asyncio.gather(*(self._scrape(t) for t in self.targets))
        for target, (values, error) in zip(self.targets, results, strict=True):
            self.ring.add(target.name, Scrape(at, values))
            state = self.states[target.name]
            if values is not None:
                if not state.up and state.error is not None:
                    log.info("metrics of %s answer again", target.name)
                state.up, state.last_scrape_at, state.error = True, at, None
            else:
                if state.up or state.error is None:
                    log.warning("metrics of %s do not answer: %s", target.name, error)
                state.up, state.error = False, error
        self.rounds += 1
        self.last_round_at = at
        self.last_round_s = time.perf_counter() - wall
        self.last_round_cpu_s = time.thread_time() - cpu

    async def _scrape(self, target: Target) -> tuple[Values | None, str | None]:
        try:
            return parse(await fetch(target.url, self.timeout_s)), None
        except (OSError, TimeoutError, ScrapeError, ValueError) as error:
            return None, f"{type(error).__name__}: {error}".rstrip(": ")
