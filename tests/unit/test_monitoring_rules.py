"""manifests/monitoring: the Prometheus rules (promtool), their PrometheusRule form and the
Alertmanager configuration (amtool), with the conventions that tie them to the recovery workflow."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows import alerts_binding, prometheusrule, recovery
from workflows.prometheusrule import duration_ms, load_rules, shortened

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "manifests" / "monitoring"
RULES = MONITORING / "prometheus-rules.yaml"
ALERTMANAGER = MONITORING / "alertmanager.yaml"
REMEDIABLE = {
    "SecurityVulnerabilityDetected",
    "PerformanceDegraded",
    "TargetDown",
    "HealthCheckFailing",
    "HighCPU",
    "HighMemory",
    "HighErrorRate",
}


def tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if not found:
        package = "prometheus-alertmanager" if name == "amtool" else "prometheus"
        raise RuntimeError(f"{name} not found: install Debian's {package} package")
    return found


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd)


def alerts(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def records(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["record"]: r for g in doc["groups"] for r in g["rules"] if "record" in r}


# --------------------------------------------------------------------------------------------- promtool


def test_promtool_checks_the_rules() -> None:
    done = run(tool("promtool"), "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 12 rules found" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    done = run(tool("promtool"), "test", "rules", "prometheus-rules.test.yaml", cwd=MONITORING)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_unit_tested_at_and_before_its_for() -> None:
    tests = yaml.safe_load((MONITORING / "prometheus-rules.test.yaml").read_text())
    cases = [c for t in tests["tests"] for c in t.get("alert_rule_test", ())]
    for name in alerts(load_rules()):
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in mine), f"{name}: no test where it fires"
        assert any(not c["exp_alerts"] for c in mine), f"{name}: no test where it is not (yet) firing"


def test_a_broken_unit_test_fails(tmp_path: Path) -> None:
    """promtool really checks `for`: firing a minute early is a failure."""
    shutil.copy(RULES, tmp_path / RULES.name)
    text = (MONITORING / "prometheus-rules.test.yaml").read_text()
    broken = text.replace(
        "      - eval_time: 6m\n        alertname: PerformanceDegraded",
        "      - eval_time: 5m\n        alertname: PerformanceDegraded",
    )
    assert broken != text
    (tmp_path / "t.yaml").write_text(broken)
    done = run(tool("promtool"), "test", "rules", "t.yaml", cwd=tmp_path)
    assert done.returncode != 0 and "PerformanceDegraded" in done.stdout + done.stderr


# --------------------------------------------------------------------------------------------- conventions


def test_the_issue_names_are_recorded_and_alerted() -> None:
    doc = load_rules()
    assert "research_platform_response_time_ms" in records(doc)
    assert {
        "research_platform_error_rate_ratio",
        "research_platform_cpu_utilisation_ratio",
        "research_platform_memory_utilisation_ratio",
    } <= set(records(doc))
    assert set(alerts(doc)) == REMEDIABLE | {"AutoScalingTriggered"}
    perf = alerts(doc)["PerformanceDegraded"]
    assert perf["expr"] == "research_platform_response_time_ms > 2000" and perf["for"] == "5m"
    assert alerts(doc)["AutoScalingTriggered"]["labels"] == {"severity": "info"}


def test_remediable_alerts_carry_the_labels_the_binding_reads() -> None:
    for name, rule in alerts(load_rules()).items():
        labels = rule["labels"]
        if name not in REMEDIABLE:
            assert "remediation" not in labels, name
            continue
        assert labels["remediation"] == recovery.NAME == alerts_binding.REMEDIATION, name
        assert labels["service"] and labels["region"] == "{{ $labels.region }}", name
        assert labels["severity"] in ("warning", "critical"), name


def test_thresholds_match_the_health_check_and_the_deployment() -> None:
    """An alert and the recovery's health check must agree on what is degraded or overloaded."""
    rules_file = ROOT / "steps" / "rpops" / "steps" / "health" / "health-rules.yaml"
    health = yaml.safe_load(rules_file.read_text())[
        "thresholds"
    ]
    doc = load_rules()
    a = alerts(doc)
    assert a["PerformanceDegraded"]["expr"].endswith(f"> {health['response_critical_ms']}")
    assert a["HighErrorRate"]["expr"].endswith(f"> {health['error_rate_degraded']}")
    assert a["HighCPU"]["expr"].endswith(f"> {health['cpu_critical_percent'] / 100}")
    assert a["HighMemory"]["expr"].endswith(f"> {health['memory_limit_critical_ratio']}")
    deployment = yaml.safe_load((ROOT / "manifests" / "platform" / "deployment.yaml").read_text())
    limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "1000m", "memory": "2Gi"}  # the denominators below
    r = records(doc)
    assert r["research_platform_cpu_utilisation_ratio"]["expr"].endswith("/ 100")
    assert r["research_platform_memory_utilisation_ratio"]["expr"].endswith("/ 2048")


# --------------------------------------------------------------------------------------------- derived forms


def test_prometheusrule_is_the_rules_file_in_operator_form() -> None:
    committed = yaml.safe_load(prometheusrule.PROMETHEUS_RULE.read_text())
    assert committed["kind"] == "PrometheusRule" and committed["apiVersion"] == "monitoring.coreos.com/v1"
    assert committed["spec"]["groups"] == load_rules()["groups"]
    assert prometheusrule.main(["--check"]) == 0


def test_prometheusrule_check_fails_on_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "prometheusrule.yaml"
    stale.write_text(prometheusrule.render().replace("> 2000", "> 3000"))
    assert prometheusrule.main(["--check", "--out", str(stale)]) == 1
    assert "> 3000" in capsys.readouterr().out
    assert prometheusrule.main(["--out", str(stale)]) == 0
    assert prometheusrule.main(["--check", "--out", str(stale)]) == 0


def test_the_test_copy_shortens_only_for(tmp_path: Path) -> None:
    original = load_rules()
    copy = shortened(original, "1s")
    assert original == load_rules()  # unchanged
    for name, rule in alerts(copy).items():
        before = alerts(original)[name]
        assert rule["for"] == ("1s" if duration_ms(before["for"]) > 1000 else before["for"])
        assert {k: v for k, v in rule.items() if k != "for"} == {
            k: v for k, v in before.items() if k != "for"
        }
    assert records(copy) == records(original)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(copy))
    assert run(tool("promtool"), "check", "rules", str(path)).returncode == 0


def test_durations() -> None:
    assert [duration_ms(t) for t in ("0s", "1s", "5m", "1h30m", "250ms", "1d")] == [
        0,
        1000,
        300_000,
        5_400_000,
        250,
        86_400_000,
    ]
    for bad in ("", "5", "m5", "1.5m"):
        with pytest.raises(ValueError):
            duration_ms(bad)


# --------------------------------------------------------------------------------------------- Alertmanager


def test_amtool_checks_the_configuration() -> None:
    done = run(tool("amtool"), "check-config", str(ALERTMANAGER))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_end_to_end_copy_is_valid_too(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from fixtures import alertmanager_config

    path = tmp_path / "am.yml"
    path.write_text(
        yaml.safe_dump(
            alertmanager_config("http://127.0.0.1:1/api/v1/events/argo/alertmanager", tmp_path / "token")
        )
    )
    done = run(tool("amtool"), "check-config", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["alertname=HighCPU", "remediation=research-platform-recovery"], "argo-remediation,platform-team"),
        (["alertname=AutoScalingTriggered", "severity=info"], "platform-team"),
        (["alertname=HighCPU", "remediation=something-else"], "platform-team"),
    ],
)
def test_routing(labels: list[str], receivers: str) -> None:
    done = run(tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == receivers


def test_remediation_receiver_settings() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    route = next(r for r in config["route"]["routes"] if r["receiver"] == "argo-remediation")
    assert route["matchers"] == [f'remediation="{recovery.NAME}"']
    assert route["group_by"] == ["alertname", "service", "region"]
    assert duration_ms(route["repeat_interval"]) >= 24 * 3600 * 1000
    receiver = next(r for r in config["receivers"] if r["name"] == "argo-remediation")
    (hook,) = receiver["webhook_configs"]
    assert hook["url"].endswith(f"/api/v1/events/argo/{alerts_binding.DISCRIMINATOR}")
    assert hook["send_resolved"] is False
    auth = hook["http_config"]["authorization"]
    assert auth["type"] == "Bearer" and auth["credentials_file"].startswith("/")
    assert "credentials" not in auth  # never the token itself in the file
