"""The decision step, rule by rule: each can exclude or defer, names itself, and the
first that does not pass decides while every rule still gives its verdict."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.domain.audiences import profile_paths
from shared.domain.conditions import check_condition, parse_condition
from shared.domain.delivery_rules import (
    Candidate,
    CapacityRule,
    Contact,
    Facts,
    FatigueRule,
    Filtering,
    QuietHoursRule,
    Rules,
    decide,
)
from shared.domain.profile_schema import ProfileSchema

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def candidate(**changes) -> Candidate:
    values = {"message_id": "m1", "channel": "email", "origin_id": "welcome",
              "transactional": False, "contact_at": NOW, **changes}
    return Candidate(**values)


def profile(**changes) -> dict:
    return {"profileId": "p1", "email": "a@example.com", "birthDate": "1990-01-01",
            "attributes": {}, "consent": {"email": {"marketing": "opted-in", "blocked": False}},
            "topics": {}, **changes}


def test_nothing_in_the_way_sends():
    decision = decide(candidate(), Facts(profile=profile()), Rules(), NOW)
    assert decision.outcome == "send" and decision.deciding is None
    assert [v.rule_id for v in decision.trace] == ["denylist", "quarantine", "consent"]


def test_denylist_and_quarantine_apply_to_event_based_messages():
    facts = Facts(denylisted="example.com", quarantined="hard bounce 550")
    decision = decide(candidate(profile_based=False), facts, Rules(), NOW)
    assert decision.outcome == "exclude"
    assert decision.reason == ("rule denylist (denylist): the address is on the denylist"
                               " (example.com)")
    assert [v.outcome for v in decision.trace] == ["exclude", "exclude"]


def test_marketing_needs_an_opt_in_transactional_does_not():
    out = profile(consent={"email": {"marketing": "opted-out", "blocked": False}})
    assert decide(candidate(), Facts(profile=out), Rules(), NOW).reason == (
        "rule consent (consent): no marketing consent on email (opted-out)")
    assert decide(candidate(transactional=True), Facts(profile=out), Rules(), NOW
                  ).outcome == "send"


def test_a_blocked_channel_receives_nothing():
    blocked = profile(consent={"email": {"marketing": "opted-in", "blocked": True}})
    decision = decide(candidate(transactional=True), Facts(profile=blocked), Rules(), NOW)
    assert decision.outcome == "exclude" and "blocked" in decision.reason


def test_a_topic_needs_its_subscription():
    decision = decide(candidate(topic="offers"), Facts(profile=profile()), Rules(), NOW)
    assert decision.reason == "rule consent (consent): not subscribed to topic 'offers'"
    subscribed = profile(topics={"offers": {"subscribed": True}})
    assert decide(candidate(topic="offers"), Facts(profile=subscribed), Rules(), NOW
                  ).outcome == "send"


def test_filtering_excludes_whom_the_condition_matches():
    minors = check_condition(parse_condition(
        {"path": "birthDate", "op": "within", "last": {"years": 18}}),
        profile_paths(ProfileSchema()))
    rules = Rules(typology=[("r1", Filtering("r1", "under 18", minors))])
    young = profile(birthDate="2015-05-05")
    assert decide(candidate(), Facts(profile=young), rules, NOW).reason == (
        "rule r1 (filtering): 'under 18' matches")
    assert decide(candidate(), Facts(profile=profile()), rules, NOW).outcome == "send"
    no_birth_date = profile(birthDate=None)  # unknown is not a match
    assert decide(candidate(), Facts(profile=no_birth_date), rules, NOW).outcome == "send"


def test_capacity_counts_tenant_wide_use():
    rules = Rules(typology=[("r2", CapacityRule(name="launch", max=2, period=DAY))])
    assert decide(candidate(), Facts(profile=profile(), capacity_used={"r2": 1}), rules,
                  NOW).outcome == "send"
    assert decide(candidate(), Facts(profile=profile(), capacity_used={"r2": 2}), rules,
                  NOW).reason == "rule r2 (capacity): 'launch': 2 of 2 per 1 day used"


def test_at_the_cap_a_journeys_message_waits_and_a_deferring_rule_defers():
    frees = NOW + timedelta(hours=5)
    at_cap = Facts(profile=profile(), capacity_used={"r2": 2}, capacity_frees={"r2": frees})
    drop = Rules(typology=[("r2", CapacityRule(name="launch", max=2, period=DAY))])
    held = decide(candidate(held_at_cap=True), at_cap, drop, NOW)  # a journey's message
    assert held.outcome == "defer" and held.deciding.until == frees
    assert held.reason == "rule r2 (capacity): 'launch': 2 of 2 per 1 day used"
    assert decide(candidate(), at_cap, drop, NOW).outcome == "exclude"  # an event's: dropped
    defer = Rules(typology=[("r2", CapacityRule(name="launch", max=2, period=DAY,
                                                atCap="defer"))])
    assert decide(candidate(), at_cap, defer, NOW).deciding.until == frees
    # below the cap nothing waits, whatever is known of the next free slot
    assert decide(candidate(held_at_cap=True), Facts(
        profile=profile(), capacity_used={"r2": 1}, capacity_frees={"r2": frees}), drop,
        NOW).outcome == "send"


def fatigue(**changes) -> FatigueRule:
    return FatigueRule(**{"name": "two a day", "channels": ("email",), "max": 2,
                          "period": DAY, **changes})


def test_fatigue_drops_at_the_cap_and_counts_transactional_messages():
    history = [Contact("email", NOW - timedelta(hours=3), True),
               Contact("email", NOW - timedelta(hours=1), False)]
    rules = Rules(fatigue=[("r3", fatigue())])
    decision = decide(candidate(), Facts(profile=profile(), history=history), rules, NOW)
    assert decision.reason == "rule r3 (fatigue): 'two a day': at most 2 per 1 day"
    assert decision.outcome == "exclude"
    # transactional: counted, exempt by default
    assert decide(candidate(transactional=True), Facts(profile=profile(), history=history),
                  rules, NOW).outcome == "send"
    capped = Rules(fatigue=[("r3", fatigue(transactional="capped"))])
    assert decide(candidate(transactional=True), Facts(profile=profile(), history=history),
                  capped, NOW).outcome == "exclude"


def test_fatigue_defers_to_the_first_allowed_instant():
    history = [Contact("email", NOW - timedelta(hours=3), False),
               Contact("email", NOW - timedelta(hours=1), False)]
    rules = Rules(fatigue=[("r3", fatigue(atCap="defer"))])
    decision = decide(candidate(), Facts(profile=profile(), history=history), rules, NOW)
    assert decision.outcome == "defer"
    assert decision.deciding.until == NOW - timedelta(hours=3) + DAY


def test_fatigue_other_channels_and_the_cap_from_a_profile_field():
    history = [Contact("sms", NOW - timedelta(hours=1), False)] * 3
    rules = Rules(fatigue=[("r3", fatigue(max=1))])
    assert decide(candidate(), Facts(profile=profile(), history=history), rules, NOW
                  ).outcome == "send"
    across = Rules(fatigue=[("r4", fatigue(channels=(), max=5, maxFrom="attributes.cap"))])
    capped = profile(attributes={"cap": 3})
    assert decide(candidate(), Facts(profile=capped, history=history), across, NOW
                  ).outcome == "exclude"
    assert decide(candidate(), Facts(profile=profile(), history=history), across, NOW
                  ).outcome == "send"


def test_quiet_hours_defer_in_the_profiles_time_zone():
    rules = Rules(quiet_hours=[("r5", QuietHoursRule(
        name="nights", channels=("email",), start=time(21), end=time(8)))])
    night = datetime(2026, 6, 1, 20, 30, tzinfo=UTC)  # 22:30 in Paris
    facts = Facts(profile=profile(), time_zone=ZoneInfo("Europe/Paris"))
    decision = decide(candidate(contact_at=night), facts, rules, night)
    assert decision.outcome == "defer"
    assert decision.deciding.until == datetime(2026, 6, 2, 6, 0, tzinfo=UTC)
    assert decide(candidate(contact_at=night, transactional=True), facts, rules, night
                  ).outcome == "send"
    new_york = Facts(profile=profile(), time_zone=ZoneInfo("America/New_York"))  # 16:30
    assert decide(candidate(contact_at=night), new_york, rules, night).outcome == "send"


def test_the_first_rule_decides_and_every_rule_gives_its_verdict():
    out = profile(consent={"email": {"marketing": "opted-out", "blocked": False}})
    rules = Rules(fatigue=[("r3", fatigue(max=0))])
    decision = decide(candidate(), Facts(profile=out), rules, NOW)
    assert decision.deciding.rule_id == "consent"
    assert [(v.rule_id, v.outcome) for v in decision.trace] == [
        ("denylist", "pass"), ("quarantine", "pass"), ("consent", "exclude"),
        ("r3", "exclude")]
