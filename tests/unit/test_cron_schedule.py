"""rpops.local.server.cron: schedules (croniter, time zones, @every), concurrency policies, starting
deadlines, history pruning, and the Scheduler starting real runs of the local executor."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from rpops.core.errors import UsageError
from rpops.local.load.catalog import Catalog, Document, load_documents
from rpops.local.run.executor import Options
from rpops.local.server.cron import (
    CRON_LABEL,
    RunRecord,
    Scheduler,
    catch_up,
    check_cron,
    decide,
    next_fire,
    parse_schedule,
    prune,
    verdict,
)

ROOT = Path(__file__).resolve().parents[2]
BERLIN = ZoneInfo("Europe/Berlin")


def ts(*args: int, tz: Any = UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


def cron_doc(**spec: Any) -> Document:
    raw = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "tick"},
        "spec": {
            "schedules": ["*/5 * * * *"],
            **spec,
            "workflowSpec": {
                "entrypoint": "main",
                "templates": [
                    {
                        "name": "main",
                        "container": {"image": "python", "command": ["python", "-c", "print('tick')"]},
                    }
                ],
            },
        },
    }
    return Document("CronWorkflow", "tick", raw, "tick.yaml")


def test_standard_schedules_in_a_time_zone() -> None:
    s = parse_schedule("0 2 * * *", BERLIN)
    assert s.next_after(ts(2026, 1, 10, 0, 0, tz=BERLIN)) == ts(2026, 1, 10, 2, 0, tz=BERLIN)
    # 02:30 does not exist on the spring-forward night; croniter runs it at 03:00 local.
    dst = parse_schedule("30 2 * * *", BERLIN)
    assert dst.next_after(ts(2024, 3, 31, 0, 0, tz=BERLIN)) == ts(2024, 3, 31, 3, 0, tz=BERLIN)
    assert parse_schedule("@hourly", UTC).last_at_or_before(ts(2026, 1, 1, 5, 30)) == ts(2026, 1, 1, 5, 0)


def test_every_counts_from_the_previous_run_in_whole_seconds() -> None:
    s = parse_schedule("@every 2s", UTC)
    assert s.next_after(100.7) == 102.0
    assert parse_schedule("@every 100ms", UTC).every_s == 1.0  # at least a second, as Argo's library
    assert s.last_at_or_before(100.0) is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("* * * * * *", "5-field"),
        ("61 * * * *", "5-field"),
        ("@fortnightly", "unknown descriptor"),
        ("@every soon", "@every 30s"),
    ],
)
def test_bad_schedules(text: str, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        parse_schedule(text, UTC)


def test_next_fire_over_several_schedules() -> None:
    spec = check_cron(cron_doc(schedules=["0 * * * *", "30 * * * *"], timezone="UTC"), Catalog(), "argo")
    assert next_fire(spec, ts(2026, 1, 1, 10, 10)) == ts(2026, 1, 1, 10, 30)
    assert next_fire(spec, ts(2026, 1, 1, 10, 40)) == ts(2026, 1, 1, 11, 0)


def test_starting_deadline() -> None:
    assert verdict(100.0, 105.0, None) == "run"
    assert verdict(100.0, 105.0, 10) == "run"
    assert verdict(100.0, 111.0, 10) == "missed"


@pytest.mark.parametrize(
    ("policy", "active", "start", "stop"),
    [
        ("Allow", ["a"], True, ()),
        ("Forbid", ["a"], False, ()),
        ("Forbid", [], True, ()),
        ("Replace", ["a", "b"], True, ("a", "b")),
    ],
)
def test_concurrency_policy(policy: str, active: list[str], start: bool, stop: tuple[str, ...]) -> None:
    d = decide(policy, active)
    assert (d.start, d.stop) == (start, stop)


def test_catch_up_runs_a_missed_time_within_the_deadline_once() -> None:
    spec = check_cron(cron_doc(timezone="UTC", startingDeadlineSeconds=120), Catalog(), "argo")
    now = ts(2026, 1, 1, 10, 6)  # 10:05 was a scheduled time, 60 s ago
    assert catch_up(spec, now, lambda t: False) == ts(2026, 1, 1, 10, 5)
    assert catch_up(spec, now, lambda t: True) is None  # it ran already
    assert catch_up(spec, ts(2026, 1, 1, 10, 8), lambda t: False) is None  # 180 s late: missed
    no_deadline = check_cron(cron_doc(timezone="UTC"), Catalog(), "argo")
    assert catch_up(no_deadline, now, lambda t: False) is None


def test_prune_keeps_the_newest_per_outcome() -> None:
    records = [
        RunRecord("s1", "Succeeded", "2026-01-01T00:01:00.000Z"),
        RunRecord("s2", "Succeeded", "2026-01-01T00:02:00.000Z"),
        RunRecord("s3", "Succeeded", "2026-01-01T00:03:00.000Z"),
        RunRecord("f1", "Failed", "2026-01-01T00:01:30.000Z"),
        RunRecord("e1", "Error", "2026-01-01T00:02:30.000Z"),
        RunRecord("r1", "Running", ""),
    ]
    assert prune(records, 2, 1) == ["s1", "f1"]
    assert prune(records, 0, 0) == ["s1", "s2", "s3", "f1", "e1"]


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"schedules": []}, "at least one schedule"),
        ({"schedule": "* * * * *"}, "schedules: \\[...\\]"),
        ({"timezone": "Mars/Olympus"}, "IANA"),
        ({"concurrencyPolicy": "Sometimes"}, "Allow, Forbid, Replace"),
        ({"when": "true"}, "spec.when: not supported"),
        ({"successfulJobsHistoryLimit": -1}, "successfulJobsHistoryLimit"),
        ({"startingDeadlineSeconds": "soon"}, "startingDeadlineSeconds"),
    ],
)
def test_cron_workflows_outside_the_subset_are_refused(spec: dict[str, Any], error: str) -> None:
    with pytest.raises(UsageError, match=error):
        check_cron(cron_doc(**spec), Catalog(), "argo")


def test_the_rendered_cron_workflows_load() -> None:
    from rpops.local.server.cron import load_crons

    catalog = load_documents([ROOT / "manifests" / "argo"])
    for spec in load_crons(catalog, "argo"):
        assert spec.schedules and spec.policy in ("Allow", "Forbid", "Replace")


# --------------------------------------------------------------------------------------------- the scheduler


def scheduler(tmp_path: Path, now: float, **spec: Any) -> Scheduler:
    doc = cron_doc(timezone="UTC", **spec)
    catalog = Catalog()
    catalog.add(doc)
    crons = [check_cron(doc, catalog, "argo")]

    def options(name: str | None = None) -> Options:
        return Options(runs_dir=tmp_path / "runs", secrets_file=None, name=name)

    return Scheduler(catalog, crons, options, tmp_path / "runs", now=now)


def finish(s: Scheduler) -> None:
    for state in s.states.values():
        for h in state.handles:
            assert h.wait(30) is not None


def test_the_scheduler_runs_each_time_names_and_labels_the_run(tmp_path: Path) -> None:
    start = ts(2026, 1, 1, 10, 1)
    s = scheduler(tmp_path, start)
    s.tick(start + 60)  # 10:02: nothing due
    assert not (tmp_path / "runs").exists()
    s.tick(ts(2026, 1, 1, 10, 5, 0) + 0.1)
    finish(s)
    name = f"tick-{int(ts(2026, 1, 1, 10, 5))}"
    status = json.loads((tmp_path / "runs" / name / "status.json").read_text())
    assert status["status"]["phase"] == "Succeeded"
    assert status["metadata"]["labels"][CRON_LABEL] == "tick"
    assert status["metadata"]["annotations"]["workflows.argoproj.io/scheduled-time"] == "2026-01-01T10:05:00Z"
    assert s.states["tick"].next_at == ts(2026, 1, 1, 10, 10)


def test_a_run_later_than_the_starting_deadline_is_skipped(tmp_path: Path) -> None:
    start = ts(2026, 1, 1, 10, 1)
    s = scheduler(tmp_path, start, concurrencyPolicy="Forbid", startingDeadlineSeconds=30)
    s.tick(ts(2026, 1, 1, 10, 5) + 40)  # 40 s late: missed
    assert not (tmp_path / "runs").exists()


def test_history_limits_prune_old_records(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for i, phase in enumerate(["Succeeded", "Succeeded", "Failed", "Failed"]):
        d = runs / f"tick-{i}"
        d.mkdir(parents=True)
        doc = {
            "metadata": {
                "name": f"tick-{i}",
                "labels": {CRON_LABEL: "tick"},
                "creationTimestamp": f"2026-01-0{i + 1}",
            },
            "status": {"phase": phase, "finishedAt": f"2026-01-0{i + 1}T00:00:00.000Z"},
        }
        (d / "status.json").write_text(json.dumps(doc))
    other = runs / "someone-else"
    other.mkdir()
    (other / "status.json").write_text(
        json.dumps({"metadata": {"name": "someone-else"}, "status": {"phase": "Failed"}})
    )
    s = scheduler(tmp_path, ts(2026, 1, 1, 10, 1), successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1)
    s.tick(ts(2026, 1, 1, 10, 2))
    assert sorted(p.name for p in runs.iterdir()) == ["someone-else", "tick-1", "tick-3"]


def test_the_serve_scheduler_fires_every_second(tmp_path: Path) -> None:
    """`rpops local serve` runs a CronWorkflow on `@every 1s`, keeping only the newest 2 records."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from fixtures import start_serve, wait_until

    doc = cron_doc(schedules=["@every 1s"], successfulJobsHistoryLimit=2, concurrencyPolicy="Forbid").raw
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "cron.yaml").write_text(yaml.safe_dump(doc))
    serve = start_serve(manifests, tmp_path / "serve")
    try:

        def succeeded() -> list[dict[str, Any]]:
            return [w for w in serve.workflows(f"{CRON_LABEL}=tick") if w["status"]["phase"] == "Succeeded"]

        wait_until(lambda: len(succeeded()) >= 2, 20, f"no scheduled runs\n{serve.logs()}")
        wait_until(lambda: "deleted the record" in serve.logs(), 20, f"nothing pruned\n{serve.logs()}")
        wait_until(lambda: len(succeeded()) <= 2, 10, "history not pruned to 2")
    finally:
        serve.stop()
