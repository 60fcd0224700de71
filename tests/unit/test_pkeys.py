import pytest

from shared.domain.pkeys import derive_pkey, mint_pkey, verify_pkey

SECRET = b"s3cret"
NONCE = bytes(range(12))


def test_a_minted_key_verifies() -> None:
    key = mint_pkey(SECRET, "t", "EVTa", NONCE)
    assert verify_pkey(SECRET, "t", "EVTa", key)
    assert key == key.lower() and len(key) == 32


@pytest.mark.parametrize(
    ("secret", "tenant", "event_id"), [(b"other", "t", "EVTa"), (SECRET, "u", "EVTa"),
                                       (SECRET, "t", "EVTb")],
)
def test_a_key_is_bound_to_secret_tenant_and_event(
    secret: bytes, tenant: str, event_id: str
) -> None:
    assert not verify_pkey(secret, tenant, event_id, mint_pkey(SECRET, "t", "EVTa", NONCE))


@pytest.mark.parametrize("forged", ["", "abc", "!!!!", "a" * 32, "a" * 200])
def test_forged_keys_do_not_verify(forged: str) -> None:
    assert not verify_pkey(SECRET, "t", "EVTa", forged)


def test_a_derived_key_is_stable_and_verifies() -> None:
    key = derive_pkey(SECRET, "t", "EVTa", "order-1")
    assert key == derive_pkey(SECRET, "t", "EVTa", "order-1")
    assert verify_pkey(SECRET, "t", "EVTa", key)
    assert key == key.lower() and len(key) == 32


@pytest.mark.parametrize(
    ("secret", "tenant", "event_id", "event_key"),
    [(b"other", "t", "EVTa", "order-1"), (SECRET, "u", "EVTa", "order-1"),
     (SECRET, "t", "EVTb", "order-1"), (SECRET, "t", "EVTa", "order-2"),
     (SECRET, "t\x00EVTa", "EVTa", "order-1")],
)
def test_a_derived_key_depends_on_secret_tenant_event_and_event_key(
    secret: bytes, tenant: str, event_id: str, event_key: str
) -> None:
    assert derive_pkey(secret, tenant, event_id, event_key) != derive_pkey(
        SECRET, "t", "EVTa", "order-1")
