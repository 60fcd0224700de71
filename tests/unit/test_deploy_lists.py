"""Every deployable service is in every list an operator relies on: docker-compose.yml,
a Kubernetes Deployment (deploy/k8s/), both Prometheus scrape configs, an ``up == 0``
alert rule, the dashboard's "Services up" panel, and the local stack (deploy/local/stack.py).

A deployable service is a package under services/ with a ``__main__.py``, except
``services/cli``: the ``parcours`` command, run by hand or by a cron job, never a
long-running process to scrape. The SMTP and provider sinks are deployable: they stand in
for the real relay and providers in compose and a test cluster, so they are listed like
the rest; their alert (``ParcoursSinkDown``) is only a warning.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NOT_DEPLOYED = {"cli": "a command-line tool, not a long-running process"}
UP_SELECTOR = re.compile(r'\bup\{job(=~|=)"([^"]+)"\}')


def deployable() -> list[str]:
    found = sorted(p.parent.name for p in (ROOT / "services").glob("*/__main__.py"))
    return [name for name in found if name not in NOT_DEPLOYED]


def job(package: str) -> str:
    return package.replace("_", "-")


def modules_run(commands: list[Any]) -> set[str]:
    """The services.* modules some commands run with ``python -m``."""
    text = " ".join(" ".join(c) if isinstance(c, list) else str(c) for c in commands if c)
    return set(re.findall(r"-m\s+services\.(\w+)", text))


def compose_modules() -> set[str]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return modules_run([s.get("command") for s in services.values()])


def k8s_modules() -> set[str]:
    commands = []
    for path in sorted((ROOT / "deploy/k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Deployment":
                commands += [c.get("command") for c in doc["spec"]["template"]["spec"]
                             ["containers"]]
    return modules_run(commands)


def scrape_jobs(config: str) -> set[str]:
    parsed = yaml.safe_load((ROOT / "deploy/prometheus" / config).read_text())
    return {j["job_name"] for j in parsed["scrape_configs"]}


def jobs_watched_by(exprs: list[str], comparison: str) -> set[str]:
    """Jobs an ``up{job=…}`` selector names (``=`` or ``=~`` with alternatives), in
    expressions that carry ``comparison`` right after the selector ("" for any)."""
    jobs = set()
    for expr in exprs:
        for match in UP_SELECTOR.finditer(expr):
            if expr[match.end():].strip().startswith(comparison):
                jobs |= set(match.group(2).split("|"))
    return jobs


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def dashboard_exprs() -> list[str]:
    panels = json.loads((ROOT / "deploy/grafana/dashboards/parcours.json").read_text())[
        "panels"]
    panels = [*panels, *(inner for p in panels for inner in p.get("panels", []))]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def test_the_deployable_services_are_found_and_cli_is_the_only_exception() -> None:
    services = deployable()
    assert len(services) >= 17
    assert {"gateway", "processor", "reactions", "smtp_sink", "provider_sink"} <= set(services)
    assert (ROOT / "services/cli/__main__.py").is_file() and "cli" not in services
    packages = {p.parent.name for p in (ROOT / "services").glob("*/__init__.py")}
    assert packages - set(services) == set(NOT_DEPLOYED), "a package without __main__.py?"


@pytest.mark.parametrize("service", deployable())
def test_docker_compose_runs_it(service: str) -> None:
    assert service in compose_modules()


@pytest.mark.parametrize("service", deployable())
def test_a_kubernetes_deployment_runs_it(service: str) -> None:
    assert service in k8s_modules()


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.local.yml"])
@pytest.mark.parametrize("service", deployable())
def test_prometheus_scrapes_it(service: str, config: str) -> None:
    assert job(service) in scrape_jobs(config)


@pytest.mark.parametrize("service", deployable())
def test_an_alert_fires_when_it_is_down(service: str) -> None:
    assert job(service) in jobs_watched_by(alert_exprs(), "== 0")


@pytest.mark.parametrize("service", deployable())
def test_the_dashboard_shows_whether_it_is_up(service: str) -> None:
    assert job(service) in jobs_watched_by(dashboard_exprs(), "")


@pytest.mark.parametrize("service", deployable())
def test_the_local_stack_runs_it(service: str) -> None:
    assert f'"services.{service}"' in (ROOT / "deploy/local/stack.py").read_text()


def test_no_list_names_a_service_that_does_not_exist() -> None:
    jobs = {job(s) for s in deployable()}
    assert compose_modules() <= set(deployable())
    assert k8s_modules() <= set(deployable())
    for config in ("prometheus.yml", "prometheus.local.yml"):
        assert scrape_jobs(config) <= jobs
    assert jobs_watched_by(alert_exprs(), "") <= jobs
    assert jobs_watched_by(dashboard_exprs(), "") <= jobs
