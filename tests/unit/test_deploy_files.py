"""The deployment files (compose, Prometheus, Grafana, Kubernetes) agree with the code.

No Docker engine or cluster runs these files in CI, so this is what keeps them honest: every
file parses, every service module exists, every metric a dashboard or alert queries is one
the code exports (under the name prometheus_client gives it, with the labels and label
values it uses), and every port is the settings' default.
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "parcours.json"
K8S = ROOT / "deploy" / "k8s"
YAML_FILES = [
    COMPOSE,
    *sorted(PROMETHEUS.glob("*.yml")),
    *sorted((GRAFANA / "provisioning").rglob("*.yml")),
    *sorted(K8S.glob("*.yaml")),
]
INIT_MODULES = ("shared.adapters.postgres", "shared.adapters.kafka")
# Every port each service listens on (settings fields), by module, then the one Prometheus
# scrapes. The scrape job, compose service and Kubernetes Deployment are named after the
# module, with dashes.
SERVICE_PORTS = {
    "gateway": ("gateway_port",),
    "admin": ("admin_port",),
    "processor": ("processor_metrics_port",),
    "sender_email": ("sender_email_metrics_port",),
    "sender_email_bulk": ("sender_email_bulk_metrics_port",),
    "sender_sms": ("sender_sms_metrics_port",),
    "sender_push": ("sender_push_metrics_port",),
    "sender_sms_bulk": ("sender_sms_bulk_metrics_port",),
    "sender_push_bulk": ("sender_push_bulk_metrics_port",),
    "profile_ingest": ("profile_ingest_metrics_port",),
    "smtp_sink": ("smtp_port", "smtp_sink_http_port"),
    "provider_sink": ("provider_sink_port",),
    "bounces": ("bounces_smtp_port", "bounces_metrics_port"),
    "tracking": ("tracking_port",),
    "console": ("console_port",),
    "reactions": ("reactions_metrics_port",),
    "journeys": ("journeys_metrics_port",),
    "webhooks": ("webhooks_metrics_port",),
}
METRICS_PORT = {
    "gateway": "gateway_port",
    "admin": "admin_port",
    "processor": "processor_metrics_port",
    "sender_email": "sender_email_metrics_port",
    "sender_email_bulk": "sender_email_bulk_metrics_port",
    "sender_sms": "sender_sms_metrics_port",
    "sender_push": "sender_push_metrics_port",
    "sender_sms_bulk": "sender_sms_bulk_metrics_port",
    "sender_push_bulk": "sender_push_bulk_metrics_port",
    "profile_ingest": "profile_ingest_metrics_port",
    "smtp_sink": "smtp_sink_http_port",
    "provider_sink": "provider_sink_port",
    "bounces": "bounces_metrics_port",
    "tracking": "tracking_port",
    "console": "console_port",
    "reactions": "reactions_metrics_port",
    "journeys": "journeys_metrics_port",
    "webhooks": "webhooks_metrics_port",
}
GENERIC_LABELS = {"job", "instance"}
METRIC_KINDS = {"Counter", "Histogram", "Gauge", "Summary"}


def default(field: str) -> Any:
    return Settings.model_fields[field].default


def job(module: str) -> str:
    return module.replace("_", "-")


def module_of(command: list[str]) -> str | None:
    if "-m" in command:
        return command[command.index("-m") + 1]
    return None


# Packages under services/ that are tools, not long-running deployables.
NOT_DEPLOYED = frozenset({"cli"})


@cache
def service_modules() -> frozenset[str]:
    found = frozenset(p.parent.name for p in (ROOT / "services").glob("*/__init__.py"))
    return found - NOT_DEPLOYED


# Where the services' code lives: their own packages, and what they share (e.g. the
# sender metrics in shared/sending/metrics.py, labelled by channel).
CODE_DIRS = ("services", "shared")


@cache
def code_paths() -> tuple[Path, ...]:
    return tuple(p for d in CODE_DIRS for p in sorted((ROOT / d).rglob("*.py")))


@cache
def code_source() -> str:
    return "\n".join(p.read_text() for p in code_paths())


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def project_services() -> dict[str, str]:
    """Compose service name → the module it runs, for services running ``services.*``."""
    found = {}
    for name, service in compose()["services"].items():
        module = module_of(service.get("command", []))
        if module and module.startswith("services."):
            found[name] = module.removeprefix("services.")
    return found


@cache
def k8s_documents() -> tuple[dict[str, Any], ...]:
    return tuple(
        doc for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text()) if doc
    )


def k8s(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == kind}


def k8s_pods() -> list[dict[str, Any]]:
    return [d["spec"]["template"]["spec"] for d in k8s_documents()
            if d["kind"] in ("Deployment", "Job")]


# --- metrics, as the code defines them and prometheus_client exposes them ----------------

@cache
def defined_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Metric name → (kind, label names), from the constructor calls in the code."""
    metrics = {}
    for path in code_paths():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            kind = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            name = node.args[0]
            if kind not in METRIC_KINDS or not isinstance(name, ast.Constant):
                continue
            labels = node.args[2] if len(node.args) > 2 else next(
                (k.value for k in node.keywords if k.arg == "labelnames"), None)
            names = tuple(ast.literal_eval(labels)) if labels is not None else ()
            assert name.value not in metrics, f"{name.value} defined twice"
            metrics[name.value] = (kind, names)
    return metrics


def exposed_series(name: str, kind: str) -> set[str]:
    """The series names a query can use (``_created`` aside, which we never query)."""
    if kind == "Counter":  # prometheus_client appends _total, whether given or not
        return {name.removesuffix("_total") + "_total"}
    if kind == "Histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    if kind == "Summary":
        return {name, f"{name}_sum", f"{name}_count"}
    return {name}


@cache
def series_labels() -> dict[str, set[str]]:
    """Every queryable series name → the labels it carries."""
    series = {}
    for name, (kind, labels) in defined_metrics().items():
        for exposed in exposed_series(name, kind):
            extra = {"le"} if exposed.endswith("_bucket") else set()
            series[exposed] = {*labels, *extra, *GENERIC_LABELS}
    return series


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict[str, Any]]:
    panels = dashboard()["panels"]
    return [*panels, *(inner for p in panels for inner in p.get("panels", []))]


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every dashboard target and alert rule."""
    found = [(f"panel {p['title']!r}", t["expr"])
             for p in dashboard_panels() for t in p.get("targets", [])]
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    found += [(f"alert {r['alert']}", r["expr"]) for g in rules["groups"] for r in g["rules"]]
    return found


def scrape_jobs(config: str) -> dict[str, dict[str, Any]]:
    parsed = yaml.safe_load((PROMETHEUS / config).read_text())
    return {j["job_name"]: j for j in parsed["scrape_configs"]}


# --- every file parses --------------------------------------------------------------------

@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_file_parses(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert documents and all(isinstance(d, dict) for d in documents)


def test_dashboard_is_json_with_unique_panel_ids() -> None:
    ids = [p["id"] for p in dashboard_panels()]
    assert dashboard()["uid"] and len(ids) == len(set(ids))


# --- metric names -------------------------------------------------------------------------

def test_exposed_names_follow_prometheus_client() -> None:
    registry = CollectorRegistry()
    Counter("t_events_total", "with the suffix", ["reason"], registry=registry).labels("x").inc()
    Counter("t_plain", "without it", registry=registry).inc()
    Histogram("t_seconds", "a histogram", registry=registry).observe(0.1)
    Gauge("t_depth", "a gauge", registry=registry).set(1)
    text = generate_latest(registry).decode()
    exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
               if line and not line.startswith("#") and "_created" not in line}
    assert exposed == set().union(
        exposed_series("t_events_total", "Counter"), exposed_series("t_plain", "Counter"),
        exposed_series("t_seconds", "Histogram"), exposed_series("t_depth", "Gauge"))


def test_code_defines_the_metrics_deployment_relies_on() -> None:
    assert {"parcours_gateway_events_rejected_total",
            "parcours_sender_accepted_to_provider_seconds",
            "parcours_smtp_sink_received_total"} <= defined_metrics().keys()
    assert defined_metrics()["parcours_sender_sent_total"] == ("Counter",
                                                                ("channel", "priority"))


@pytest.mark.parametrize("where,expr", queries())
def test_queried_metrics_and_labels_exist(where: str, expr: str) -> None:
    names = set(re.findall(r"\bparcours_\w+", expr))
    assert names or re.search(r"\bup\{", expr), f"{where} queries no Parcours metric"
    unknown = names - series_labels().keys()
    assert not unknown, f"{where} queries {unknown}, which the code does not export"
    for name, matchers in re.findall(r"\b(parcours_\w+)\{([^}]*)\}", expr):
        for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers):
            assert label in series_labels()[name], f"{where}: {name} has no label {label!r}"
            if op == "=":  # a literal value: the code must produce it somewhere
                assert f'"{value}"' in code_source(), f"{where}: {value!r} never set"
    available = set().union(*(series_labels()[n] for n in names)) if names else GENERIC_LABELS
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        labels = {label.strip() for label in group.split(",")}
        assert labels <= available, f"{where} groups by {labels - available}"


@pytest.mark.parametrize("where,expr", queries())
def test_up_selectors_name_scrape_jobs(where: str, expr: str) -> None:
    jobs = scrape_jobs("prometheus.yml").keys()
    for alternatives in re.findall(r'\bup\{job=~"([^"]+)"\}', expr):
        assert set(alternatives.split("|")) <= jobs, where


def test_histograms_are_queried_as_quantiles_of_bucket_rates() -> None:
    for where, expr in queries():
        for name in re.findall(r"\bparcours_\w+_bucket\b", expr):
            rate = re.search(rf"rate\({name}(\{{[^}}]*\}})?\[", expr)  # matchers allowed
            assert "histogram_quantile(" in expr and rate, where


# --- Prometheus ---------------------------------------------------------------------------

@pytest.mark.parametrize("config,host", [("prometheus.yml", None),
                                         ("prometheus.local.yml", "127.0.0.1")])
def test_one_scrape_job_per_service_on_its_default_port(config: str, host: str | None) -> None:
    jobs = scrape_jobs(config)
    assert jobs.keys() == {job(m) for m in service_modules()}
    for module in service_modules():
        scrape = jobs[job(module)]
        [static] = scrape["static_configs"]
        [target] = static["targets"]
        assert target == f"{host or job(module)}:{default(METRICS_PORT[module])}"
        assert scrape.get("metrics_path", "/metrics") == "/metrics"


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.local.yml"])
def test_rule_files_exist(config: str) -> None:
    rule_files = yaml.safe_load((PROMETHEUS / config).read_text())["rule_files"]
    assert rule_files and all((PROMETHEUS / f).is_file() for f in rule_files)


def test_docker_scrape_targets_are_compose_services() -> None:
    for name, module in project_services().items():
        assert name == job(module)


# --- docker-compose -----------------------------------------------------------------------

def test_compose_runs_every_service_module_once() -> None:
    modules = list(project_services().values())
    assert sorted(modules) == sorted(service_modules())


def test_compose_services_share_one_image_built_here() -> None:
    services = compose()["services"]
    ours = [services[name] for name in [*project_services(), "init"]]
    assert {s["image"] for s in ours} == {"parcours:local"}
    assert all(s["build"] == "." for s in ours)


def test_compose_init_applies_migrations_then_creates_topics() -> None:
    command = " ".join(compose()["services"]["init"]["command"])
    positions = [command.index(f"python -m {module}") for module in INIT_MODULES]
    assert positions == sorted(positions)
    for module in INIT_MODULES:
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
    for name in project_services():
        if name not in ("smtp-sink", "provider-sink"):  # the sinks need no tables or topics
            condition = compose()["services"][name]["depends_on"]["init"]["condition"]
            assert condition == "service_completed_successfully"


def test_compose_publishes_ports_on_loopback_only() -> None:
    for name, service in compose()["services"].items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), f"{name} publishes {mapping}"


def test_compose_service_ports_are_the_settings_defaults() -> None:
    for name, module in project_services().items():
        service = compose()["services"][name]
        ports = {default(field) for field in SERVICE_PORTS[module]}
        published = {int(str(m).rsplit(":", 1)[1]) for m in service.get("ports", [])}
        assert published <= ports, name
        probed = re.findall(r"127\.0\.0\.1:(\d+)", " ".join(service["healthcheck"]["test"]))
        assert probed and {int(p) for p in probed} <= ports, name


def test_compose_dependencies_and_healthchecks() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if name != "init":
            assert "healthcheck" in service, f"{name} has no healthcheck"
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency]


def test_compose_kafka_is_kraft_without_auto_topic_creation() -> None:
    kafka = compose()["services"]["kafka"]
    env = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:4.1.")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    factors = {k: v for k, v in env.items() if k.endswith(("REPLICATION_FACTOR", "MIN_ISR"))}
    assert len(factors) >= 5 and set(factors.values()) == {1}
    bootstrap = compose()["services"]["init"]["environment"]["PARCOURS_KAFKA_BOOTSTRAP"]
    assert f"PLAINTEXT://{bootstrap}" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")


def test_postgres_logs_errors_tersely_everywhere() -> None:
    # At the default verbosity an error's DETAIL/CONTEXT lines quote the statement's
    # values (an address, a JSON document) into PostgreSQL's log (README, Security).
    assert "log_error_verbosity=terse" in compose()["services"]["postgres"]["command"]
    assert "log_error_verbosity=terse" in (ROOT / "deploy" / "local" / "stack.py").read_text()
    assert "log_error_verbosity = terse" in (K8S / "README.md").read_text()


def test_compose_mounts_exist_and_grafana_finds_them() -> None:
    services = compose()["services"]
    targets = {}
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source, target, *_ = volume.split(":")
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
                targets[source] = target
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/parcours.yml").read_text())
    [provider] = providers["providers"]
    assert provider["options"]["path"] == targets["./deploy/grafana/dashboards"]
    assert targets["./deploy/prometheus/alerts.yml"].rsplit("/", 1)[0] == targets[
        "./deploy/prometheus/prometheus.yml"].rsplit("/", 1)[0]


# --- Grafana ------------------------------------------------------------------------------

def test_dashboard_uses_the_provisioned_datasource() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    [datasource] = config["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in compose()["services"]["prometheus"]["ports"]
    for panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        uids = {panel["datasource"]["uid"], *(t["datasource"]["uid"] for t in panel["targets"])}
        assert uids == {datasource["uid"]}, panel["title"]


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard_panels():
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} covers {cells[x, y]!r}"
                cells[x, y] = panel["title"]


def test_the_journeys_row_shows_the_engine_and_alerts_watch_it() -> None:
    panels = dashboard()["panels"]
    start = next(i for i, p in enumerate(panels) if p["type"] == "row"
                 and p["title"] == "Journeys")
    row = [p for p in panels[start + 1:] if p["type"] != "row"]
    assert panels[start + 1:] == row, "the Journeys row is the last"
    queried = " ".join(t["expr"] for p in row for t in p["targets"])
    for grouped in ("sum by (kind) (rate(parcours_journey_steps_total[",
                    "sum by (kind, outcome) (rate(parcours_journey_inputs_total[",
                    "sum by (kind, outcome) (rate(parcours_journey_effects_total[",
                    "sum by (journey) (rate(parcours_journey_entered_total["):
        assert grouped in queried
    for quantile in ("0.5", "0.99"):
        assert (f"histogram_quantile({quantile}, sum by (le) (rate("
                "parcours_journey_timer_lateness_seconds_bucket[") in queried
    assert "journeys" in panels[0]["targets"][0]["expr"]  # Services up
    rules = {r["alert"]: r for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
             ["groups"] for r in g["rules"]}
    assert rules["ParcoursJourneysDown"]["expr"] == 'up{job="journeys"} == 0'
    late = rules["ParcoursJourneyTimersLate"]
    assert "histogram_quantile(0.99" in late["expr"]
    assert "parcours_journey_timer_lateness_seconds_bucket[5m]" in late["expr"]
    assert late["expr"].strip().endswith("> 1") and late["for"] == "5m"


# --- settings named in the environment ----------------------------------------------------

def known_settings() -> set[str]:
    """Settings fields, and the few variables the code reads directly (the log level)."""
    fields = {f"PARCOURS_{name.upper()}" for name in Settings.model_fields}
    read_directly = set(re.findall(r'"(PARCOURS_[A-Z_]+)"', code_source()))
    return fields | read_directly


def environment_names() -> set[str]:
    names = {k for s in compose()["services"].values() for k in s.get("environment", {})}
    for doc in k8s_documents():
        names |= {*doc.get("data", {}), *doc.get("stringData", {})}
    for pod in k8s_pods():
        names |= {e["name"] for c in pod["containers"] for e in c.get("env", [])}
    return {n for n in names if n.startswith("PARCOURS_")}


def test_environment_names_are_settings() -> None:
    unknown = environment_names() - known_settings()
    assert not unknown, f"{unknown} would be ignored: no such setting"


# --- Kubernetes ---------------------------------------------------------------------------

def test_k8s_objects_live_in_the_parcours_namespace() -> None:
    for doc in k8s_documents():
        assert doc["apiVersion"] and doc["metadata"]["name"]
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "parcours", doc["metadata"]["name"]
    assert "parcours" in k8s("Namespace")


def test_k8s_deployment_per_service_with_probes_limits_and_service() -> None:
    deployments, services = k8s("Deployment"), k8s("Service")
    assert deployments.keys() == {job(m) for m in service_modules()} == services.keys()
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod["metadata"]["labels"].items(), name
        [container] = pod["spec"]["containers"]
        module = module_of(container["command"]).removeprefix("services.")
        assert job(module) == name
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert set(ports.values()) == {default(f) for f in SERVICE_PORTS[module]}, name
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["port"] in ports, f"{name} {probe}"
        assert container["resources"]["limits"]["memory"] in ("256Mi", "512Mi"), name
        service = services[name]
        assert service["spec"]["selector"] == selector, name
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports.keys()


def test_k8s_pods_use_one_image_and_existing_config() -> None:
    config_maps, secrets = k8s("ConfigMap").keys(), k8s("Secret").keys()
    images = {c["image"] for pod in k8s_pods() for c in pod["containers"]}
    assert len(images) == 1
    for pod in k8s_pods():
        for source in (s for c in pod["containers"] for s in c.get("envFrom", [])):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps
            else:
                assert source["secretRef"]["name"] in secrets


def test_k8s_job_applies_migrations_then_creates_topics() -> None:
    [job_spec] = k8s("Job").values()
    [container] = job_spec["spec"]["template"]["spec"]["containers"]
    command = " ".join(container["command"])
    positions = [command.index(f"python -m {module}") for module in INIT_MODULES]
    assert positions == sorted(positions)
