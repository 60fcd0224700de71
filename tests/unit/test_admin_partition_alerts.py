"""The partition manager's gauges are watched by alert rules (deploy/prometheus/alerts.yml;
promtool's own cases in alerts_test.yml: ``promtool test rules
deploy/prometheus/alerts_test.yml``). Here, without promtool: the rules name the metrics
services/reactions/retention.py exports, by table, with their thresholds and delays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from services.reactions import retention
from shared.domain.partitions import AHEAD_WEEKS

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def rules() -> dict[str, dict[str, Any]]:
    parsed = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return {r["alert"]: r for g in parsed["groups"] for r in g["rules"]}


def test_rows_in_a_default_partition_alert_by_table() -> None:
    rule = rules()["ParcoursPartitionDefaultRows"]
    name = retention.DEFAULT_ROWS._name
    assert rule["expr"] == f"max by (table) ({name}) > 0"
    assert rule["for"] == "5m" and rule["labels"]["severity"] == "warning"
    assert "{{ $labels.table }}" in rule["annotations"]["summary"]


def test_fewer_weeks_ahead_than_the_manager_makes_alerts_after_two_missed_runs() -> None:
    rule = rules()["ParcoursPartitionsNotAhead"]
    name = retention.WEEKS_AHEAD._name
    assert rule["expr"] == f"min by (table) ({name}) < 2"
    assert AHEAD_WEEKS == 2  # what the manager makes: the threshold follows it
    assert rule["for"] == "2h" and rule["labels"]["severity"] == "warning"


def test_promtool_cases_cover_both_rules() -> None:
    cases = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
    tested = {t["alertname"] for case in cases["tests"] for t in case["alert_rule_test"]}
    assert {"ParcoursPartitionDefaultRows", "ParcoursPartitionsNotAhead"} <= tested
