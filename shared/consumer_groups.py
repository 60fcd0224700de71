"""The one catalogue of Parcours' Kafka consumer groups: each group's name (a Faust app's
is its id) and the topics it reads. The consumer-lag exporter (services/reactions/lag.py)
reports these groups only, so its labels stay bounded; tests/unit/test_consumer_lag.py
fails when a service names a group this catalogue lacks."""

from __future__ import annotations

from shared.domain.consumer_lag import ConsumerGroup
from shared.topics import (
    EVENTS_IN,
    EVENTS_KAFKA,
    JOURNEY_EVENTS,
    JOURNEY_EVENTS_KAFKA,
    PROFILES,
    REACTIONS,
    SEND_EMAIL_BULK,
    SEND_EMAIL_TX,
    SEND_PUSH_BULK,
    SEND_PUSH_TX,
    SEND_SMS_BULK,
    SEND_SMS_TX,
)

CONSUMER_GROUPS: tuple[ConsumerGroup, ...] = (
    ConsumerGroup("parcours-processor", (EVENTS_IN.name, EVENTS_KAFKA.name)),
    ConsumerGroup("parcours-sender-email", (SEND_EMAIL_TX.name,)),
    ConsumerGroup("parcours-sender-email-bulk", (SEND_EMAIL_BULK.name,)),
    ConsumerGroup("parcours-sender-sms", (SEND_SMS_TX.name,)),
    ConsumerGroup("parcours-sender-sms-bulk", (SEND_SMS_BULK.name,)),
    ConsumerGroup("parcours-sender-push", (SEND_PUSH_TX.name,)),
    ConsumerGroup("parcours-sender-push-bulk", (SEND_PUSH_BULK.name,)),
    ConsumerGroup("parcours-profile-ingest", (PROFILES.name,)),
    ConsumerGroup("parcours-reactions", (REACTIONS.name,)),
    # Notifies of reactions from its start on (auto_offset_reset "latest"), not the past.
    ConsumerGroup("parcours-webhooks", (REACTIONS.name,), from_start=False),
    ConsumerGroup("parcours-journeys",
                  (REACTIONS.name, JOURNEY_EVENTS.name, JOURNEY_EVENTS_KAFKA.name)),
)
