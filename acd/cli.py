"""``ivr acd ...``: the ACD's command-line tools (a click group added to ``ivr``).

ivr acd simulate SCENARIO.yaml [--out DIR] [--seed N] [--totals] [--no-progress] [--native]
ivr acd staffing --calls 100 --interval 1800 --aht 180 [--target 80/20] [--patience 120]
"""

from __future__ import annotations

import math
from pathlib import Path

import click

__all__ = ["acd"]


@click.group()
def acd() -> None:
    """Skill-based ACD: simulate a day through the real router, staffing maths."""


@acd.command()
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the plots, intervals.csv and acd_metrics.db "
    "(default: var/simulations/<scenario name>)",
)
@click.option("--seed", type=int, default=None, help="Random seed (default: the scenario's)")
@click.option("--totals", is_flag=True, help="Print only the day's totals per queue")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr")
@click.option(
    "--native",
    is_flag=True,
    help="Run the mypyc-compiled router, metrics and simulator (make acd-native); "
    "refused when their sources changed since the build",
)
def simulate(
    scenario: Path,
    out: Path | None,
    seed: int | None,
    totals: bool,
    progress: bool,
    native: bool,
) -> None:
    """Play the day in SCENARIO through the real ACD router on virtual time.

    Prints per 15-minute interval and queue: offered, answered, abandoned (and
    short abandons), overflowed, SL and SL2 as Asterisk's app_queue defines them,
    ASA, AHT, longest wait, EWT error, agents staffed and what Erlang A says the
    interval needed; then the totals. Writes PNG plots (service level, queue
    length, agents by state), intervals.csv and the metrics database.
    """
    if native:
        from acd import native as compiled

        try:
            compiled.enable()
        except compiled.NativeBuildError as exc:
            raise click.ClickException(str(exc)) from None
    from acd.config import AcdConfigError
    from acd.scenario import ScenarioError
    from acd.simulator import simulate_file

    folder = out if out is not None else Path("var/simulations") / scenario.stem
    try:
        _result, text, written = simulate_file(
            scenario, folder, seed=seed, progress=progress, per_interval=not totals
        )
    except (ScenarioError, AcdConfigError) as exc:
        raise click.ClickException(f"{scenario} cannot be simulated:\n{exc}") from None
    except ValueError as exc:
        raise click.ClickException(f"{scenario}: {exc}") from None
    click.echo(text)
    for path in written:
        click.echo(f"wrote {path}", err=True)


def _target(text: str) -> tuple[float, float]:
    try:
        percent, seconds = text.split("/")
        p, s = float(percent) / 100, float(seconds)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: write the target as PERCENT/SECONDS, e.g. 80/20"
        ) from None
    if not 0 < p < 1 or s < 0:
        raise click.BadParameter(f"{text!r}: percent must be in (0, 100) and seconds >= 0")
    return p, s


@acd.command()
@click.option("--calls", type=float, required=True, help="Calls offered per interval")
@click.option("--interval", type=float, default=1800.0, show_default=True, help="Seconds")
@click.option("--aht", type=float, required=True, help="Average handle time, seconds")
@click.option("--target", default="80/20", show_default=True, help="Service level PERCENT/SECONDS")
@click.option(
    "--patience",
    type=float,
    default=None,
    help="Mean patience in seconds (Erlang A); none: Erlang C",
)
def staffing(
    calls: float, interval: float, aht: float, target: str, patience: float | None
) -> None:
    """Agents needed for a service-level target (Erlang C, or Erlang A with --patience)."""
    from acd.erlang import (
        ErlangA,
        ErlangC,
        agents_for_service_level,
        erlang_a_agents_for_service_level,
    )

    goal, threshold = _target(target)
    lam = calls / interval
    try:
        if patience is None:
            n = agents_for_service_level(lam, aht, goal, threshold)
        else:
            n = erlang_a_agents_for_service_level(lam, aht, patience, goal, threshold)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"load {lam * aht:.2f} Erlangs; {n} agents for {target}")
    click.echo(
        f"{'agents':>6} {'P(wait)':>8} {'SL':>7} {'ASA s':>7} {'abandon':>8} {'occupancy':>9}"
    )
    for k in range(max(1, n - 2), n + 3):
        if patience is None:
            c = ErlangC(lam, aht, k)
            row = (c.p_wait, c.service_level(threshold), c.asa, 0.0, c.occupancy)
        else:
            a = ErlangA(lam, aht, patience, k)
            row = (a.p_wait, a.answered_within(threshold), a.asa, a.p_abandon, a.occupancy)
        asa = "inf" if math.isinf(row[2]) else f"{row[2]:.1f}"
        click.echo(
            f"{k:6d} {row[0]:8.1%} {row[1]:7.1%} {asa:>7} {row[3]:8.1%} {row[4]:9.1%}"
            + ("  <-" if k == n else "")
        )
