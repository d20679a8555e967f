"""The composition root: builds and wires every part of one engine.

Nothing else constructs long-lived objects. ``Engine(config).start()`` binds
SIP (UDP+TCP), the RTP port pool, the shared media clock and the HTTP API;
``stop()`` hangs up every call (BYE) and closes everything. ``run_forever``
adds SIGINT/SIGTERM handling for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily

import flows as flows_package
from engine.acd_runtime import AcdRuntime, start_acd
from engine.acdapi import acd_app
from engine.calls import Application, CallManager
from engine.config import EngineConfig
from engine.flowapp import FlowApplication, recent_calls, start_flow_application
from engine.gcpacer import GcPacer
from engine.greeting import GreetingApplication
from engine.historyapi import history_app
from engine.http import HttpServer, build_app
from engine.metrics import EngineMetrics
from engine.outbound import OutboundCalls
from engine.realtime import apply_realtime, current_policy
from engine.recording_storage import engine_storage
from engine.recordingapi import add_admin_routes, add_recording_routes
from engine.reload import FlowReload
from ivr.versions import DB_NAME
from media import native as media_native
from media.call import Call
from media.prompts.audio import load_audio
from media.prompts.player import Prompt
from media.rtp.clock import MediaClock
from media.rtp.endpoint import RtpPortPool
from media.rtp.poller import RtpPoller
from media.rtp.stalls import ThreadTimes
from media.session import MediaTotals
from media.sip.service import SipService
from media.sip.useragent import UserAgent
from recordings.audit import AuditLog
from recordings.history import HistoryStore
from recordings.lifecycle import RecordingAdmin
from recordings.recorder import Recorder
from recordings.retention import RetentionPolicy
from recordings.retention_config import QUEUES_FILE, RetentionSettings
from recordings.storage import ProcessRunner
from recordings.supervisor import WorkerSupervisor
from recordings.worker import WorkerConfig

log = structlog.get_logger("engine.app")

GREETING = "prompts/greeting.wav"


class _HotPathCounters:
    """Reads the UA's message counters and the RTP totals at scrape time.

    The hot paths count in plain integers; this collector turns them into
    Prometheus counters only when /metrics is read.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Any:
        fam = CounterMetricFamily(
            "callcore_sip_messages",
            "SIP messages received and sent: requests by method, responses by class",
            labels=["direction", "kind"],
        )
        for (direction, kind), count in sorted(self.engine.sip.ua.counters.items()):
            fam.add_metric([direction, kind], count)
        yield fam
        rtp = CounterMetricFamily(
            "callcore_rtp_packets",
            "RTP packets: in, out, late, lost, dropped (wrong source), malformed",
            labels=["kind"],
        )
        t = self.engine.totals
        for kind in ("in", "out", "late", "lost", "dropped", "malformed"):
            value = {"in": t.packets_in, "out": t.packets_out}.get(kind, getattr(t, kind, 0))
            rtp.add_metric([kind], value)
        yield rtp
        pacer = self.engine.gc_pacer
        gcc = CounterMetricFamily(
            "callcore_gc_collections",
            "Garbage collections run by the engine after the media send phase, by generation",
            labels=["generation"],
        )
        gcs = CounterMetricFamily(
            "callcore_gc_seconds",
            "Seconds spent in those collections, by generation",
            labels=["generation"],
        )
        for generation in range(3):
            gcc.add_metric([str(generation)], pacer.collections[generation])
            gcs.add_metric([str(generation)], pacer.seconds[generation])
        yield gcc
        yield gcs


class Engine:
    """One running engine (see module docstring)."""

    def __init__(self, config: EngineConfig, application: Application | None = None) -> None:
        self.config = config
        self.rng = random.Random()
        self.metrics = EngineMetrics()
        self.totals = MediaTotals()
        self.ua = UserAgent(local_host=config.sip_host, local_port=config.sip_port, rng=self.rng)
        self.sip = SipService(self.ua, self._on_sip_event)
        self._application = application
        self.calls: CallManager | None = None
        self.clock: MediaClock | None = None
        self.rtp_poller: RtpPoller | None = None
        self.thread_times: ThreadTimes | None = None
        self.http: HttpServer | None = None
        self.flow_app: FlowApplication | None = None
        self.outbound: OutboundCalls | None = None  # calls we place (agents' phones)
        self.acd: AcdRuntime | None = None  # the ACD behind the flows' queue nodes
        self.flow_reload: FlowReload | None = None  # hot reload: versions, watcher, /flows/
        self.recorder: Recorder | None = None  # every answered call as a stereo WAV + row
        self.history: HistoryStore | None = None  # contacts and every channel's interactions
        self.audit: AuditLog | None = None  # hash-chained log of what happens to recordings
        self.admin: RecordingAdmin | None = None  # access, legal hold, deletion, retention
        self.retention_settings = RetentionSettings(
            config.retention, config.flows_dir / QUEUES_FILE
        )  # queues.yaml's retention (hot reloaded), CALLCORE_RETENTION over it
        self._retention_task: asyncio.Task[None] | None = None
        self.transcription: WorkerSupervisor | None = None  # the transcription workers
        self.gc_pacer = GcPacer()
        self.metrics.registry.register(_HotPathCounters(self))

    @property
    def retention(self) -> RetentionPolicy:
        """The retention policy in force (see recordings.retention_config)."""
        return self.retention_settings.policy

    def _on_sip_event(self, event: Any) -> None:
        if self.outbound is not None and self.outbound.owns(event.call):
            self.outbound.on_event(event)
        elif self.calls is not None:
            self.calls.on_event(event)

    async def _default_application(self) -> Application:
        """The flows of the flows folder (picked by dialed number), else the greeting.

        With flow files that do not load yet, calls get the greeting until hot
        reload has a valid version live (the last stored one, or the next
        valid save): the engine starts and keeps answering either way.
        """
        path = self.config.flows_dir / GREETING
        if not path.exists():  # a flows folder of its own: the greeting shipped with the engine
            path = Path(flows_package.__file__).parent / GREETING
        greeting = GreetingApplication(Prompt(load_audio(path), name="greeting"))
        self.flow_app = flow_app = await start_flow_application(self.config, self.metrics)
        if flow_app is None:
            return greeting

        async def flows_or_greeting(call: Call) -> None:
            if flow_app.serving:
                await flow_app(call)
            else:
                await greeting(call)

        return flows_or_greeting

    def recent_calls(self, limit: int) -> list[dict[str, Any]]:
        """Finished calls, newest first, with their flow paths (GET /calls/recent)."""
        finished = self.calls.finished_calls if self.calls else []
        calls = recent_calls(finished, self.flow_app.recent if self.flow_app else (), limit)
        if self.flow_reload is not None:
            self.flow_reload.add_versions(calls)  # the flow version each call ran
        return calls

    async def start(self) -> None:
        """Bind every socket and start serving."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        application = self._application or await self._default_application()
        if self.flow_app is not None:
            self.flow_reload = FlowReload(cfg, self.metrics.registry)
            await self.flow_reload.start(self.flow_app)  # new calls: registry.current()
        self.history = await asyncio.to_thread(
            HistoryStore, cfg.data_dir / DB_NAME, region=cfg.region
        )
        db = cfg.data_dir / DB_NAME
        self.audit = await asyncio.to_thread(AuditLog, db)
        self.admin = await asyncio.to_thread(RecordingAdmin, cfg.data_dir, db, self.audit)
        await asyncio.to_thread(self.retention_settings.load_file, cfg.flows_dir / QUEUES_FILE)
        if self.flow_reload is not None:  # queues.yaml's retention changes apply live
            self.flow_reload.registry.subscribe(self.retention_settings.follow)
        if cfg.capture:
            self.recorder = await self._start_recorder()
        await self.sip.start(cfg.sip_host, cfg.sip_port)
        # The UA must advertise the port actually bound (port 0 in tests).
        self.ua.local_port = self.sip.port
        self.rtp_poller = RtpPoller()
        # Opened here, on the loop's thread: the clock reads this thread's clocks.
        self.thread_times = ThreadTimes()
        late_ticks = self.metrics.late_ticks
        self.clock = MediaClock(
            loop,
            on_lateness=self.metrics.tick_lateness.observe,
            after_send=self.gc_pacer,
            poll=self.rtp_poller.poll,
            on_work=self.metrics.tick_work.observe,
            thread_times=self.thread_times.sample,
            on_late=lambda cause, _late: late_ticks.labels(cause=cause).inc(),
        )
        ports = RtpPortPool(cfg.sip_host, cfg.rtp_low, cfg.rtp_high, self.rng, self.rtp_poller)
        self.outbound = OutboundCalls(
            sip=self.sip,
            ports=ports,
            clock=self.clock,
            totals=self.totals,
            rng=self.rng,
            codecs=cfg.codecs,
            jitter_ms=cfg.jitter_ms,
        )
        self.calls = CallManager(
            sip=self.sip,
            ports=ports,
            clock=self.clock,
            metrics=self.metrics,
            totals=self.totals,
            application=application,
            rng=self.rng,
            codecs=cfg.codecs,
            ring_seconds=cfg.ring_seconds,
            jitter_ms=cfg.jitter_ms,
            recorder=self.recorder,
            max_calls=cfg.max_calls,
        )
        if self.flow_app is not None:
            self.acd = await start_acd(
                flows_dir=cfg.flows_dir,
                data_dir=cfg.data_dir,
                outbound=self.outbound,
                prompts=self.flow_app.prompts,
                from_uri=f"sip:acd@{self.sip.host}:{self.sip.port}",
                registry=self.metrics.registry,
            )
            if self.acd is not None:
                self.flow_app.queue = self.acd  # queue nodes reach the ACD
                if self.recorder is not None:
                    self.acd.on_stay.append(self.recorder.note_queue)
                    self.acd.recorder = self.recorder  # callback calls are recorded too
                if self.flow_reload is not None:  # queues.yaml changes apply live
                    self.flow_reload.registry.subscribe(self.acd.follow)
        if self.flow_app is not None and self.recorder is not None:
            recorder = self.recorder
            self.flow_app.on_record.append(lambda r: recorder.note_flow(r.call_id, r.as_dict()))
            self.flow_app.recorder = recorder  # recording nodes: secure pause
        web_app = build_app(self.metrics, self.health, self.recent_calls)
        if self.recorder is not None:  # before /acd/: it serves the agents' pause too
            agent_call = self.acd.agent_call if self.acd is not None else None
            add_recording_routes(web_app, self.recorder, agent_call)
        if self.admin is not None:
            add_admin_routes(
                web_app,
                self.admin,
                policy=lambda: self.retention,
                wall=time.time,
                retention_status=self.retention_settings.status,
            )
        if self.history is not None:
            web_app.add_subapp("/history/", history_app(self.history))
        if self.acd is not None:
            web_app.add_subapp("/acd/", acd_app(self.acd))
        if self.flow_reload is not None:
            self.flow_reload.mount(web_app)
        self.http = HttpServer(web_app, cfg.http_host, cfg.http_port)
        await self.http.start()
        if self.admin is not None:  # the policy may come with the next queues.yaml
            self._retention_task = asyncio.ensure_future(self._retention_loop())
        if cfg.transcribe_workers > 0:
            self.transcription = WorkerSupervisor(
                WorkerConfig(
                    data_dir=cfg.data_dir,
                    backend=cfg.transcribe_backend,
                    model_dir=Path(cfg.transcribe_model) if cfg.transcribe_model else None,
                    cpu_threads=cfg.transcribe_threads,
                    nice=cfg.transcribe_nice,
                ),
                cfg.transcribe_workers,
                registry=self.metrics.registry,
            )
            await self.transcription.start()  # returns at once: models load in the children
        log.info(
            "engine.started",
            sip=f"{self.sip.host}:{self.sip.port}",
            http=f"{cfg.http_host}:{self.http.port}",
            rtp=f"{cfg.rtp_low}-{cfg.rtp_high}",
            data=str(cfg.data_dir),
        )

    async def _start_recorder(self) -> Recorder:
        """The recorder, its storage in a child process (files, rows, audit, history,
        transcription queue: see :mod:`recordings.storage`), after repairing what
        a crash left."""
        cfg = self.config
        factory = partial(engine_storage, cfg.data_dir / DB_NAME, cfg.region, cfg.transcribe)
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
        runner = await ProcessRunner.start(factory, log_level=level)
        recorder = Recorder(cfg.data_dir, runner=runner)
        recovered = await asyncio.to_thread(recorder.recover)
        if recovered:
            log.warning("recordings.recovered", count=len(recovered))
        return recorder

    async def _retention_loop(self) -> None:
        """Apply the retention policy in force at start-up, every ``retention_every`` s
        and as soon as a new one is put in force (queues.yaml saved)."""
        assert self.admin is not None
        changed = asyncio.Event()
        self.retention_settings.on_change.append(lambda _policy: changed.set())
        while True:
            changed.clear()
            try:
                policy = self.retention
                if policy.default or policy.queues:
                    await asyncio.to_thread(self.admin.apply_retention, policy, now=time.time())
            except Exception:
                log.exception("retention.failed", hint="the next pass tries again")
            with contextlib.suppress(TimeoutError):  # a new policy, or the next hour
                await asyncio.wait_for(changed.wait(), self.config.retention_every)

    def health(self) -> dict[str, Any]:
        calls = self.calls
        return {
            "status": "ok" if calls is not None else "starting",
            "calls_active": len(calls.legs) if calls else 0,
            "sip": f"{self.sip.host}:{self.sip.port}",
            "media_streams": self.clock.members() if self.clock else 0,
            "media_scheduling": current_policy(),
            "media_build": _media_build(),
            "transcription": self.transcription.status() if self.transcription else None,
        }

    async def stop(self) -> None:
        """Hang up every call (BYE), wait briefly for answers, close all sockets."""
        workers = None  # the transcription workers finish their job in hand meanwhile
        if self.transcription is not None:
            workers = asyncio.ensure_future(self.transcription.stop(self.config.shutdown_grace))
        if self.calls is not None:
            await self.calls.shutdown(self.config.shutdown_grace)
        if self.outbound is not None:
            await self.outbound.shutdown()
        if self.acd is not None:
            await self.acd.stop()  # saves the agents' states and the records
        if self.recorder is not None:
            await self.recorder.close()  # the last rows and listeners
        if self._retention_task is not None:
            self._retention_task.cancel()
            await asyncio.gather(self._retention_task, return_exceptions=True)
        if self.clock is not None:
            self.clock.close()
        if self.rtp_poller is not None:
            self.rtp_poller.close()
        if self.thread_times is not None:
            self.thread_times.close()
        if self.http is not None:
            await self.http.stop()
        if self.flow_app is not None:
            await self.flow_app.close()
        if self.flow_reload is not None:
            await self.flow_reload.stop()
        if workers is not None:
            await workers
        await self.sip.close()
        log.info("engine.stopped")


def _media_build() -> str:
    """``native: <build dir>`` when the media loop runs compiled (``--native``), else ``python``."""
    where = media_native.enabled()
    return "python" if where is None else f"native: {where}"


def run_engine(config: EngineConfig) -> None:
    """Run the engine on the configured event loop until SIGINT/SIGTERM.

    The default loop is uvloop (libuv): measured with bench/media_load.py on
    this machine it receives and dispatches the RTP datagrams of hundreds of
    calls at a fraction of the stock selector loop's cost, which is what
    keeps the shared 20 ms media tick on time. ``CALLCORE_LOOP=asyncio``
    selects the stock loop.
    """
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if config.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(run_forever(config))


async def run_forever(config: EngineConfig) -> None:
    """Run until SIGINT or SIGTERM, then stop cleanly."""
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    if config.realtime:  # this is the loop's thread: the media clock runs here
        problem = apply_realtime(config.realtime)
        if problem is None:
            log.info("engine.realtime", policy="SCHED_RR", priority=config.realtime)
        else:
            log.warning("engine.realtime_refused", priority=config.realtime, error=problem)
    engine = Engine(config)
    await engine.start()
    engine.gc_pacer.install()  # after start-up: its objects are frozen out of GC
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("engine.stopping", calls=len(engine.calls.legs) if engine.calls else 0)
    await engine.stop()
