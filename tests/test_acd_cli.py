"""``ivr acd simulate`` on the shipped example day, and ``ivr acd staffing``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from ivr.cli import cli

ROOT = Path(__file__).resolve().parent.parent
DAY = ROOT / "docs" / "scenarios" / "day.yaml"


def test_simulate_the_example_day(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    result = CliRunner().invoke(
        cli, ["acd", "simulate", str(DAY), "--out", str(out), "--no-progress", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("Northwind weekday (seed 3)\n")
    for queue in ("billing", "support", "sales", "operator"):
        assert f"\n08:00 {queue}" in text
        assert f"\n{queue} " in text  # totals line
    assert "SL2%" in text and "EWT MAE" in text
    for name in ("service_level.png", "queue_length.png", "agents.png", "intervals.csv"):
        assert (out / name).stat().st_size > 1000
    rows = (
        sqlite3.connect(out / "acd_metrics.db")
        .execute("SELECT count(*), sum(offered) FROM acd_queue_intervals")
        .fetchone()
    )
    assert rows[0] == 160  # 4 queues x 40 intervals
    calls = int(text.split("run: ")[1].split(" calls")[0])
    assert rows[1] >= calls  # overflowed calls are offered again in their new queue


def test_simulate_reports_scenario_errors_with_positions(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        DAY.read_text()
        .replace("acd: ../../flows/queues.yaml", f"acd: {ROOT}/flows/queues.yaml")
        .replace("  sales:    {dist: exponential, mean: 290}", "  sales:    {dist: exponential}")
    )
    result = CliRunner().invoke(cli, ["acd", "simulate", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert f"{bad}:30:13: handle.sales: exponential needs mean (missing: mean)" in result.output
    missing = tmp_path / "nofile.yaml"
    missing.write_text(DAY.read_text())  # acd: ../../flows/queues.yaml is not there
    result = CliRunner().invoke(
        cli, ["acd", "simulate", str(missing), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert "acd: '../../flows/queues.yaml' is not a file" in result.output


def test_staffing_erlang_c_and_a() -> None:
    result = CliRunner().invoke(
        cli, ["acd", "staffing", "--calls", "100", "--interval", "1800", "--aht", "180"]
    )
    assert result.exit_code == 0, result.output
    assert "load 10.00 Erlangs; 14 agents for 80/20" in result.output
    assert "    14    17.4%   88.8%     7.8     0.0%     71.4%  <-" in result.output
    result = CliRunner().invoke(
        cli,
        [
            "acd",
            "staffing",
            "--calls",
            "100",
            "--interval",
            "1800",
            "--aht",
            "180",
            "--patience",
            "120",
        ],
    )
    assert "12 agents for 80/20" in result.output
    result = CliRunner().invoke(
        cli, ["acd", "staffing", "--calls", "1", "--aht", "9", "--target", "80"]
    )
    assert result.exit_code == 2
    assert "write the target as PERCENT/SECONDS" in result.output
