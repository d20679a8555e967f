"""Validation time of a generated 500-node flow (load + every check), p50 of several runs.

    .venv/bin/python bench/flow_validate.py [--nodes 500] [--runs 7]

Prints the p50/min/max wall time of :func:`ivr.loader.check_flowset` on a
flows folder written to a temp dir: one flow of ``--nodes`` nodes in blocks
of ten (menu, say, set, switch, play, gather, lookup, hours, queue, if),
every node reachable, no errors and no warnings. Single-threaded and short:
safe to run on the shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

BLOCK = 10


def big_flow(nodes: int = 500) -> str:
    """A valid flow of ``nodes`` nodes (rounded up to blocks of ten) plus a hangup."""
    blocks = max(1, -(-nodes // BLOCK))
    out = [
        "flow: big",
        "description: Generated for the validation benchmark.",
        "variables: {count: 0}",
        "start: m0",
        "nodes:",
    ]
    for i in range(blocks):
        nxt = f"m{i + 1}" if i + 1 < blocks else "bye"
        out += [
            f"  m{i}:",
            "    type: menu",
            f"    prompt: [{{say: 'Menu {i}: press 1, 2, 3 or 0.'}}, {{silence: 200}}]",
            f"    options: {{1: s{i}, 2: g{i}, 3: {nxt}, 0: bye}}",
            "    no_input: bye",
            f"  s{i}:",
            "    type: say",
            f"    text: 'Hello {{{{ caller | spell }}}}, this is block {i}.'",
            f"    next: v{i}",
            f"  v{i}:",
            "    type: set",
            f"    values: {{count: 'count + 1', last: \"'{i}'\"}}",
            f"    next: w{i}",
            f"  w{i}:",
            "    type: switch",
            "    cases:",
            "      - {when: 'count > 3', goto: bye}",
            f"      - {{when: \"digits == '1'\", goto: p{i}}}",
            f"    default: m{i}",
            f"  p{i}:",
            "    type: play",
            "    audio: 'sound:beep'",
            f"    next: m{i}",
            f"  g{i}:",
            "    type: gather",
            "    prompt: Your account number, then hash.",
            f"    variable: acct{i}",
            f"    next: l{i}",
            f"    no_input: m{i}",
            f"  l{i}:",
            "    type: lookup",
            "    source: history",
            f"    key: acct{i}",
            f"    found: h{i}",
            f"    not_found: m{i}",
            f"  h{i}:",
            "    type: hours",
            "    timezone: Asia/Tokyo",
            "    schedule: {mon: ['09:00-18:00'], tue: ['09:00-18:00'], fri: ['09:00-12:00']}",
            "    holidays: [2025-01-01]",
            f"    open: q{i}",
            f"    closed: c{i}",
            f"  q{i}:",
            "    type: queue",
            "    queue: sales",
            "    max_wait: 60",
            f"    overflow: m{i}",
            f"  c{i}:",
            "    type: if",
            "    condition: customer and customer.vip",
            f"    then: q{i}",
            f"    else: m{i}",
        ]
    out += ["  bye:", "    type: hangup", "    prompt: Goodbye."]
    return "\n".join(out) + "\n"


def write_folder(folder: Path, nodes: int = 500) -> Path:
    """A flows folder holding the big flow, routes.yaml and queues.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "big.yaml").write_text(big_flow(nodes), encoding="utf-8")
    (folder / "routes.yaml").write_text("default: big\n", encoding="utf-8")
    (folder / "queues.yaml").write_text("queues:\n  sales: {}\n", encoding="utf-8")
    return folder


def main() -> None:
    """Run the benchmark and print the figures."""
    from ivr.loader import check_flowset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(Path(tmp) / "flows", args.nodes)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            flowset, diags = check_flowset(folder)
            times.append(time.perf_counter() - t0)
            if flowset is None or diags:
                raise SystemExit("generated flow did not validate:\n" + "\n".join(map(str, diags)))
        count = len(flowset.flows["big"].nodes)
        size = (folder / "big.yaml").stat().st_size
    print(
        f"flow_validate: {count} nodes, {size / 1024:.0f} KiB YAML, {args.runs} runs: "
        f"p50 {statistics.median(times) * 1000:.1f} ms, min {min(times) * 1000:.1f} ms, "
        f"max {max(times) * 1000:.1f} ms (first run includes imports' warm-up)"
    )


if __name__ == "__main__":
    main()
