"""The one catalogue of Kafka topics: name, key, partition count, payload schema and topic
configuration (applied when the topic is created).

Automatic topic creation is off on the broker, so every topic the project uses must be
listed here; ``python -m shared.adapters.kafka`` (run by ``make up``) creates the missing
ones.
Topics read by the same stage share key and partition count (co-partitioned).
"""

from __future__ import annotations

from dataclasses import dataclass, field

WEEK_MS = 7 * 24 * 3600 * 1000
# Records expire with their segment after 7 days (the broker's log.retention.hours=168,
# stated per topic so the catalogue says it).
RETAINED_7_DAYS = {"cleanup.policy": "delete", "retention.ms": str(WEEK_MS)}
# The last record of each key is kept for good. No record is compacted away before it is
# 7 days old (as long as any other topic keeps its records), so a consumer that lags less
# than that reads every merge; a tombstone (a null value) is kept 7 days more.
COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": str(WEEK_MS),
             "delete.retention.ms": str(WEEK_MS)}


@dataclass(frozen=True)
class Topic:
    name: str
    key: str
    partitions: int
    schema: str  # path under schemas/
    description: str
    # Kafka topic configs (cleanup.policy, retention.ms, ...), set at creation.
    config: dict[str, str] = field(default_factory=lambda: dict(RETAINED_7_DAYS), hash=False)


EVENTS_IN = Topic(
    "parcours.events.in.v1", "target", 6, "topics/events.in.v1.json",
    "Trigger events the gateway accepted: validated, with a signed pKey. Written by the "
    "gateway, and by the processor when it releases a held (paused or scheduled) event.",
)
# Internal systems' own input, apart from EVENTS_IN: its records are not validated yet
# (each is signed by its tenant's kafka key), so producers get write access here and never
# to EVENTS_IN (whose records the processor trusts), a backlog here never sits in front of
# the website's events, and each topic has one schema. Same key and partition count: the
# processor reads both (co-partitioned).
EVENTS_KAFKA = Topic(
    "parcours.events.kafka.v1", "target", 6, "topics/events.kafka.v1.json",
    "Events internal systems produce straight to Kafka; validated by the processor like "
    "HTTP requests, the invalid ones dead-lettered with the reason.",
)
SEND_EMAIL_TX = Topic(
    "parcours.send.email.tx.v1", "message id", 6, "topics/send.v2.json",
    "Transactional emails ready to render and send; own sender capacity.",
)
SEND_EMAIL_BULK = Topic(
    "parcours.send.email.bulk.v1", "message id", 6, "topics/send.v2.json",
    "Journey and marketing emails; never in front of transactional ones.",
)
SEND_SMS_TX = Topic(
    "parcours.send.sms.tx.v1", "message id", 3, "topics/send.v2.json",
    "Transactional SMS.",
)
SEND_PUSH_TX = Topic(
    "parcours.send.push.tx.v1", "message id", 3, "topics/send.v2.json",
    "Transactional push notifications.",
)
SEND_SMS_BULK = Topic(
    "parcours.send.sms.bulk.v1", "message id", 3, "topics/send.v2.json",
    "Journey and marketing SMS; never in front of transactional ones.",
)
SEND_PUSH_BULK = Topic(
    "parcours.send.push.bulk.v1", "message id", 3, "topics/send.v2.json",
    "Journey and marketing push notifications; never in front of transactional ones.",
)
DEADLETTER = Topic(
    "parcours.deadletter.v1", "original key", 3, "topics/deadletter.v1.json",
    "Records that could not be processed, with the stage and the reason; replayable.",
)

# Profile writes from internal systems, keyed "<tenant>\0<profileId>": compacted, so the
# topic keeps each profile's last write (or its tombstone, an erasure) and nothing older.
# Read by services/profile_ingest, apart from the event path.
PROFILES = Topic(
    "parcours.profiles.v1", "tenant NUL profile id", 6, "topics/profiles.v1.json",
    "Profile upserts and erasures (tombstones) internal systems produce, each signed by its "
    "tenant; validated like the profile API, the invalid ones dead-lettered with the reason.",
    config=dict(COMPACTED),
)

# What comes back from recipients (opens, clicks, bounces…), keyed by profile id (the
# target address for event-based messages): co-partitioned with what a journey engine
# keyed by profile reads. Written through the reactions outbox (PostgreSQL first, so a
# click is recorded even while Kafka is slow), each reaction once.
REACTIONS = Topic(
    "parcours.reactions.v1", "profile id (else target)", 6, "topics/reactions.v1.json",
    "Reactions of recipients: delivered, opened, clicked, bounced, complained, "
    "unsubscribed, pushOpened, smsDelivered, failed; each once, machine ones flagged.",
)

# Keyed like REACTIONS (the profile id), so the journey engine reads a profile's reactions
# and journey events from one partition, in order (co-partitioned).
JOURNEY_EVENTS = Topic(
    "parcours.journey-events.v1", "profile id", 6, "topics/journey-events.v1.json",
    "Journey events (JEV types) the gateway accepted: typed, identified by their type's "
    "condition and matched to their profile; what journeys' event waits and exits read.",
)

# Journey events internal systems produce, signed with a kafka key of their tenant like
# EVENTS_KAFKA's records; keyed by profile id like JOURNEY_EVENTS (co-partitioned).
JOURNEY_EVENTS_KAFKA = Topic(
    "parcours.journey-events.kafka.v1", "profile id", 6,
    "topics/journey-events.kafka.v1.json",
    "Journey events produced straight to Kafka by internal systems: signed (kafka key of "
    "the tenant), typed and identified by the journey engine as the gateway does over HTTP.",
)

# Every step of every journey instance, in commit order per profile: a record is one or
# more consecutive steps of one instance or of up to 1,000 that entered together, all of
# one partition (keyed by the first one's profile id). Versions 1 (a record a profile and
# step) and 2 (a record a step) are no longer written.
JOURNEY_STEPS = Topic(
    "parcours.journey-steps.v3", "profile id (a record's first member's)", 6,
    "topics/journey-steps.v3.json",
    "Step events of journey instances (entered, transition, actionSent, actionExcluded, "
    "reaction, event, timedOut, finished, stopped, exited, error, ...) for counts and "
    "analyses downstream; a record holds consecutive steps of the same members, the "
    "steps of profiles that entered together one record per partition and 1,000 of them.",
)

ALL_TOPICS: tuple[Topic, ...] = (
    EVENTS_IN, EVENTS_KAFKA, SEND_EMAIL_TX, SEND_EMAIL_BULK, SEND_SMS_TX, SEND_PUSH_TX, DEADLETTER,
    PROFILES, REACTIONS, SEND_SMS_BULK, SEND_PUSH_BULK, JOURNEY_EVENTS, JOURNEY_STEPS,
    JOURNEY_EVENTS_KAFKA,
)

SEND_TX_TOPICS = {"email": SEND_EMAIL_TX, "sms": SEND_SMS_TX, "push": SEND_PUSH_TX}
SEND_BULK_TOPICS = {"email": SEND_EMAIL_BULK, "sms": SEND_SMS_BULK, "push": SEND_PUSH_BULK}


def send_topic(channel: str, priority: str) -> Topic:
    """Where a message goes to its sender: its channel's bulk lane for journey and
    marketing traffic (``priority`` bulk), else the transactional one."""
    return (SEND_BULK_TOPICS if priority == "bulk" else SEND_TX_TOPICS)[channel]
