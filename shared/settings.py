"""One typed settings object, read from the environment (prefix ``PARCOURS_``).

Defaults point at the local stack that ``make up`` starts on 127.0.0.1.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = PROJECT_ROOT / ".run"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARCOURS_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    # A produce that the broker has not acknowledged within this bound fails, so the
    # gateway answers 503 instead of hanging (aiokafka expires batches after this too).
    kafka_request_timeout_ms: int = 5000

    # Unix socket by default: ~50% faster than TCP on loopback for one-row lookups.
    pg_dsn: str = f"postgresql://parcours@/parcours?host={RUN_DIR / 'pgsock'}&port=5433"
    # The processor's and the senders' connections plan their statements once (a generic
    # plan, pruned at execution) instead of at every execution (shared/adapters/postgres.py,
    # GENERIC_PLANS). Off (0) plans each execution for its parameters, PostgreSQL's default.
    pg_generic_plans: bool = True

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_sink_http_port: int = 8025
    smtp_timeout_s: float = 10.0
    # Messages go out in parallel over this many open connections per sender process.
    # 16, not 8: a connection waits a round trip or two a message for the sender's event
    # loop to come round (it also renders), and more of them kept the sink busy (P6
    # 0.57 -> 0.69 of B4 with 16 on 2026-12-04). Relays allow more (Postfix: 50 a client).
    smtp_connections: int = 16
    # The bulk sender's own, smaller pool (shared/sending/priority.py): journey and
    # marketing email never waits for, nor takes, a transactional connection.
    smtp_bulk_connections: int = 2
    # The relay bulk email goes through: its own, as for a separate marketing IP pool, so
    # marketing volume never queues transactional mail at the relay either (locally a
    # second SMTP sink, whose HTTP side answers on smtp_bulk_sink_http_port).
    smtp_bulk_host: str = "127.0.0.1"
    smtp_bulk_port: int = 2526
    smtp_bulk_sink_http_port: int = 8027
    # A cap on each bulk sender process, messages/s (0: none); e.g. a relay's or a sending
    # IP's agreed rate, or headroom for tx on a small shared machine. Tx is never capped.
    sender_bulk_rate_per_s: float = 0.0
    # The bulk sender lowers its own CPU priority by this much (0: not at all), so that
    # tx, the gateway and the processor win the cores when the machine is busy. 19, the
    # lowest: bulk then runs on the CPU tx leaves idle, which on 2 cores kept its
    # throughput and halved tx p50 under a flood against 10 (bench P5).
    sender_bulk_nice: int = 19
    mail_from: str = "Parcours <no-reply@parcours.localhost>"
    # How the senders reach a real relay: implicit TLS (smtps, usually port 465) or
    # STARTTLS (587), and AUTH when a username is set. Each sender process reads its own
    # environment, so the bulk sender can log in to its relay with other credentials.
    smtp_tls: bool = False
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_ca_file: str | None = None  # PEM; the system's CAs when unset
    # A tenant without a sender identity of its own (admin API /sender-identity) sends
    # from mail_from, its bounces to a VERP return path at bounce_domain (below).
    # Fernet key (32 bytes, url-safe base64) that encrypts the DKIM private keys at rest.
    # Unset: DKIM keys cannot be created and nothing is signed.
    dkim_master_key: SecretStr | None = None

    # How every Kafka client of Parcours authenticates (deploy/kafka/SECURITY.md): PLAINTEXT
    # on the local broker; in production SASL_SSL with SCRAM-SHA-512 and the CA, or SSL
    # with a client certificate (the principal is the certificate's subject).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT")
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None  # PEM; the system's CAs when unset
    kafka_ssl_certfile: str | None = None  # PEM client certificate, for mutual TLS
    kafka_ssl_keyfile: str | None = None

    # Topic creation: 1 on the single local broker; 3 (and min ISR 2) on a real cluster.
    kafka_replication_factor: int = 1

    # Processor and sender metrics servers; 0.0.0.0 in containers so Prometheus can scrape.
    metrics_host: str = "127.0.0.1"
    # Faust's local state (no tables yet); an emptyDir volume in Kubernetes.

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    admin_host: str = "127.0.0.1"
    admin_port: int = 8001
    admin_metrics_sample_s: float = 15.0  # the admin's scrapes of /metrics (metrics summary)
    # Where those scrapes go: a host for every service, or "{service}" for each service's
    # own name (docker-compose and Kubernetes, where the names resolve: gateway, processor…).
    admin_metrics_host: str = "127.0.0.1"
    # The web console (services/console): a session cookie holds the admin key, encrypted
    # with console_session_keys ("id:secret,id:secret": the first encrypts, all decrypt, so
    # a key can be rotated without signing everyone out); console_admin_url is its only back
    # end; console_grafana_url is linked from the operations page.
    console_host: str = "127.0.0.1"
    console_port: int = 8003
    console_admin_url: str = "http://127.0.0.1:8001"
    console_session_keys: SecretStr = SecretStr("c1:dev-only-console-session-secret")
    console_session_hours: float = 8.0
    console_grafana_url: str = "http://127.0.0.1:3000/d/parcours"
    processor_metrics_port: int = 9102
    sender_email_metrics_port: int = 9103
    sender_email_bulk_metrics_port: int = 9106
    sender_sms_metrics_port: int = 9104
    sender_push_metrics_port: int = 9105
    # profile-ingest (parcours.profiles.v1): its metrics, and its CPU priority, lower than
    # the event path's so a profile sync never slows a transactional message.
    profile_ingest_metrics_port: int = 9107
    profile_ingest_nice: int = 10

    # Bounces and complaints (services/bounces): DSNs and ARF reports sent to the VERP
    # return paths arrive over SMTP here (locally the SMTP sink sends them; in production
    # the bounce domains' MX points at it). The host is where the sink reaches it and,
    # 0.0.0.0 in containers, where it listens.
    bounces_host: str = "127.0.0.1"
    bounces_smtp_port: int = 2530
    bounces_metrics_port: int = 9108
    # Signs the VERP return paths (shared/domain/verp.py), so a DSN to a forged one names
    # no message: the email senders and the bounce service share it.
    verp_secret: str = "dev-only-verp-change-me"
    # The return paths' domain when a tenant sets none of its own.
    bounce_domain: str = "bounces.parcours.localhost"

    # Tracking (services/tracking): HTML emails' links and open pixel point at
    # tracking_base_url. tracking_keys is "id:secret,id:secret": the first signs, all verify;
    # to rotate, put a new key first and drop the old one once its mails no longer matter.
    tracking_host: str = "127.0.0.1"
    tracking_port: int = 8002
    tracking_base_url: str = "http://127.0.0.1:8002"
    tracking_keys: SecretStr = SecretStr("k1:dev-only-tracking-secret")
    tracking_enabled: bool = True  # rewrite links and add the pixel in HTML emails
    # Unsubscribe links (/u/<token> on the tracking service, shared/domain/unsubscribe_links.py):
    # a key ring like tracking_keys ("id:secret,…", the first signs, all verify), its own.
    unsubscribe_keys: SecretStr = SecretStr("u1:dev-only-unsubscribe-secret")
    # The reactions service (services/reactions): reactions into traces and metrics.
    reactions_metrics_port: int = 9109
    # How often the reactions service reads every consumer group's lag (services/reactions/
    # lag.py); Prometheus scrapes every 5 s, alerts look at 10 minutes.
    consumer_lag_interval_s: float = 15.0
    # Outbound webhooks (services/webhooks): each call times out after webhooks_timeout_s;
    # at most webhooks_per_endpoint calls in flight per subscription, so a slow endpoint
    # holds only its own. Endpoints that are http:// or resolve to loopback or private
    # addresses are refused unless webhooks_allow_local_targets (development and tests).
    webhooks_metrics_port: int = 9110
    webhooks_timeout_s: float = 10.0
    webhooks_per_endpoint: int = 4
    webhooks_allow_local_targets: bool = False
    # The journey engine (services/journeys): its metrics, how often it looks for due
    # timers (P8: lateness p99 at most 1 s), and whether its HTTP actions may call
    # loopback or private addresses (refused unless allowed: development and tests).
    journeys_metrics_port: int = 9114
    journeys_timer_poll_s: float = 0.1
    journeys_allow_local_targets: bool = False
    # Whether a journey may be published with compressed time (POST …/publish {"speed"}):
    # the local stack's demo runs the seed journey's day in seconds. Never in production.
    journeys_compressed_time: bool = False
    # Retention (shared/domain/retention.py; purged by the reactions service every
    # retention_interval_s in batches, or `parcours maintenance purge`), in days; 0 (or
    # less) keeps for ever. The contact history is kept at least as long as the longest
    # fatigue or capacity period of the tenant's rules; relayed reactions at least as long
    # as tracked links (their deduplication); a tracked link older than its days is 404.
    retention_message_trace_days: int = 90
    retention_contact_history_days: int = 180
    retention_reactions_days: int = 180
    retention_tracked_messages_days: int = 180
    # Event statuses and the delivery ledger (weekly partitions, dropped whole; a tenant's
    # own in tenant_retention; floors 8 and 9 days: shared/domain/partitions.py).
    retention_event_status_days: int = 35
    retention_deliveries_days: int = 35
    retention_interval_s: float = 3600.0
    retention_batch: int = 2000

    # SMS and push providers are reached over HTTP; locally, the provider sink records
    # every request (services/provider_sink) so tests and the demo can read them back.
    provider_sink_port: int = 8026
    provider_sink_host: str = "127.0.0.1"  # the sink's bind address; 0.0.0.0 in containers
    sms_provider_url: str = "http://127.0.0.1:8026/sms"
    push_provider_url: str = "http://127.0.0.1:8026/push"
    provider_timeout_s: float = 10.0
    # Retries off the partition (shared/sending/retries.py): a message refused for now
    # (SMTP 4xx, HTTP 408/409/429/5xx, a timeout) waits in PostgreSQL (send_retries) and is
    # tried again after first_delay doubling up to max_delay, jittered, at most
    # max_attempts hand-overs in all (defaults: up to ~20 h), then ends deliveryFailed.
    send_retry_first_delay_s: float = 1.0
    send_retry_max_delay_s: float = 1800.0
    send_retry_max_attempts: int = 50
    send_retry_jitter: float = 0.5
    send_retry_poll_s: float = 0.5  # how often a sender looks for retries come due
    # Failover (shared/sending/failover.py): a second provider per channel takes over
    # while the first's circuit breaker is open (breaker_failures failures in a row open
    # it; a probe after breaker_open_s). Empty: no second provider. Locally a second
    # provider sink (provider_sink_secondary_port) and SMTP sink (smtp_secondary_*).
    sms_provider_secondary_url: str = "http://127.0.0.1:8028/sms"
    push_provider_secondary_url: str = "http://127.0.0.1:8028/push"
    provider_sink_secondary_port: int = 8028
    smtp_secondary_host: str = "127.0.0.1"
    smtp_secondary_port: int = 2527
    smtp_secondary_sink_http_port: int = 8029
    # Where ``parcours reconcile`` asks what providers were handed: "local", the local sinks
    # above (the stack and the tests); "none" in production, where a real SMTP relay cannot
    # be asked; or the sinks' base URLs, comma-separated.
    reconcile_sinks: str = "local"
    provider_breaker_failures: int = 5
    provider_breaker_open_s: float = 10.0
    # Bulk lanes for SMS and push (services/sender_sms_bulk, sender_push_bulk): their own
    # connections to the provider, fewer than the tx senders' (16).
    provider_bulk_connections: int = 4
    sender_sms_bulk_metrics_port: int = 9112
    sender_push_bulk_metrics_port: int = 9113
    # What providers and apps report back (services/gateway/webhook_routes.py). Providers
    # sign their webhooks with their secret ("provider:secret,…"; the provider sink is
    # "sink"); a signature older than the window, or seen before within it, is refused.
    provider_webhook_secrets: SecretStr = SecretStr("sink:dev-only-webhook-secret")
    webhook_window_s: float = 300.0
    # Where the provider sink posts its delivery receipts (empty: it posts none).
    provider_sink_receipts_url: str = "http://127.0.0.1:8000/v1/webhooks/sms/sink/status"
    # Signs the openToken each push carries, which the app sends to POST /v1/push/opened.
    push_open_secret: SecretStr = SecretStr("dev-only-push-open-secret")
    # The SMS sender id (alphanumeric or a number): the default, and per tenant.
    sms_sender_id: str = "Parcours"
    sms_sender_ids: dict[str, str] = {}
    # The answers to inbound STOP, HELP and START (carriers require the first two).
    sms_stop_reply: str = ("You are unsubscribed and will receive no more messages."
                           " Reply START to resubscribe.")
    sms_help_reply: str = "Reply STOP to unsubscribe. Msg&data rates may apply."
    sms_start_reply: str = "You are subscribed again. Reply STOP to unsubscribe."

    # pKeys are signed so that GET can tell "accepted, not yet seen by the processor"
    # (answer pending) from "never issued" (answer 404) without a write per request.
    pkey_secret: str = "dev-only-change-me"
    # Derives the secret of every kafka key (shared/domain/record_signing.py), with which
    # producers sign the records they write to Kafka's input topics. Only the processor
    # (verifies) and whoever creates keys (the CLI) need it. Changing it invalidates every
    # kafka key: create new ones for each producer.
    kafka_signing_secret: str = "dev-only-change-me-too"
    # Idempotency-Key: how long a key keeps its pKey (at least 24 h).
    idempotency_hours: float = 24.0
    # Event configurations are cached by the gateway and processor for this long.
    config_cache_ttl_s: float = 2.0
    # Control rules' httpsLinks check lets plain http: links through. For local development
    # only (a site served on http://localhost): never set it in production.
    allow_http_links: bool = False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
