"""deploy/: the Kubernetes manifests render and validate, the compose file is valid, the alert
rules pass promtool and their unit tests, and the dashboard's queries parse and name families
that /metrics really serves. kubectl (kustomize), promtool and docker-compose are system tools
(scripts/system-deps installs the last two; kubectl ships with the image)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from callagent.settings_check import unknown_variables
from control_plane.app import CONTROL_PLANE_KEY, METRICS_KEY, create_app
from control_plane.campaigns import worker
from control_plane.settings import Settings
from engine.conversation.config import AgentConfig

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
K8S_VERSION = "1.30"


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (scripts/system-deps installs it)"
    return path


def _run(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def render(path: Path) -> list[dict[str, Any]]:
    done = _run(_tool("kubectl"), "kustomize", str(path))
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _by_kind(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.fixture(scope="module")
def production() -> dict[tuple[str, str], dict[str, Any]]:
    return _by_kind(render(K8S / "overlays" / "production"))


class _Pool:
    """What the pool gauges read off asyncpg's pool (they appear on PostgreSQL only)."""

    def get_size(self) -> int:
        return 2

    def get_idle_size(self) -> int:
        return 1

    def get_max_size(self) -> int:
        return 10


@pytest.fixture(scope="module")
def scraped_families() -> set[str]:
    """Every family /metrics can serve (names as they appear in samples)."""
    app = create_app(Settings(_env_file=None))
    app[CONTROL_PLANE_KEY].metrics.watch_pool(_Pool)
    text = generate_latest(app[METRICS_KEY].registry).decode()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "info": ("_info",)}
    names = set()
    for family in text_string_to_metric_families(text):  # labelled families without children too
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
    return names


@pytest.mark.parametrize("path", ["base", "overlays/production", "prometheus-adapter"])
def test_every_rendered_resource_passes_the_kubernetes_schema(path):
    docs = render(K8S / path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_validation_catches_a_mistake():
    deployment = next(d for d in render(K8S / "base") if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = {"bad": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_the_overlay_sets_namespace_image_host_and_public_url(production):
    assert all(d["metadata"].get("namespace") == "callagent" for k, d in production.items() if k[0] != "Namespace")
    images = {c["image"] for k, d in production.items() if k[0] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]}
    assert images == {"registry.example.com/callagent:0.1.0"}
    ingress = production[("Ingress", "callagent")]
    assert ingress["spec"]["rules"][0]["host"] == "calls.example.org"
    assert production[("ConfigMap", "callagent")]["data"]["CALLAGENT_SERVER__PUBLIC_URL"] == "https://calls.example.org"


def _server(production):
    return production[("Deployment", "callagent")]["spec"]["template"]["spec"]


def test_probes_hit_the_apps_health_routes_and_the_drain_fits_the_grace_period(production):
    spec = _server(production)
    (container,) = spec["containers"]
    routes = {r.resource.canonical for r in create_app(Settings(_env_file=None)).router.routes() if r.resource}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in routes
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in routes
    assert container["startupProbe"]["httpGet"]["path"] in routes
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = production[("ConfigMap", "callagent")]["data"]
    assert ports["http"] == int(config["CALLAGENT_SERVER__PORT"])
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = float(config["CALLAGENT_SERVER__DRAIN_GRACE_S"])
    # preStop, then the drain, then a margin for the hand-over: all before the SIGKILL.
    assert spec["terminationGracePeriodSeconds"] >= float(pre_stop[1]) + drain + 10
    assert container["resources"]["requests"]["cpu"] == "500m" and "cpu" not in container["resources"]["limits"]


def test_services_budget_and_autoscaler_select_the_server_pods(production):
    labels = production[("Deployment", "callagent")]["spec"]["template"]["metadata"]["labels"]
    worker_labels = production[("Deployment", "callagent-campaign-worker")]["spec"]["template"]["metadata"]["labels"]
    for selector in (production[("Service", "callagent")]["spec"]["selector"],
                     production[("PodDisruptionBudget", "callagent")]["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()
        assert not selector.items() <= worker_labels.items()
    backend = production[("Ingress", "callagent")]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "callagent" and backend["port"]["name"] == "http"
    assert production[("HorizontalPodAutoscaler", "callagent")]["spec"]["scaleTargetRef"]["name"] == "callagent"


def test_ingress_timeouts_outlast_the_longest_default_call(production):
    notes = production[("Ingress", "callagent")]["metadata"]["annotations"]
    longest = AgentConfig().max_duration_s
    for name in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(notes[f"nginx.ingress.kubernetes.io/{name}"]) > longest


def test_the_autoscaler_reads_the_metric_the_adapter_serves_from_a_real_family(production, scraped_families):
    hpa = production[("HorizontalPodAutoscaler", "callagent")]["spec"]
    kinds = [m["type"] for m in hpa["metrics"]]
    assert kinds == ["Pods", "Resource"]  # calls first; CPU the fallback
    wanted = hpa["metrics"][0]["pods"]["metric"]["name"]
    (config,) = [d for d in render(K8S / "prometheus-adapter") if d["kind"] == "ConfigMap"]
    (rule,) = yaml.safe_load(config["data"]["config.yaml"])["rules"]
    assert rule["name"]["as"] == wanted
    series = re.match(r"([a-z_]+)\{", rule["seriesQuery"]).group(1)
    assert re.fullmatch(rule["name"]["matches"], series)
    assert series in scraped_families
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}


def test_configured_settings_are_known_and_valid(production, monkeypatch):
    config = dict(production[("ConfigMap", "callagent")]["data"])
    server_env = {e["name"]: e["value"] for e in _server(production)["containers"][0]["env"]}
    for env in (config | server_env,):
        assert unknown_variables(env) == []
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = Settings(_env_file=None)
        assert settings.log_format == "json" and settings.campaigns.dialer is False


def test_the_worker_deployment_runs_the_worker_module_with_its_metrics_port(production):
    spec = production[("Deployment", "callagent-campaign-worker")]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    python, flag, module, *args = container["command"]
    assert (python, flag, module) == ("python", "-m", "control_plane.campaigns.worker")
    assert module == worker.__name__
    parsed = worker.build_parser().parse_args(args)
    assert parsed.metrics_port == container["ports"][0]["containerPort"]
    served = {"/metrics", "/healthz", "/readyz"}  # worker.serve_probes (tests/control_plane/test_worker_readiness.py)
    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz" and probes["readinessProbe"]["path"] == "/readyz"
    assert {p["path"] for p in probes.values()} <= served
    assert {p["port"] for p in probes.values()} == {container["ports"][0]["name"]}


def _dialer_stop_grace_s() -> float:
    from control_plane.campaigns.dialer import Dialer

    settings = Settings(_env_file=None)
    return Dialer(create_app(settings)[CONTROL_PLANE_KEY]).stop_grace_s


def test_the_worker_grace_period_covers_the_dials_in_flight(production):
    """The worker waits ``Dialer.stop_grace_s`` for its dials in flight on SIGTERM (it waited 5 s while
    the manifest promised ``dial_timeout_s``): the kill must not come first."""
    spec = production[("Deployment", "callagent-campaign-worker")]["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] >= _dialer_stop_grace_s() + 5


# -- compose ------------------------------------------------------------------------------------

COMPOSE_ENV = {"CALLAGENT_ENCRYPTION_KEY": "k" * 44, "CALLAGENT_LOOKUP_HASH_KEY": "h" * 44, "PATH": "/usr/bin:/bin"}


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    return _run(_tool("docker-compose"), "-f", str(path), "config", cwd=path.parent, env=COMPOSE_ENV)


def test_the_compose_file_is_valid_and_has_the_whole_stack():
    done = compose_config(ROOT / "docker-compose.yml")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {"postgres", "redis", "callagent-1", "callagent-2", "campaign-worker", "proxy",
                             "prometheus", "grafana"}
    for name in ("callagent-1", "callagent-2"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://") and env["REDIS_URL"].startswith("redis://")
        assert unknown_variables(env) == []
    assert services["campaign-worker"]["entrypoint"][-1] == "control_plane.campaigns.worker"
    # Docker kills after 10 s by default: the servers' drain and the worker's dials in flight need longer.
    drain = Settings(_env_file=None).server.drain_grace_s
    for name in ("callagent-1", "callagent-2"):
        assert _seconds(services[name]["stop_grace_period"]) >= drain + 10
    assert _seconds(services["campaign-worker"]["stop_grace_period"]) >= _dialer_stop_grace_s() + 5
    # Each mounted config file exists in the repository.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith(("/", ".")):
                assert (ROOT / source).exists(), source


def _seconds(duration: str) -> float:
    """A compose duration ("45s", "1m30s") in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_validation_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: nginx\n    ports: 8080\n")
    assert compose_config(broken).returncode != 0
    missing = dict(COMPOSE_ENV)
    del missing["CALLAGENT_ENCRYPTION_KEY"]
    done = _run(_tool("docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "config", env=missing)
    assert done.returncode != 0 and "CALLAGENT_ENCRYPTION_KEY" in done.stderr


def test_the_proxy_passes_websocket_upgrades_to_both_replicas_without_cutting_calls():
    conf = (DEPLOY / "compose" / "nginx.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "proxy_set_header Connection $connection_upgrade;" in conf
    assert re.findall(r"server (callagent-\d):8080", conf) == ["callagent-1", "callagent-2"]
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", conf).group(1))
    assert read_timeout > AgentConfig().max_duration_s


def test_compose_prometheus_scrapes_every_callagent_process():
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {"callagent-1:8080", "callagent-2:8080", "campaign-worker:9100"}
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


def test_the_dockerfile_keeps_its_data_on_a_volume_and_has_zone_data():
    text = (ROOT / "Dockerfile").read_text()
    assert 'VOLUME ["/home/callagent/data"]' in text
    assert "CALLAGENT_DATA_DIR=/home/callagent/data" in text
    assert re.search(r"apt-get install [^\n]*tzdata", text)


# -- alerts and dashboard -------------------------------------------------------------------------

def test_alert_rules_pass_promtool_and_their_unit_tests():
    promtool = _tool("promtool")
    checked = _run(promtool, "check", "rules", "alerts.yml", cwd=DEPLOY / "prometheus")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _run(promtool, "test", "rules", "alerts_test.yml", cwd=DEPLOY / "prometheus")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    names = {r["alert"] for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
             for r in g["rules"]}
    assert {"CallagentTurnLatencyP95High", "CallagentWebhookLagHigh", "CallagentProviderErrorRateHigh"} <= names


def test_promtool_rejects_a_bad_rule(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: rate(foo[5m] > 1\n")
    assert _run(_tool("promtool"), "check", "rules", str(bad)).returncode != 0


def _families_in(expr: str) -> set[str]:
    words = set(re.findall(r"\b((?:callagent|process|python)_[a-z0-9_]+)\b", expr))
    return words


def test_alert_rules_name_only_families_the_service_exports(scraped_families):
    for group in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            assert _families_in(rule["expr"]) <= scraped_families, rule["alert"]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "callagent.json").read_text())


def _panels(dashboard):
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_dashboard_is_a_well_formed_grafana_dashboard(dashboard):
    assert dashboard["uid"] == "callagent" and isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not mine & cells, f"panel {panel['title']} overlaps another"
        cells |= mine
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert set(re.findall(r"\$([a-z_]+)", target["expr"])) <= variables | {"__rate_interval"}
    # The provisioned data source is the one the variable defaults to.
    source = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["uid"] == dashboard["templating"]["list"][0]["current"]["value"]
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "callagent.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_shows_what_an_operator_needs(dashboard):
    exprs = " ".join(t["expr"] for p in _panels(dashboard) for t in p["targets"])
    for family in ("callagent_turn_latency_seconds_bucket", "callagent_turn_stage_seconds_bucket",
                   "callagent_active_streams", "callagent_dial_errors_total",
                   "callagent_webhook_processing_lag_seconds_bucket", "callagent_provider_errors_total",
                   "callagent_late_outbound_frames_total"):
        assert family in exprs
    stage = [t["expr"] for p in _panels(dashboard) for t in p["targets"] if "callagent_turn_stage_seconds" in t["expr"]]
    assert {re.match(r"histogram_quantile\(([0-9.]+)", e).group(1) for e in stage} == {"0.5", "0.95", "0.99"}


def test_dashboard_queries_parse_and_name_exported_families(dashboard, scraped_families, tmp_path):
    rules = []
    for panel in _panels(dashboard):
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$instance", ".*")
            assert _families_in(expr) <= scraped_families, (panel["title"], _families_in(expr) - scraped_families)
            rules.append({"record": f"dashboard:panel{panel['id']}:{target['refId'].lower()}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = _run(_tool("promtool"), "check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
