"""History search latency on a large history: p50/p99 of HistoryStore.search.

    .venv/bin/python bench/history_search.py [--interactions 1000000] [--contacts 100000]
        [--queries 2000] [--db PATH] [--keep] [--seed 7]

Builds (or reuses, with ``--db`` pointing at a file built before) a history
of ``--interactions`` synthetic messages of every channel over
``--contacts`` contacts in the real schema (recordings.history: contacts,
identifiers, interactions, the FTS5 index and its triggers), written with
``executemany`` in one transaction per 50,000 rows. Message bodies are 8-40
words drawn from a Zipf-distributed vocabulary of 6,000 words (a few hundred
contact-center words, the rest invented), so some words occur in most
messages and most in few.

Then it times ``--queries`` calls of :meth:`HistoryStore.search` (the code
the HTTP API runs) through one connection, in a fixed random order over
seven kinds of query (:data:`KINDS`), and prints p50/p99/max per kind and
overall, plus the timeline read of a busy contact. Queries ask for the best
20 by bm25 among the newest 5,000 matches (``RANK_WINDOW``), but
``common_recent`` (the 20 newest).
Single-threaded; the build takes a few minutes and ~1 GB of disk at 1M.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from recordings.history import CHANNELS, HistoryStore

DOMAIN = tuple(
    """
account address agent answer application appointment balance bank bill billing
broadband cable call cancel card change charge check code complaint confirm connection
contract credit customer data date debit delay delivery device discount dispute dropped
email error fee fiber firmware hardware help home internet invoice issue late line
login manager message mobile modem monthly network number offer order outage package
password payment phone plan port price problem refund reset return roaming router
service signal slow speed subscription support technician ticket transfer upgrade
voicemail wifi wireless thanks please today tomorrow again still hello goodbye
""".split()  # noqa: SIM905 (a word list reads better as text)
)
SYLLABLES = [a + b for a in "bcdfgklmnprstvz" for b in "aeiou"]
KINDS = (
    "common",
    "common_recent",
    "rare",
    "two_words",
    "three_words",
    "prefix",
    "per_contact",
)
"""Query kinds; ``common_recent`` is ``common`` with ``order="recent"`` (newest first)."""


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """The domain words, then invented ones up to ``size`` (all distinct)."""
    words = list(dict.fromkeys(DOMAIN))
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def build(path: Path, interactions: int, contacts: int, seed: int) -> list[str]:
    """Fill ``path`` with the synthetic history; returns the vocabulary."""
    rng = random.Random(seed)
    words = vocabulary(6000, rng)
    HistoryStore(path)  # the real schema: tables, FTS5 index, triggers
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-200000")
    now = datetime.now(UTC).isoformat()
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO contacts (id, name, created, updated) VALUES (?, ?, ?, ?)",
        ((i, f"Customer {i}", now, now) for i in range(1, contacts + 1)),
    )
    db.executemany(
        "INSERT INTO contact_identifiers (kind, value, display, contact_id) VALUES (?, ?, ?, ?)",
        (("phone", f"+1555{i:07d}", f"+1555{i:07d}", i) for i in range(1, contacts + 1)),
    )
    db.execute("COMMIT")
    np_rng = np.random.default_rng(seed)
    start = 1_700_000_000.0
    chunk = 50_000
    channels = list(CHANNELS)
    with tqdm(total=interactions, unit="msg", desc="building") as bar:
        for first in range(0, interactions, chunk):
            n = min(chunk, interactions - first)
            lengths = np_rng.integers(8, 41, n)
            picks = np.minimum(np_rng.zipf(1.3, int(lengths.sum())) - 1, len(words) - 1)
            owners = np_rng.integers(1, contacts + 1, n)
            times = start + np.sort(np_rng.uniform(0, 3 * 365 * 86400, n))
            kinds = np_rng.integers(0, len(channels), n)
            rows = []
            pos = 0
            for i in range(n):
                k = int(lengths[i])
                body = " ".join(words[j] for j in picks[pos : pos + k])
                pos += k
                channel = channels[int(kinds[i])]
                subject = f"{channel} {words[int(picks[pos - 1])]}" if channel == "email" else ""
                rows.append(
                    (int(owners[i]), channel, float(times[i]), subject, body, "{}", float(times[i]))
                )
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO interactions (contact_id, channel, occurred_at, subject, body, meta,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.execute("COMMIT")
            bar.update(n)
    db.execute("INSERT INTO interactions_fts(interactions_fts) VALUES('optimize')")
    db.execute("ANALYZE")
    db.close()
    return words


def queries(
    words: list[str], contacts: int, count: int, seed: int
) -> list[tuple[str, str, int | None]]:
    """``(kind, text, contact or None)``, shuffled."""
    rng = random.Random(seed + 1)
    common, rare = words[:60], words[1000:]
    out: list[tuple[str, str, int | None]] = []
    per = max(1, count // len(KINDS))
    for _ in range(per):
        out.append(("common", rng.choice(common), None))
        out.append(("common_recent", rng.choice(common), None))
        out.append(("rare", rng.choice(rare), None))
        out.append(("two_words", f"{rng.choice(common)} {rng.choice(words[:800])}", None))
        out.append(("three_words", " ".join(rng.sample(words[:300], 3)), None))
        out.append(("prefix", rng.choice(words[60:2000])[:3] + "*", None))
        out.append(("per_contact", rng.choice(common), rng.randint(1, contacts)))
    rng.shuffle(out)
    return out


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--interactions", type=int, default=1_000_000)
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--db", type=Path, default=None, help="reuse (or build into) this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary database")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    tmp = None
    if args.db is None:
        tmp = tempfile.mkdtemp(prefix="history-bench-")
        path = Path(tmp) / "callcore.db"
    else:
        path = args.db
    rng = random.Random(args.seed)
    if path.exists():
        words = vocabulary(6000, rng)
        print(f"reusing {path}")
    else:
        t0 = time.perf_counter()
        words = build(path, args.interactions, args.contacts, args.seed)
        spent = time.perf_counter() - t0
        print(
            f"built {args.interactions:,} interactions / {args.contacts:,} contacts in"
            f" {spent:.1f} s ({args.interactions / spent:,.0f} rows/s),"
            f" {path.stat().st_size / 1e6:,.0f} MB"
        )
    store = HistoryStore(path)
    total = store._db().execute("SELECT count(*) FROM interactions").fetchone()[0]
    plan = queries(words, args.contacts, args.queries, args.seed)
    for _kind, text, contact in plan[:20]:  # warm the page cache
        store.search(text, contact_id=contact)
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    hits: dict[str, list[int]] = {k: [] for k in KINDS}
    for kind, text, contact in tqdm(plan, unit="query", desc="searching"):
        t0 = time.perf_counter()
        order: Literal["rank", "recent"] = "recent" if kind == "common_recent" else "rank"
        found = store.search(text, contact_id=contact, order=order)
        times[kind].append((time.perf_counter() - t0) * 1000)
        hits[kind].append(len(found))
    busiest = (
        store._db()
        .execute(
            "SELECT contact_id, count(*) FROM interactions GROUP BY contact_id"
            " ORDER BY count(*) DESC LIMIT 1"
        )
        .fetchone()
    )
    timeline_ms = []
    for _ in range(50):
        t0 = time.perf_counter()
        store.timeline(int(busiest[0]), limit=50)
        timeline_ms.append((time.perf_counter() - t0) * 1000)
    print(f"\n{total:,} interactions; {len(plan)} queries, 20 results each (ms):")
    print(f"{'kind':<12} {'n':>5} {'p50':>8} {'p99':>8} {'max':>8} {'hits':>6}")
    everything: list[float] = []
    for kind in KINDS:
        values = times[kind]
        everything += values
        print(
            f"{kind:<12} {len(values):>5} {_pct(values, 50):>8.2f} {_pct(values, 99):>8.2f}"
            f" {max(values):>8.2f} {statistics.mean(hits[kind]):>6.1f}"
        )
    print(
        f"{'all':<12} {len(everything):>5} {_pct(everything, 50):>8.2f}"
        f" {_pct(everything, 99):>8.2f} {max(everything):>8.2f}"
    )
    print(
        f"timeline of the busiest contact ({busiest[1]} interactions, newest 50):"
        f" p50 {_pct(timeline_ms, 50):.2f} ms, p99 {_pct(timeline_ms, 99):.2f} ms"
    )
    store.close()
    if tmp is not None and not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    elif tmp is not None:
        print(f"kept {path}")


if __name__ == "__main__":
    main()
