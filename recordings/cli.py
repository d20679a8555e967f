"""``ivr transcribe PATH...``: text records for existing recordings, offline.

Each WAV (mono, or stereo with the caller left and the agent/IVR right) gets
``NAME.json`` (the text record) and ``NAME.txt``/``.vtt``/``.srt`` beside it or
in ``--out``. A file that cannot be read is reported with its name and the
others go on; the exit code is 1 when any file failed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

__all__ = ["transcribe", "transcribe_jobs", "transcribe_workers"]

BACKENDS = ("default", "vosk")  # recordings.stt.BACKENDS (not imported: keeps `ivr` fast)


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(x for x in p.rglob("*") if x.suffix.lower() == ".wav"))
        else:
            out.append(p)
    return out


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="default",
    show_default=True,
    help="default: Whisper tiny.en shipped in a package; vosk: a vosk model folder",
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Model folder (vosk: else CALLCORE_VOSK_MODEL; default: another CTranslate2 Whisper)",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for the records (default: beside each recording)",
)
@click.option("--threads", default=2, show_default=True, help="CPU threads for the model")
def transcribe(
    paths: tuple[Path, ...],
    backend: str,
    model_dir: Path | None,
    out_dir: Path | None,
    threads: int,
) -> None:
    """Transcribe recordings (WAV files or folders of them) into text records.

    Stereo files: left channel = caller, right = agent/IVR, each transcribed
    on its own. Prints each file's real-time factor (processing / audio time).
    """
    from tqdm import tqdm  # type: ignore[import-untyped]

    from recordings.audio import WavError
    from recordings.stt import SttError, open_transcriber
    from recordings.textrecord import RecordError
    from recordings.worker import transcribe_recording, write_record

    files = _expand(paths)
    if not files:
        raise click.ClickException("no WAV files found in " + ", ".join(map(str, paths)))
    try:
        transcriber = open_transcriber(backend, model_dir, cpu_threads=threads)
    except SttError as exc:
        raise click.ClickException(str(exc)) from None
    failed: list[str] = []
    audio_total = spent_total = 0.0
    used: set[Path] = set()
    bar = tqdm(files, unit="file", desc="transcribe", file=sys.stderr, dynamic_ncols=True)
    for path in bar:
        bar.set_postfix_str(path.name)
        started = time.perf_counter()
        try:
            record = transcribe_recording(transcriber, path, path.stem)
            folder = out_dir if out_dir is not None else path.parent
            target = folder / f"{path.stem}.json"
            if target in used:  # two recordings of the same name into one --out
                record = record.model_copy(update={"call_id": f"{path.stem}-{len(used)}"})
            written = write_record(record, folder)
            used.add(written)
        except (WavError, RecordError) as exc:
            failed.append(str(path))
            tqdm.write(f"error: {exc}", file=sys.stderr)
            continue
        except Exception as exc:  # one bad file never stops the batch
            failed.append(str(path))
            tqdm.write(f"error: {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        spent = time.perf_counter() - started
        audio = record.metadata.duration
        audio_total += audio
        spent_total += spent
        rtf = spent / audio if audio else 0.0
        tqdm.write(
            f"{path}: {audio:.1f} s audio, {len(record.segments)} segments,"
            f" RTF {rtf:.3f} -> {written}"
        )
    bar.close()
    done = len(files) - len(failed)
    rtf_all = spent_total / audio_total if audio_total else 0.0
    click.echo(
        f"{done} of {len(files)} recordings transcribed ({transcriber.name}):"
        f" {audio_total:.1f} s audio in {spent_total:.1f} s, real-time factor {rtf_all:.3f}"
    )
    if failed:
        click.echo(f"{len(failed)} failed: {', '.join(failed)}", err=True)
        sys.exit(1)


def _data_dir(data: Path | None) -> Path:
    if data is not None:
        return data
    from engine.config import EngineConfig

    try:
        return EngineConfig.from_env().data_dir
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("transcribe-workers")
@click.option(
    "--data",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Data folder (its callcore.db holds the queue; default CALLCORE_DATA_DIR or var)",
)
@click.option("--processes", default=1, show_default=True, help="Worker processes")
@click.option("--backend", type=click.Choice(BACKENDS), default="default", show_default=True)
@click.option(
    "--model", "model_dir", type=click.Path(path_type=Path, file_okay=False), default=None
)
@click.option("--threads", default=1, show_default=True, help="Model threads per process")
@click.option("--nice", default=10, show_default=True, help="Niceness added to each worker")
def transcribe_workers(
    data: Path | None,
    processes: int,
    backend: str,
    model_dir: Path | None,
    threads: int,
    nice: int,
) -> None:
    """Transcribe the engine's queued recordings until Ctrl-C / SIGTERM.

    For a machine apart from the engine (``ivr serve`` runs its own workers,
    --transcribe-workers). Each process loads the model once, claims jobs from
    DATA/callcore.db, writes DATA/transcripts/YYYY/MM/DD/CALL.json (+
    .txt/.vtt/.srt). A worker that dies is started again with back-off and its
    job goes back to the queue (recordings.supervisor).
    """
    import asyncio
    import signal

    from recordings.jobs import JobQueue
    from recordings.supervisor import WorkerSupervisor
    from recordings.worker import WorkerConfig

    folder = _data_dir(data)
    cfg = WorkerConfig(
        data_dir=folder, backend=backend, model_dir=model_dir, cpu_threads=threads, nice=nice
    )

    async def serve() -> None:
        supervisor = WorkerSupervisor(cfg, processes)
        await supervisor.start()
        if supervisor.error:
            raise click.ClickException(supervisor.error)
        errors = await supervisor.wait_ready(120.0)
        if errors:
            await supervisor.stop(grace=1.0)
            raise click.ClickException("transcription workers did not start: " + "; ".join(errors))
        counts = await asyncio.to_thread(JobQueue(cfg.db_path).counts)
        click.echo(f"{processes} transcription workers ready on {cfg.db_path}: {counts}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await supervisor.stop(grace=30.0)

    asyncio.run(serve())
    click.echo(f"stopped: {JobQueue(cfg.db_path).counts()}")


@click.command("transcribe-jobs")
@click.option("--data", type=click.Path(path_type=Path, file_okay=False), default=None)
@click.option(
    "--status",
    type=click.Choice(("queued", "running", "done", "failed")),
    default=None,
    help="Only jobs in this state",
)
@click.option("--retry", "retry_id", type=int, default=None, help="Re-queue this failed job")
def transcribe_jobs(data: Path | None, status: str | None, retry_id: int | None) -> None:
    """List the transcription jobs (state, attempts, last error), or re-queue a failed one."""
    from recordings.jobs import JobError, JobQueue

    db = _data_dir(data) / "callcore.db"
    if not db.is_file():
        raise click.ClickException(f"{db}: no database (no recording was queued yet)")
    try:
        queue = JobQueue(db)
        if retry_id is not None:
            queue.retry(retry_id, now=time.time())
            click.echo(f"job {retry_id} queued again")
            return
        jobs = queue.jobs(status)  # type: ignore[arg-type]
    except JobError as exc:
        raise click.ClickException(str(exc)) from None
    for job in jobs:
        line = f"{job.id:>6}  {job.status:<8} {job.attempts}/{job.max_attempts}  {job.call_id}"
        line += f"  {job.result if job.status == 'done' else job.recording}"
        click.echo(line)
        if job.last_error and job.status != "done":
            click.echo(f"        last error: {job.last_error}")
    counts = queue.counts()
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items()))
