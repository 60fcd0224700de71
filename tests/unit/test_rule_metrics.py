from shared.outgoing.metrics import MAX_RULE_LABEL, rule_label


def test_rule_labels_are_a_bounded_set():
    assert [rule_label(i) for i in ("consent", "denylist", "quarantine", "r1", None)] == [
        "consent", "denylist", "quarantine", "r1", "none"]
    assert rule_label(f"r{MAX_RULE_LABEL}") == f"r{MAX_RULE_LABEL}"
    assert rule_label(f"r{MAX_RULE_LABEL + 1}") == "other"
    assert rule_label("Under 18") == "other" and rule_label("r0") == "other"
