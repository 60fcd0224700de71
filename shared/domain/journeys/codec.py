"""An instance as JSON (how the engine stores it) and back, exactly: a round trip gives an
equal instance, so redoing an input on a stored instance gives the same effects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.domain.journeys.instance import Instance, Seen, State


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def instance_to_json(instance: Instance) -> dict[str, Any]:
    return {
        "journeyId": instance.journey_id, "version": instance.version,
        "profileId": instance.profile_id, "instanceId": instance.instance_id,
        "state": instance.state.value, "node": instance.node, "token": instance.token,
        "enteredAt": instance.entered_at.isoformat(),
        "waitingSince": (instance.waiting_since.isoformat()
                         if instance.waiting_since else None),
        "steps": instance.steps, "sent": dict(instance.sent),
        "waits": {k: dict(v) for k, v in instance.waits.items()},
        "seen": [{"kind": s.kind, "key": s.key, "what": s.what, "link": s.link,
                  "machine": s.machine, "data": dict(s.data), "at": s.at.isoformat()}
                 for s in instance.seen],
        "reason": instance.reason,
        "branches": dict(instance.branches),
    }


def instance_from_json(data: dict[str, Any]) -> Instance:
    entered = _moment(data["enteredAt"])
    assert entered is not None
    return Instance(
        journey_id=data["journeyId"], version=data["version"], profile_id=data["profileId"],
        instance_id=data["instanceId"], state=State(data["state"]), node=data["node"],
        token=data["token"], entered_at=entered,
        waiting_since=_moment(data.get("waitingSince")), steps=data["steps"],
        sent=dict(data["sent"]), waits={k: dict(v) for k, v in data["waits"].items()},
        seen=tuple(Seen(s["kind"], s["key"], s["what"], s["link"], s["machine"],
                        dict(s["data"]), datetime.fromisoformat(s["at"]))
                   for s in data["seen"]),
        reason=data.get("reason"), branches=dict(data.get("branches") or {}))
