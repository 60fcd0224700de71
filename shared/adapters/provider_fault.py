"""A transient failure that blames the provider (or relay), not the message: its circuit
breaker counts it (shared/sending/failover.py). A lost connection, a timeout, an HTTP
5xx, 408 or 429, an SMTP 421 or a refused login are; a mailbox that is busy or full
(an SMTP 4xx about one recipient) or an idempotency conflict (409) is not: the provider
is working, and another would not deliver that message sooner."""

from shared.adapters.delivery_errors import TransientFailure


class ProviderFault(TransientFailure):
    pass
