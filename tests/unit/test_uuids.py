"""The UUID texts made without uuid.UUID objects are the uuid module's own."""

import hashlib
import uuid

import pytest

from shared.domain.uuids import uuid5_bytes, uuid5_text, uuid_text

NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")


@pytest.mark.parametrize("raw", [bytes(16), b"\xff" * 16, uuid.uuid4().bytes,
                                 bytes(range(16))])
def test_a_uuids_text_is_the_uuid_modules(raw):
    assert uuid_text(raw) == str(uuid.UUID(bytes=raw))


@pytest.mark.parametrize("name", ["", "t1/6f1c/clicked/0/human", "tenant-é/ü", "x" * 300])
def test_a_uuid5s_text_is_the_uuid_modules(name):
    digest = hashlib.sha1(NAMESPACE.bytes + name.encode()).digest()
    assert uuid5_text(digest) == str(uuid.uuid5(NAMESPACE, name))


@pytest.mark.parametrize("name", ["", "t1/6f1c/clicked/0/human", "tenant-é/ü", "x" * 300])
def test_a_uuid5s_bytes_are_the_uuid_modules(name):
    digest = hashlib.sha1(NAMESPACE.bytes + name.encode()).digest()
    assert uuid5_bytes(digest) == uuid.uuid5(NAMESPACE, name).bytes
