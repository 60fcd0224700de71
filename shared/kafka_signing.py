"""For producers: sign the records you write to Parcours' Kafka input topics
(``parcours.events.kafka.v1``; later inputs the same way) with a ``kafka`` key of your
tenant (``parcours keys create --tenant T --scope kafka``)::

    signer = RecordSigner(os.environ["PARCOURS_KAFKA_KEY"])    # prc_kafka_<id>_<secret>
    value = json.dumps(event).encode()                           # the exact bytes you send
    await producer.send_and_wait("parcours.events.kafka.v1", value,
                                 key=event["email"].lower().encode(),
                                 headers=signer.headers(value))

In any language: header ``parcours-key-id`` = the key id (the 12 characters after
``prc_kafka_``), header ``parcours-signature`` = lowercase hex of HMAC-SHA256, keyed with
the secret (the 43 characters after ``prc_kafka_<key id>_``, as ASCII bytes), over the
record's value bytes exactly as produced (sign after serialising, never re-serialise).
"""

from __future__ import annotations

from shared.domain.api_keys import Scope, parse_key
from shared.domain.record_signing import KEY_ID_HEADER, SIGNATURE_HEADER, sign

__all__ = ["KEY_ID_HEADER", "SIGNATURE_HEADER", "RecordSigner"]


class RecordSigner:
    """Signs record values with one kafka key; holds the secret, never prints it."""

    __slots__ = ("_key_id_header", "_secret", "key_id")

    def __init__(self, credential: str) -> None:
        parsed = parse_key(credential.strip())
        if parsed is None or parsed.scope is not Scope.KAFKA:
            raise ValueError("not a kafka key: expected prc_kafka_<12 characters>_<43 "
                             "characters>, as `parcours keys create --scope kafka` prints")
        self.key_id = parsed.key_id
        self._secret = parsed.secret
        self._key_id_header = (KEY_ID_HEADER, parsed.key_id.encode())

    def headers(self, value: bytes) -> list[tuple[str, bytes]]:
        """The record headers for this value (aiokafka, confluent-kafka and kafka-python
        all take a list of (name, bytes))."""
        return [self._key_id_header, (SIGNATURE_HEADER, sign(self._secret, value).encode())]

    def __repr__(self) -> str:
        return f"RecordSigner(key_id={self.key_id!r})"
