"""A journey's lifecycle through the admin API: its draft published as a version (or run
as a test version for chosen test profiles, waits compressed), paused, resumed, stopped;
its versions and their per-node counts.

    POST /admin/v1/journeys/{journeyId}/publish     version N+1, live (422: the draft's errors)
    POST /admin/v1/journeys/{journeyId}/test        a test version {"profiles", "speed"}
    POST /admin/v1/journeys/{journeyId}/pause       its live versions hold (timers wait)
    POST /admin/v1/journeys/{journeyId}/resume
    POST /admin/v1/journeys/{journeyId}/stop        its live versions' instances end stopped
    POST /admin/v1/journeys/{journeyId}/test/stop   the same for its test versions
    GET  /admin/v1/journeys/{journeyId}/versions[/{n}]
    GET  /admin/v1/journeys/{journeyId}/counts?version=N

Live and test versions share the numbers. Running instances stay on their version; a new
live version closes the older ones' entry, and they end (finished) once nothing waits.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.admin.dependencies import AdminCaller, Db
from services.admin.journey_routes import JourneyId, _checked
from shared.adapters import journey_conversion_store as conversion_store
from shared.adapters import journey_version_store as versions
from shared.domain.journeys.conversion import report
from shared.domain.journeys.counts import node_counts
from shared.domain.journeys.definition import Split, parse_definition
from shared.settings import Settings

router = APIRouter(prefix="/admin/v1/journeys", tags=["journeys"])
MAX_TEST_PROFILES = 100
STOPPED = "the journey was stopped"
TEST_STOPPED = "the test run was stopped"
ProfileId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class EntryOut(BaseModel):
    after: str | None = None  # the last profile id handed over
    done: bool
    startedAt: datetime | None = None


class VersionOut(BaseModel):
    journeyId: str
    version: int
    mode: str
    state: str
    publishedAt: datetime
    updatedAt: datetime
    speed: float
    testProfiles: list[str]
    entry: EntryOut
    waiting: int | None = None
    instances: int | None = None
    definition: dict[str, Any] | None = None


class TestRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profiles: list[ProfileId] = Field(min_length=1, description="test profile ids, 1 to 100")
    speed: float = Field(1440, ge=1, le=1_000_000, description="waits are divided by it"
                         " (1440: a day in a minute)")


class StopOut(BaseModel):
    journeyId: str
    versions: list[int]
    stopped: int  # instances ended stopped


def _version_out(row: dict[str, Any], with_definition: bool = False) -> VersionOut:
    return VersionOut(
        journeyId=row["journey_id"], version=row["version"], mode=row["mode"],
        state=row["state"], publishedAt=row["published_at"], updatedAt=row["updated_at"],
        speed=row["speed"], testProfiles=list(row["test_profiles"]),
        entry=EntryOut(after=row["entry_after"], done=row["entry_done"],
                       startedAt=row["entry_started"]),
        waiting=row.get("waiting"), instances=row.get("instances"),
        definition=row["definition"] if with_definition else None)


async def _locked(connection: asyncpg.Connection, tenant: str, journey_id: str,
                  lock: bool = True) -> dict[str, Any]:
    """The journey (404 if none), locked against other moves unless only read; versions
    found finished are set so first."""
    journey = await versions.lock_journey(connection, tenant, journey_id, lock)
    if journey is None:
        raise HTTPException(404, f"no journey {journey_id!r}: create it with PUT")
    await versions.settle_finished(connection, tenant, journey_id)
    return journey


async def _publishable_draft(connection: asyncpg.Connection, tenant: str,
                             journey: dict[str, Any]) -> dict[str, Any]:
    """The draft, validated as /validate does: a 422 with every problem when one is an
    error (warnings do not block)."""
    problems, publishable = await _checked(connection, tenant,
                                           parse_definition(journey["draft"]))
    if not publishable:
        raise HTTPException(422, {
            "message": f"the draft of {journey['journey_id']!r} has errors: fix them, then"
                       " try again", "problems": [p.model_dump() for p in problems]})
    draft: dict[str, Any] = journey["draft"]
    return draft


def _states(rows: list[dict[str, Any]], mode: str) -> set[str]:
    return {r["state"] for r in rows if r["mode"] == mode}


def _not_running(journey_id: str, states: set[str]) -> str:
    """Why there is nothing to pause, resume or stop, and what to do."""
    if not states:
        return (f"journey {journey_id!r} has no published version: publish it first"
                f" (POST /admin/v1/journeys/{journey_id}/publish)")
    if "paused" in states:
        return (f"journey {journey_id!r} is paused: resume it"
                f" (POST /admin/v1/journeys/{journey_id}/resume) or stop it")
    if "live" in states:
        return f"journey {journey_id!r} is live, not paused: pause it first"
    return (f"journey {journey_id!r} has no running version (its versions are"
            f" {' or '.join(sorted(states))}): publish it again to run a new version")


class PublishIn(BaseModel):
    speed: float = Field(1, ge=1, le=1_000_000, description="waits divided by it: only on a"
                         " stack started with PARCOURS_JOURNEYS_COMPRESSED_TIME (demos)")


@router.post("/{journey_id}/publish", response_model=VersionOut,
             response_model_exclude_none=True, status_code=201)
async def publish(journey_id: JourneyId, caller: AdminCaller, connection: Db,
                  request: Request, body: PublishIn | None = None) -> VersionOut:
    """The draft becomes version N+1, live; instances of older versions stay on theirs."""
    speed = body.speed if body else 1
    settings: Settings = request.app.state.settings
    if speed != 1 and not settings.journeys_compressed_time:
        raise HTTPException(422, [{
            "loc": ["body", "speed"], "type": "value_error",
            "msg": "a published journey runs in real time; compressed time is for test runs"
                   " (POST …/test), or a demo stack started with"
                   " PARCOURS_JOURNEYS_COMPRESSED_TIME=true"}])
    journey = await _locked(connection, caller.tenant, journey_id)
    rows = await versions.versions_of(connection, caller.tenant, journey_id)
    if "paused" in _states(rows, "live"):
        raise HTTPException(409, f"journey {journey_id!r} is paused: resume it or stop it"
                                 " before publishing a new version")
    draft = await _publishable_draft(connection, caller.tenant, journey)
    row = await versions.create_version(connection, caller.tenant, journey_id, mode="live",
                                        definition=draft, speed=speed)
    return _version_out(row)


@router.post("/{journey_id}/test", response_model=VersionOut,
             response_model_exclude_none=True, status_code=201)
async def test(journey_id: JourneyId, run: TestRunIn, caller: AdminCaller, connection: Db
               ) -> VersionOut:
    """A test version: only the named test profiles enter, its waits divided by speed."""
    profiles = list(dict.fromkeys(run.profiles))
    if len(profiles) > MAX_TEST_PROFILES:
        raise HTTPException(422, f"at most {MAX_TEST_PROFILES} test profiles"
                                 f" ({len(profiles)} given)")
    journey = await _locked(connection, caller.tenant, journey_id)
    found = await versions.test_profiles_among(connection, caller.tenant, profiles)
    for profile in profiles:
        if profile not in found:
            raise HTTPException(422, f"{profile!r} is not a test profile: create it with"
                                     f" PUT /admin/v1/test-profiles/{profile}")
        if not found[profile]:
            raise HTTPException(422, f"{profile!r} is a real profile, not a test profile:"
                                     " only test profiles enter a test run")
    busy = await versions.waiting_instances(connection, caller.tenant, journey_id, profiles)
    if busy:
        profile, instance = sorted(busy.items())[0]
        raise HTTPException(409, f"test profile {profile!r} is already in the journey"
                                 f" (version {instance['version']}): remove it (DELETE"
                                 f" /admin/v1/journeys/{journey_id}/instances/{profile})"
                                 " or stop the test run first")
    draft = await _publishable_draft(connection, caller.tenant, journey)
    row = await versions.create_version(connection, caller.tenant, journey_id, mode="test",
                                        definition=draft, speed=run.speed,
                                        test_profiles=profiles)
    return _version_out(row)


async def _move(connection: asyncpg.Connection, tenant: str, journey_id: str,
                from_state: str, to_state: str) -> list[VersionOut]:
    await _locked(connection, tenant, journey_id)
    moved = await versions.move_versions(connection, tenant, journey_id, "live",
                                         [from_state], to_state)
    if not moved:
        rows = await versions.versions_of(connection, tenant, journey_id)
        raise HTTPException(409, _not_running(journey_id, _states(rows, "live")))
    await versions.set_journey_state(connection, tenant, journey_id, to_state)
    rows = await versions.versions_of(connection, tenant, journey_id)
    return [_version_out(r) for r in rows if r["version"] in moved]


@router.post("/{journey_id}/pause", response_model=list[VersionOut],
             response_model_exclude_none=True)
async def pause(journey_id: JourneyId, caller: AdminCaller, connection: Db
                ) -> list[VersionOut]:
    """Its live versions hold: instances stay where they are, their timers wait."""
    return await _move(connection, caller.tenant, journey_id, "live", "paused")


@router.post("/{journey_id}/resume", response_model=list[VersionOut],
             response_model_exclude_none=True)
async def resume(journey_id: JourneyId, caller: AdminCaller, connection: Db
                 ) -> list[VersionOut]:
    """Its paused versions go on (timers due meanwhile fire now)."""
    return await _move(connection, caller.tenant, journey_id, "paused", "live")


async def _stop(connection: asyncpg.Connection, tenant: str, journey_id: str, mode: str,
                reason: str) -> StopOut:
    journey = await _locked(connection, tenant, journey_id)
    moved = await versions.move_versions(connection, tenant, journey_id, mode,
                                         ["live", "paused"], "stopped")
    if not moved:
        if mode == "test":
            raise HTTPException(409, f"no test run of journey {journey_id!r} is going (see its"
                                     " versions: a run ends finished once its profiles are"
                                     " through): start one with POST"
                                     f" /admin/v1/journeys/{journey_id}/test")
        rows = await versions.versions_of(connection, tenant, journey_id)
        raise HTTPException(409, _not_running(journey_id, _states(rows, "live")))
    stopped = await versions.stop_instances(connection, tenant, journey_id, moved, reason)
    if mode == "live" and journey["state"] != "draft":
        await versions.set_journey_state(connection, tenant, journey_id, "stopped")
    return StopOut(journeyId=journey_id, versions=moved, stopped=len(stopped))


@router.post("/{journey_id}/stop", response_model=StopOut)
async def stop(journey_id: JourneyId, caller: AdminCaller, connection: Db) -> StopOut:
    """Its live (or paused) versions stop: every waiting instance ends ``stopped``."""
    return await _stop(connection, caller.tenant, journey_id, "live", STOPPED)


@router.post("/{journey_id}/test/stop", response_model=StopOut)
async def stop_test(journey_id: JourneyId, caller: AdminCaller, connection: Db) -> StopOut:
    return await _stop(connection, caller.tenant, journey_id, "test", TEST_STOPPED)


@router.get("/{journey_id}/versions", response_model=list[VersionOut],
            response_model_exclude_none=True)
async def list_versions(journey_id: JourneyId, caller: AdminCaller, connection: Db
                        ) -> list[VersionOut]:
    """Newest first, each with its entry's progress and how many instances wait on it."""
    await _locked(connection, caller.tenant, journey_id, lock=False)
    return [_version_out(r)
            for r in await versions.versions_of(connection, caller.tenant, journey_id)]


async def _version(connection: asyncpg.Connection, tenant: str, journey_id: str,
                   number: int | None) -> dict[str, Any]:
    """Version ``number``, or by default the latest live one (else the latest test one)."""
    await _locked(connection, tenant, journey_id, lock=False)
    rows = await versions.versions_of(connection, tenant, journey_id)
    if number is not None:
        row = next((r for r in rows if r["version"] == number), None)
        if row is None:
            raise HTTPException(404, f"journey {journey_id!r} has no version {number}")
        return row
    row = next((r for r in rows if r["mode"] == "live"), rows[0] if rows else None)
    if row is None:
        raise HTTPException(404, f"journey {journey_id!r} has no version: publish it, or"
                                 " run it in test mode")
    return row


@router.get("/{journey_id}/versions/{number}", response_model=VersionOut,
            response_model_exclude_none=True)
async def get_version(journey_id: JourneyId, number: int, caller: AdminCaller,
                      connection: Db) -> VersionOut:
    """One version, with its definition."""
    return _version_out(await _version(connection, caller.tenant, journey_id, number),
                        with_definition=True)


@router.get("/{journey_id}/conversion")
async def conversion(journey_id: JourneyId, caller: AdminCaller, connection: Db,
                     version: Annotated[int | None, Query(ge=1)] = None,
                     since: datetime | None = None, until: datetime | None = None
                     ) -> dict[str, Any]:
    """Per goal of the version, over the instances that entered in [since, until)
    (default: all): entered, converted, the rate and its 95 % interval (Wilson), the
    control group (heldOut) beside them, per split branch, per node entered and per last
    message sent (sent, converted after it); the differences of rates (everyone against
    the control group, a two-branch split's first against its second) with their 95 %
    interval and Fisher's exact p-value."""
    row = await _version(connection, caller.tenant, journey_id, version)
    start = since or datetime.min.replace(tzinfo=UTC)
    end = until or datetime.max.replace(tzinfo=UTC)
    if start.tzinfo is None or end.tzinfo is None:
        raise RequestValidationError([{"type": "timezone", "loc": ("query", "since/until"),
                                       "msg": "give a time zone (2026-12-01T00:00:00Z)"}])
    definition = parse_definition(row["definition"])
    order = {n.id: [b.name for b in n.branches] for n in definition.nodes
             if isinstance(n, Split)}
    goals = [report(goal.id, await conversion_store.goal_counts(
        connection, caller.tenant, journey_id, row["version"], goal.id, start, end), order)
        for goal in definition.goals]
    return {"journeyId": journey_id, "version": row["version"], "mode": row["mode"],
            "since": since, "until": until, "goals": goals}


@router.get("/{journey_id}/counts")
async def counts(journey_id: JourneyId, caller: AdminCaller, connection: Db,
                 version: Annotated[int | None, Query(ge=1)] = None) -> dict[str, Any]:
    """Per node of the version: entered, passed, waiting, exited; an action's sent and
    excluded (by rule); a listen's reactions, events and timeouts."""
    row = await _version(connection, caller.tenant, journey_id, version)
    steps, excluded, waiting = await versions.node_counts(connection, caller.tenant,
                                                          journey_id, row["version"])
    return {"journeyId": journey_id, "version": row["version"], "mode": row["mode"],
            "state": row["state"],
            "nodes": node_counts(parse_definition(row["definition"]), steps, excluded,
                                 waiting)}
