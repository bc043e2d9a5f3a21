"""The workload's CPU figure: time on a core plus time waiting for one, per thread, over a window."""

from __future__ import annotations

from pathlib import Path

from rpops.workload.metrics import CPU_WINDOW_S, Monitor, RequestMetrics, cpu_demand_seconds


def test_schedstat_counts_running_and_waiting(tmp_path: Path) -> None:
    for tid, text in {"11": "1000000000 500000000 7\n", "12": "250000000 0 1\n", "13": "garbled\n"}.items():
        (tmp_path / tid).mkdir()
        (tmp_path / tid / "schedstat").write_text(text)
    assert cpu_demand_seconds(str(tmp_path)) == {11: 1.5, 12: 0.25}
    assert cpu_demand_seconds(str(tmp_path / "missing")) == {}


def test_the_figure_is_per_thread_over_the_window() -> None:
    monitor = Monitor(RequestMetrics("v1"))
    monitor._cpu_marks.clear()
    monitor._cpu_marks.append((100.0, {1: 10.0, 2: 5.0}))
    # One thread ran or waited the whole second, a new thread half of it, one ended.
    assert monitor._cpu_percent(101.0, {1: 11.0, 3: 0.5}) == 150.0
    # Marks older than the window are dropped: the figure covers the last CPU_WINDOW_S seconds.
    later = 101.0 + CPU_WINDOW_S + 1
    assert monitor._cpu_percent(later, {1: 11.0 + CPU_WINDOW_S + 1, 3: 0.5}) == 100.0
