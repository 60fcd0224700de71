"""Every store holding personal data is registered with the erasure registry in the
process that erases (the gateway), the profile row last."""

from pathlib import Path

from services.gateway import app  # noqa: F401  (imports every registering store)
from shared.adapters import erasure, personal_data


def test_the_gateway_erases_every_store_the_profile_last() -> None:
    names = [store.name for store in erasure.registered()]
    assert {"profile", "consent", "events", "contactHistory", "reactions",
            "trackedMessages"} <= set(names)
    assert names[-1] == "profile"  # the others find their data through it


def test_every_store_that_registers_with_erasure_is_in_personal_data() -> None:
    """A store that registers but is missing from personal_data would be erased by neither
    the profile API nor profile-ingest's tombstones."""
    adapters = Path(personal_data.__file__).parent
    registering = {path.stem for path in adapters.glob("*.py")
                   if "erasure.register(" in path.read_text()}
    assert registering, "no store registers with erasure: has the call changed its name?"
    listed = {module.__name__.rsplit(".", 1)[-1] for module in personal_data.STORES}
    assert registering <= listed, f"add {sorted(registering - listed)} to personal_data"
