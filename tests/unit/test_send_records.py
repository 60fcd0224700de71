"""Send records across versions: a field added later is ignored by a sender not yet
upgraded; an unreadable record still says whose event it is."""

import orjson

from shared.domain.routing import event_of_unreadable, read_send_record

V2 = {"v": 2, "messageId": "6f1b8f0e-3c1a-5a7e-9d7e-000000000001", "tenant": "t",
      "origin": {"kind": "event", "eventId": "EVTx", "pKey": "k1"}, "channel": "sms",
      "to": {"mobilePhone": "+33612345678"}, "ctx": {}, "acceptedAt": 1.0}


def test_a_field_added_later_is_ignored():
    request = read_send_record(orjson.dumps({**V2, "addedLater": {"x": 1}}))
    assert request.messageId == V2["messageId"] and not hasattr(request, "addedLater")


def test_an_unreadable_record_names_its_event_when_it_can():
    broken = {**V2, "channel": "pigeon"}
    assert event_of_unreadable(orjson.dumps(broken)) == ("t", "EVTx", "k1")
    v1 = {"messageId": "m", "pKey": "k2", "tenant": "t", "eventId": "EVTy", "channel": 3}
    assert event_of_unreadable(orjson.dumps(v1)) == ("t", "EVTy", "k2")
    assert event_of_unreadable(b"not json") is None
    assert event_of_unreadable(b"[1, 2]") is None
    assert event_of_unreadable(orjson.dumps({"tenant": "t", "origin": {"eventId": 1}})) is None
