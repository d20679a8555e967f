"""The transcription job queue on a real SQLite file: leases, retries, restarts."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from recordings.jobs import JobError, JobQueue


def test_jobs_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "callcore.db"
    q = JobQueue(db)
    job_id = q.enqueue("/data/recordings/a.wav", "call-a", now=100.0, context={"caller": "1001"})
    q.close()
    del q

    again = JobQueue(db)
    job = again.claim("w1", now=101.0, lease=60)
    assert job is not None
    assert (job.id, job.recording, job.call_id) == (job_id, "/data/recordings/a.wav", "call-a")
    assert job.context == {"caller": "1001"}
    assert (job.status, job.attempts, job.worker, job.lease_until) == ("running", 1, "w1", 161.0)
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_claim_order_and_complete(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "c.db")
    a = q.enqueue("a.wav", "A", now=1.0)
    b = q.enqueue("b.wav", "B", now=2.0)
    assert q.enqueue("a.wav", "A", now=3.0) == a  # a hook fired twice: one job
    ja = q.claim("w1", now=5.0)
    jb = q.claim("w2", now=5.0)
    assert ja is not None and jb is not None
    assert (ja.id, jb.id) == (a, b)
    assert q.claim("w3", now=5.0) is None  # both leased
    q.complete(a, "w1", now=6.0, result="a.json")
    done = q.get(a)
    assert (done.status, done.result, done.worker, done.finished_at) == (
        "done",
        "a.json",
        None,
        6.0,
    )
    assert q.counts() == {"queued": 0, "running": 1, "done": 1, "failed": 0}
    assert q.claim("w3", now=1000.0) is not None  # b's lease expired: b again
    assert q.claim("w4", now=1000.0) is None  # a done is never offered again


def test_fail_retries_with_backoff_then_stays_failed_with_errors(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "c.db", max_attempts=2, backoff=10.0)
    jid = q.enqueue("bad.wav", "X", now=0.0)
    job = q.claim("w1", now=0.0)
    assert job is not None
    after = q.fail(jid, "w1", "bad.wav: not a WAV file", now=1.0)
    assert (after.status, after.available_at) == ("queued", 11.0)
    assert after.last_error == "attempt 1: bad.wav: not a WAV file"
    assert q.claim("w1", now=10.9) is None  # backing off
    job = q.claim("w2", now=11.0)
    assert job is not None and job.attempts == 2
    final = q.fail(jid, "w2", "still broken", now=12.0)
    assert final.status == "failed"
    assert final.errors == ["attempt 1: bad.wav: not a WAV file", "attempt 2: still broken"]
    assert q.claim("w3", now=1e9) is None
    q.retry(jid, now=20.0)
    again = q.claim("w3", now=20.0)
    assert again is not None and again.attempts == 1
    assert again.errors == final.errors  # history kept


def test_expired_lease_is_retried_and_recorded(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "c.db", max_attempts=2)
    jid = q.enqueue("a.wav", "A", now=0.0)
    assert q.claim("crashed", now=0.0, lease=30) is not None
    assert q.claim("w2", now=29.9) is None
    job = q.claim("w2", now=30.0, lease=30)
    assert job is not None and (job.worker, job.attempts) == ("w2", 2)
    assert job.last_error is not None and "lease of worker crashed expired" in job.last_error
    # the crashed worker comes back: it may no longer complete or fail the job
    with pytest.raises(JobError, match="does not hold its lease"):
        q.complete(jid, "crashed", now=31.0)
    with pytest.raises(JobError, match="does not hold its lease"):
        q.fail(jid, "crashed", "late", now=31.0)
    # w2 also dies: attempts used up, the job fails with both expiries listed
    assert q.claim("w3", now=60.0) is None
    failed = q.get(jid)
    assert failed.status == "failed"
    assert len(failed.errors) == 2 and all("expired" in e for e in failed.errors)


def test_renew_keeps_the_lease_and_late_complete_is_refused(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "c.db")
    jid = q.enqueue("a.wav", "A", now=0.0)
    assert q.claim("w1", now=0.0, lease=10) is not None
    q.renew(jid, "w1", now=9.0, lease=10)
    assert q.claim("w2", now=15.0) is None
    with pytest.raises(JobError, match="expired"):
        q.complete(jid, "w1", now=19.5)
    with pytest.raises(JobError, match="no such job"):
        q.get(999)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "callcore.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JobError, match=r"callcore\.db: cannot open the job queue"):
        JobQueue(bad)


def _claim_many(path: str, worker: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    q = JobQueue(path)
    got = []
    while (job := q.claim(worker, now=1.0, lease=1000)) is not None:
        got.append(job.id)
    out.put(got)


def test_two_processes_never_claim_the_same_job(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    q = JobQueue(path)
    ids = {q.enqueue(f"{i}.wav", str(i), now=0.0) for i in range(60)}
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_claim_many, args=(str(path), f"w{i}", out)) for i in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    claimed = results[0] + results[1]
    assert sorted(claimed) == sorted(ids)  # every job once, none twice


def test_a_dead_workers_jobs_are_released_at_once(tmp_path: Path) -> None:
    q = JobQueue(tmp_path / "c.db", max_attempts=2)
    a = q.enqueue("a.wav", "A", now=1.0)
    b = q.enqueue("b.wav", "B", now=2.0)
    other = q.enqueue("c.wav", "C", now=3.0)
    assert q.claim("dead", now=10.0, lease=600) is not None
    assert q.claim("alive", now=10.0, lease=600) is not None
    # the supervisor reaped "dead": its job is claimable now, not in 600 s
    assert q.abandon("dead", "worker dead (pid 7) killed by SIGKILL", now=11.0) == [a]
    assert q.abandon("nobody", "x", now=11.0) == []
    job = q.get(a)
    assert (job.status, job.attempts, job.worker, job.available_at) == ("queued", 1, None, 1.0)
    assert job.errors == ["attempt 1: worker dead (pid 7) killed by SIGKILL"]
    assert q.get(b).status == "running" and q.get(b).worker == "alive"  # untouched
    again = q.claim("new", now=11.0)  # first again: it keeps its place in the queue
    assert again is not None and again.id == a and again.attempts == 2
    # attempts used up: a recording that kills every worker ends failed, not for ever
    assert q.abandon("new", "worker new killed by SIGKILL", now=12.0) == [a]
    assert (q.get(a).status, len(q.get(a).errors)) == ("failed", 2)
    # stopped by the engine itself: the attempt is given back
    third = q.claim("stopping", now=13.0)
    assert third is not None and third.id == other
    assert q.abandon("stopping", "engine stopped", now=14.0, charge=False) == [other]
    assert (q.get(other).status, q.get(other).attempts) == ("queued", 0)
