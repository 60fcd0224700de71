"""How a provider's refusal reaches the sender, whatever the protocol (SMTP, HTTP).

The sender ends a message in ``deliveryFailed`` on a ``PermanentFailure`` and retries
it with backoff on a ``TransientFailure``; each adapter decides which one an answer is.
"""


class PermanentFailure(Exception):
    """The provider refused this message for good (bad address, invalid payload)."""


class TransientFailure(Exception):
    """The provider could not take the message now (overloaded, unreachable, timed out)."""
