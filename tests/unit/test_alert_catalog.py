"""One source for the alert loop: the Prometheus rules and the health check's thresholds are
generated from rpops.alerting.catalog, and a check fails when a committed file drifts from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rpops.alerting import catalog
from rpops.steps.health.decide import STATUSES
from rpops.steps.health.rulefile import load_rules

from workflows import alertrules, recovery


def test_the_committed_files_are_what_the_catalog_generates() -> None:
    assert alertrules.main(["--check"]) == 0


def test_the_check_fails_when_a_threshold_drifts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rules, health = tmp_path / "rules.yaml", tmp_path / "health.yaml"
    rules.write_text(alertrules.RULES.read_text().replace("> 0.9", "> 0.85"))
    health.write_text(alertrules.HEALTH_RULES.read_text())
    monkeypatch.setattr(alertrules, "RULES", rules)
    monkeypatch.setattr(alertrules, "HEALTH_RULES", health)
    assert alertrules.main(["--check"]) == 1
    assert "> 0.85" in capsys.readouterr().out
    health.write_text(health.read_text().replace("cpu_critical_percent: 90", "cpu_critical_percent: 85"))
    assert alertrules.main([]) == 0  # regenerates both
    assert alertrules.main(["--check"]) == 0
    assert "cpu_critical_percent: 90" in health.read_text()


def test_the_health_check_runs_on_the_catalogs_thresholds() -> None:
    assert dict(load_rules(None).thresholds) == catalog.THRESHOLDS


def test_each_alert_reads_as_the_status_the_recovery_remediates() -> None:
    alerts = {
        r["alert"]: r
        for g in yaml.safe_load(alertrules.RULES.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert set(alerts) == {a.name for a in catalog.ALERTS}
    for a in catalog.ALERTS:
        assert alerts[a.name]["expr"] == a.expr
        if a.status is None:
            assert "remediation" not in alerts[a.name]["labels"]
            continue
        assert a.status in STATUSES and a.status != "healthy"
        assert alerts[a.name]["labels"]["remediation"] == recovery.NAME
    # The alerts the scale step reads name a resource of the scaling policy, in its units.
    cpu = catalog.alert("HighCPU")
    assert cpu is not None and (cpu.resource, cpu.resource_factor, cpu.threshold_value) == ("cpu", 100, 0.9)
