"""Every store holding personal data is registered with the erasure registry in the
process that erases (the gateway), the profile row last."""

from services.gateway import app  # noqa: F401  (imports every registering store)
from shared.adapters import erasure


def test_the_gateway_erases_every_store_the_profile_last() -> None:
    names = [store.name for store in erasure.registered()]
    assert {"profile", "consent", "events", "contactHistory", "reactions",
            "trackedMessages"} <= set(names)
    assert names[-1] == "profile"  # the others find their data through it
