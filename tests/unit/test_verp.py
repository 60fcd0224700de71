import uuid

from shared.domain.verp import message_of, return_path

SECRET = b"s" * 32


def test_a_return_path_names_its_message_and_a_forged_one_nothing():
    message = str(uuid.uuid4())
    address = return_path(SECRET, message, "bounces.example")
    assert address.startswith("b+") and address.endswith("@bounces.example")
    assert message_of(SECRET, address) == message
    assert message_of(SECRET, f"<{address.upper()}>") == message  # any case, bracketed
    assert message_of(b"other" * 8, address) is None
    forged = address.replace(address[2], "0" if address[2] != "0" else "1", 1)
    assert message_of(SECRET, forged) is None
    assert message_of(SECRET, "someone@example.com") is None
