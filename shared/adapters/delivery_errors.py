"""How a provider's refusal reaches the sender, whatever the protocol (SMTP, HTTP).

The sender ends a message in ``deliveryFailed`` on a ``PermanentFailure`` and retries
it with backoff on a ``TransientFailure``; each adapter decides which one an answer is.

``address_fault`` says whether the refusal is about the recipient's address (no such
mailbox, mailbox full, an invalid number or token), which feeds quarantine: a permanent
one is a hard failure, a transient one a soft failure. A refusal of our message (its
size, its content), of us (credentials, throttling) or a lost connection is not.
"""


class _DeliveryFailure(Exception):
    def __init__(self, message: str, *, address_fault: bool = False,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.address_fault = address_fault
        # How long the provider asked us to wait (HTTP Retry-After on 429 or 503): a
        # retry before then is refused again.
        self.retry_after_s = retry_after_s


class PermanentFailure(_DeliveryFailure):
    """The provider refused this message for good (bad address, invalid payload)."""


class TransientFailure(_DeliveryFailure):
    """The provider could not take the message now (overloaded, unreachable, timed out)."""
