"""Every store that holds personal data about a profile, in one place: importing this
module registers each of them with ``erasure``, so the two processes that erase (the
gateway's profile API and profile-ingest's tombstones) erase and export the same stores.
A new store that registers with ``erasure`` is added here, and only here
(tests/unit/test_erasure_registry.py fails until it is)."""

from __future__ import annotations

from shared.adapters import (
    consent_store,
    contact_history,
    erasure,
    event_redaction,
    journey_store,
    profile_store,
    reaction_store,
    send_retries,
    tracking_store,
    webhook_store,
)

STORES = (consent_store, contact_history, event_redaction, journey_store, profile_store,
          reaction_store, send_retries, tracking_store, webhook_store)
erase_profile = erasure.erase_profile
export_profile = erasure.export_profile
