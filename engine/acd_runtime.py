"""The ACD on real calls: an asyncio shell around the pure :class:`acd.core.Router`.

The flow driver hands a caller over through :meth:`AcdRuntime.enqueue` (the
:class:`~engine.flowapp.QueuePort`); from then on this module

* feeds the router its inputs, each with ``now`` read here and nowhere
  below (:class:`AcdClock`: the loop's monotonic clock anchored to Unix time
  at start-up, so times stay comparable across restarts), and arms one timer
  for ``router.next_deadline()``;
* carries out the router's effects:

  ``Offer``        INVITE the agent's phone (``uri:`` in queues.yaml) from our
                   RTP pool (:mod:`engine.outbound`); a failure (busy, 603,
                   timeout, unreachable) is an ``AgentDecline``, an answer an
                   ``AgentAnswer``, and when the router takes it the caller's
                   and agent's media are bridged (:class:`media.bridge.Bridge`);
  ``CancelOffer``  CANCEL the ringing phone (ring-no-answer, abandon, ...);
  ``Announce``     play "You are number N in line. Your wait is less than M
                   minutes." (the engine's TTS, sentences rendered ahead) in
                   place of the comfort tone that plays between announcements
                   (and while the agent holds the call);
  ``Overflow``     end the wait with ``QueueResult("overflow")`` (or
                   ``"no_agents"``) so the flow takes its overflow branch
                   (queue actions ``hangup`` and ``transfer`` are done first);

* offers callbacks when the flow's queue node asks for them
  (``callback: {digit: "1", after: 30}``): the offer is played between
  announcements; on the digit the router takes a ``RequestCallback`` (the
  caller keeps their place), the caller hears the confirmation and the flow
  ends the call. When the callback's turn comes the router offers it like a
  call: the agent's phone rings, and once the agent answers the customer is
  dialled (``callbacks: {dial: "sip:{number}@..."}`` in queues.yaml) and the
  two legs are bridged. A customer leg that fails (busy, no answer within
  ``ring_timeout``, unreachable) is saved as an attempt, the agent is freed
  and the callback waits its turn again after ``retry_after`` seconds, up to
  ``attempts`` legs; pending callbacks survive a restart;
* reports back what the phones do: the caller hanging up while waiting or
  ringing (abandoned), either side hanging up after the bridge (the call is
  complete, the agent goes to wrap-up, the flow resumes with
  ``QueueResult("answered")`` when the caller is still there), hold by the
  agent's phone (re-INVITE), and the caller's digits relayed to the agent
  as RFC 4733 while bridged;
* keeps the router's state, its records and the metrics in the engine's
  database (``DATA/callcore.db``, :class:`acd.store.MetricsStore`), saved
  shortly after every change and on stop: the router's records feed the
  15-minute intervals of :class:`acd.metrics.AcdMetrics` (per queue and per
  agent) and the Prometheus series of :mod:`engine.acd_metrics`. On start the saved agents come
  back as they were (logged in, not ready with their reason, in wrap-up);
  calls saved as waiting or talking have no SIP leg any more and end as
  abandoned/completed.

Effects are executed synchronously while an input is handled; an input that
an effect causes (a phone failing at once) is queued and handled right
after, in order, so the router sees time move forward only.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from acd.config import AcdConfigError, parse_config
from acd.core import Router
from acd.events import (
    AcdError,
    AgentAnswer,
    AgentDecline,
    AgentLogin,
    AgentLogout,
    AgentNotReady,
    AgentReady,
    AgentStateChanged,
    Announce,
    CallbackAccepted,
    CallbackRefused,
    CancelOffer,
    Effect,
    EndWrapUp,
    EnqueueCall,
    Hangup,
    Heartbeat,
    Hold,
    Input,
    Offer,
    Overflow,
    RequestCallback,
)
from acd.metrics import AcdMetrics
from acd.model import AcdConfig, AgentState, CallState
from acd.records import Record
from acd.store import MetricsStore, MetricsStoreError
from engine.acd_announce import Announcer, PlayedAnnouncement, comfort_tone
from engine.acd_metrics import AcdPrometheus
from engine.flowprompts import PromptLibrary
from engine.outbound import DialError, OutboundCalls, OutboundLeg
from ivr.actions import CallbackOption, Enqueue, QueueResult
from ivr.loader import QUEUES_FILE
from ivr.registry import LiveFlows
from ivr.versions import DB_NAME
from media.bridge import Bridge
from media.call import Call, CallHungUp
from media.prompts.player import Prompt
from media.prompts.tones import ringback
from media.rtp.endpoint import PortRangeExhausted
from recordings.recorder import Recorder

__all__ = [
    "AcdClock",
    "AcdRequestError",
    "AcdRuntime",
    "start_acd",
]

log = structlog.get_logger("engine.acd")

RATE = 8000
STATE_REQUESTS = ("login", "ready", "not_ready", "logout")


class AcdClock:
    """``now`` for the router: the loop's monotonic time on a Unix-time origin
    (taken once), never going backwards; converts router times to loop times."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, wall: Callable[[], float] = time.time
    ) -> None:
        self._loop = loop
        self._origin_loop = loop.time()
        self._origin_wall = wall()
        self._last = -math.inf

    def now(self) -> float:
        """Seconds (Unix time), non-decreasing."""
        t = self._origin_wall + (self._loop.time() - self._origin_loop)
        if t > self._last:
            self._last = t
        return self._last

    def advance_to(self, t: float) -> None:
        """Make the next :meth:`now` at least ``t`` (a timer that fired a hair early,
        or a restored state saved by a clock that was ahead)."""
        if t > self._last:
            self._last = t

    def loop_time(self, t: float) -> float:
        """The loop time at which router time ``t`` comes."""
        return self._origin_loop + (t - self._origin_wall)


class AcdRequestError(ValueError):
    """A supervisor request that cannot be done; ``status`` is the HTTP status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


@dataclass(eq=False)
class _Waiter:
    """A caller the flow handed to the ACD, until the wait (and agent leg) ends."""

    id: str
    call: Call
    request: Enqueue
    queue: str
    joined: float
    done: asyncio.Future[QueueResult]
    pending: deque[tuple[Prompt, Announce | None, str]] = field(default_factory=deque)
    """What the treatment plays next: announcements (and callback offers: None)."""
    played: list[PlayedAnnouncement] = field(default_factory=list)
    holding: bool = False
    treatment: asyncio.Task[None] | None = None
    music: asyncio.Task[None] | None = None
    """The comfort tone played while the agent holds the call."""
    agent: str | None = None
    leg: OutboundLeg | None = None
    bridge: Bridge | None = None
    answered_at: float | None = None
    overflow: Overflow | None = None
    offers: asyncio.Task[None] | None = None
    """Plays the callback offer (when the flow's queue node has one)."""
    callback_offered: bool = False
    """The caller has started hearing the callback offer: the digit counts."""
    callback: _Callback | None = None
    """The caller asked for a callback and the router took it."""


@dataclass(eq=False)
class _Callback:
    """A caller who left the line to be called back: ``id`` is the router's call
    of the current attempt (the caller's own call id first, then ``origin~N``)."""

    id: str
    origin: str
    queue: str
    number: str
    priority: int
    skills: dict[str, int]
    requested_at: float
    caller: str = ""
    pbx: str = ""
    """``host:port`` the caller's call came from (``{pbx}`` in the dial template)."""
    attempts: int = 0
    """Customer legs dialled so far."""
    agent: str | None = None
    agent_leg: OutboundLeg | None = None
    customer_leg: OutboundLeg | None = None
    bridge: Bridge | None = None
    retry_at: float | None = None
    """When the next attempt rejoins the queue (router clock), while waiting to retry."""
    retry: asyncio.TimerHandle | None = None

    def saved(self) -> dict[str, Any]:
        """What survives a restart."""
        return {
            "id": self.id,
            "origin": self.origin,
            "queue": self.queue,
            "number": self.number,
            "priority": self.priority,
            "skills": dict(self.skills),
            "requested_at": self.requested_at,
            "caller": self.caller,
            "pbx": self.pbx,
            "attempts": self.attempts,
            "retry_at": self.retry_at,
        }

    @classmethod
    def from_saved(cls, item: Mapping[str, Any]) -> _Callback:
        """The inverse of :meth:`saved` (KeyError/TypeError/ValueError on bad data)."""
        return cls(
            id=str(item["id"]),
            origin=str(item["origin"]),
            queue=str(item["queue"]),
            number=str(item["number"]),
            priority=int(item["priority"]),
            skills={str(k): int(v) for k, v in dict(item["skills"]).items()},
            requested_at=float(item["requested_at"]),
            caller=str(item.get("caller") or ""),
            pbx=str(item.get("pbx") or ""),
            attempts=int(item["attempts"]),
            retry_at=None if item.get("retry_at") is None else float(item["retry_at"]),
        )

    def view(self, now: float) -> dict[str, Any]:
        """As GET /acd/callbacks shows it."""
        return {
            "callback": self.origin,
            "call": self.id,
            "queue": self.queue,
            "number": self.number,
            "caller": self.caller,
            "requested_at": self.requested_at,
            "waited": round(now - self.requested_at, 3),
            "attempts": self.attempts,
            "agent": self.agent,
            "connected": self.bridge is not None and not self.bridge.closed,
            "retry_at": self.retry_at,
        }


@dataclass(eq=False)
class _Ring:
    """One offer being rung: the agent's phone leg, once dialled."""

    call: str
    agent: str
    leg: OutboundLeg | None = None
    cancelled: bool = False
    task: asyncio.Task[None] | None = None


class AcdRuntime:
    """The ACD serving real calls (see the module docstring).

    ``outbound`` places the agent legs; ``prompts`` speaks the announcements
    (None: announcements are logged, not played); ``store`` keeps state and
    records (None: nothing survives a restart); ``from_uri`` is our address
    in the INVITEs to agents; ``hold`` is played between announcements.
    """

    def __init__(
        self,
        config: AcdConfig,
        *,
        outbound: OutboundCalls,
        prompts: PromptLibrary | None,
        store: MetricsStore | None,
        from_uri: str,
        language: str = "en",
        hold: Prompt | None = None,
        save_delay: float = 0.5,
        prerender_positions: int = 10,
        prerender_minutes: int = 15,
        config_text: str | None = None,
        config_file: Path = Path("queues.yaml"),
        prometheus: AcdPrometheus | None = None,
    ) -> None:
        self.router = Router(config)
        self.config_text = config_text
        """The queues.yaml text in force (hot reload compares against it)."""
        self.config_file = config_file
        self.config_error: list[str] | None = None
        """The errors of the last queues.yaml that was refused (None: in force)."""
        self.outbound = outbound
        self.announcer = Announcer(
            prompts, language=language, positions=prerender_positions, minutes=prerender_minutes
        )
        self.store = store
        self.from_uri = from_uri
        self.hold = hold or Prompt(comfort_tone(), name="acd:comfort-tone")
        self.save_delay = save_delay
        self.metrics = AcdMetrics()
        self.prometheus = prometheus
        """The ACD's Prometheus series (None: not exported)."""
        self.clock: AcdClock | None = None
        self.played: OrderedDict[str, list[PlayedAnnouncement]] = OrderedDict()
        """Announcements per call id (live and the last 500 finished calls)."""
        self.answered: OrderedDict[str, dict[str, Any]] = OrderedDict()
        """Bridged calls: call id -> agent, wait, answered/ended times (last 500)."""
        self.on_stay: list[Callable[[str, dict[str, Any]], None]] = []
        self.recorder: Recorder | None = None
        """Records the callback calls (the engine's recorder; inbound calls record themselves)."""
        """Told ``(SIP call id, stay)`` when a caller's time in a queue ends: queue,
        enqueued_at, answered_at, left_at (router times: Unix seconds), outcome, agent."""
        self._waiters: dict[str, _Waiter] = {}
        self._callbacks: dict[str, _Callback] = {}
        """Callbacks in the router, by the router's call id."""
        self._retrying: dict[str, _Callback] = {}
        """Callbacks whose customer leg failed, until they rejoin the queue (by origin)."""
        self._rings: dict[tuple[str, str], _Ring] = {}
        self._inbox: deque[Input | None] = deque()
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._save_handle: asyncio.TimerHandle | None = None
        self._unsaved: list[Record] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    # ================================================================ life
    async def start(self) -> None:
        """Load the saved state (if any), render the announcement sentences, arm the timer."""
        self._loop = asyncio.get_running_loop()
        self.clock = AcdClock(self._loop)
        if self.store is not None:
            try:
                self.metrics = self.store.load()
                saved = self.store.load_router()
            except MetricsStoreError as exc:
                log.error("acd.load_failed", error=str(exc))
                saved = None
            if saved is not None:
                self._restore(saved)
        if self.prometheus is not None:
            self.prometheus.attach(self)
        self._spawn(self.announcer.prerender(self.router.config.queues.values()))
        self._after()
        log.info(
            "acd.started",
            queues=sorted(self.router.config.queues),
            agents=[(a.name, a.state.value) for a in self.router.agents()],
        )

    def _restore(self, saved: dict[str, Any]) -> None:
        assert self.clock is not None
        saved_now = saved.get("now")
        if isinstance(saved_now, int | float):
            self.clock.advance_to(float(saved_now))
        now = self.clock.now()
        try:
            effects = self.router.restore(saved, now)
        except AcdError as exc:
            log.error(
                "acd.restore_failed", error=str(exc), hint="starting with every agent offline"
            )
            self.router = Router(self.router.config)
            return
        saved_callbacks: dict[str, _Callback] = {}
        for item in saved.get("callbacks") or ():
            try:
                cb = _Callback.from_saved(item)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.error("acd.callback_unreadable", item=repr(item)[:200], error=str(exc))
                continue
            saved_callbacks[cb.id] = cb
        # Callbacks waiting their turn need no SIP leg: they keep their place.
        lost: list[_Callback] = []
        for call in self.router.calls():
            if call.callback is None:
                continue
            cb = (
                saved_callbacks.pop(call.id)
                if call.id in saved_callbacks
                else _Callback(
                    call.id,
                    call.id,
                    call.queue,
                    call.callback,
                    call.own_priority,
                    dict(call.skills),
                    call.enqueued_at,
                )
            )
            cb.queue = call.queue
            if call.state is CallState.WAITING:
                self._callbacks[call.id] = cb
            else:
                lost.append(cb)  # its agent (or customer) leg died with the engine
        for effect in effects:
            self._execute(effect)
        # Calls do not survive a restart (their SIP legs died with the engine).
        for call in self.router.calls():
            if call.id not in self._callbacks:
                self._input(Hangup(self.clock.now(), call.id))
        for cb in lost:  # rejoin the queue at once (no customer leg was tried)
            self._schedule_retry(cb, 0.0)
        for cb in saved_callbacks.values():
            if cb.retry_at is not None:
                self._schedule_retry(cb, max(0.0, cb.retry_at - self.clock.now()))
        log.info(
            "acd.restored",
            agents=[(a.name, a.state.value, a.reason) for a in self.router.agents()],
            callbacks=sorted(self._callbacks),
            retrying=sorted(self._retrying),
        )

    async def stop(self) -> None:
        """Hang up agent legs, stop timers, save state and records, close the store
        (idempotent)."""
        if self._stopped:
            return
        for _ in range(3):  # let cancelled callers' coroutines report their hang-ups
            await asyncio.sleep(0)
        self._stopped = True
        for ring in list(self._rings.values()):
            ring.cancelled = True
            if ring.leg is not None:
                self.outbound.hangup(ring.leg)
        for waiter in list(self._waiters.values()):
            if waiter.leg is not None:
                self.outbound.hangup(waiter.leg)
        for cb in [*self._callbacks.values(), *self._retrying.values()]:
            if cb.retry is not None:
                cb.retry.cancel()
                cb.retry = None
            for leg in (cb.agent_leg, cb.customer_leg):
                if leg is not None:
                    self.outbound.hangup(leg)
            if cb.bridge is not None:  # it was served: it ends with the engine
                cb.bridge.close()
                self._callbacks.pop(cb.id, None)
                self._input(Hangup(self.now(), cb.id))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        self._save()
        if self.store is not None:
            self.store.close()
        log.info("acd.stopped")

    def reload(self, text: str) -> bool:
        """Hot reload: put a new queues.yaml text in force without dropping anyone
        (:meth:`acd.core.Router.reconfigure`: waiting callers keep their place,
        agents their state; callers of a removed queue overflow). A text with
        errors is refused, logged and kept in :attr:`config_error`; the
        configuration in force stays. Returns whether the text was applied."""
        if text == self.config_text:
            return False
        try:
            config, warnings = parse_config(text, self.config_file)
            for diagnostic in warnings:
                log.warning("acd.config_warning", problem=str(diagnostic))
            effects = self.router.reconfigure(self.now(), config)
        except AcdConfigError as exc:
            self.config_error = str(exc).splitlines()[1:]
            for problem in self.config_error:
                log.error("acd.reload_refused", problem=problem)
            return False
        except AcdError as exc:
            self.config_error = [str(exc)]
            log.error("acd.reload_refused", problem=str(exc))
            return False
        self.config_text = text
        self.config_error = None
        for effect in effects:
            self._execute(effect)
        self._after()
        log.info(
            "acd.reconfigured",
            queues=sorted(config.queues),
            agents=sorted(config.agents),
        )
        return True

    def follow(self, live: LiveFlows[Any]) -> None:
        """A flow-set swap of the hot-reload registry: :meth:`reload` its queues.yaml."""
        sources: Mapping[str, str] = getattr(live.flowset, "sources", {})
        self.reload(sources.get(QUEUES_FILE, ""))

    def heartbeat(self, name: str, ttl: float | None = None) -> None:
        """The agent's softphone or desktop is alive: their presence lease runs
        ``ttl`` more seconds (default: the configured ``lease``). Raises
        :class:`AcdRequestError` (404 unknown agent, 400 bad ttl, 409 logged out)."""
        if name not in self.router.config.agents:
            known = ", ".join(self.router.config.agents) or "none"
            raise AcdRequestError(404, f"unknown agent {name!r} (known: {known})")
        if ttl is not None and not (0 < ttl <= 86400):
            raise AcdRequestError(400, f"ttl must be seconds between 0 and 86400, not {ttl!r}")
        if self.router.agent(name).state is AgentState.OFFLINE:
            raise AcdRequestError(409, f"agent {name!r} is logged out: log in first")
        self._input(Heartbeat(self.now(), name, ttl))

    def agent_call(self, name: str) -> str | None:
        """The SIP call id of the caller ``name`` is bridged to (None: not on a call)."""
        for waiter in self._waiters.values():
            if waiter.agent == name and waiter.bridge is not None and not waiter.bridge.closed:
                return waiter.call.info.call_id
        return None

    def now(self) -> float:
        """The router's clock (see :class:`AcdClock`)."""
        assert self.clock is not None, "AcdRuntime.start() was not called"
        return self.clock.now()

    # =========================================================== the port
    async def enqueue(self, call: Call, request: Enqueue) -> QueueResult:
        """Queue the caller; returns when the wait (or the agent leg) is over.
        Raises :class:`~media.call.CallHungUp` when the caller hangs up."""
        if request.queue not in self.router.config.queues:
            log.error(
                "acd.unknown_queue",
                call_id=call.info.call_id,
                queue=request.queue,
                hint="add the queue to queues.yaml (the flow names one the ACD lacks)",
            )
            return QueueResult("no_agents")
        loop = asyncio.get_running_loop()
        cid = call.info.call_id
        if cid in self._waiters or self.router.call(cid) is not None:
            cid = f"{cid}#{len(self.played)}"
        now = self.now()
        waiter = _Waiter(cid, call, request, request.queue, now, loop.create_future())
        self._waiters[cid] = waiter
        self.played[cid] = waiter.played
        while len(self.played) > 500 + len(self._waiters):
            self.played.popitem(last=False)
        waiter.treatment = self._spawn(self._treatment(waiter))
        if request.callback is not None:
            if self.router.config.callbacks.dial is None:
                log.warning(
                    "acd.callback_not_offered",
                    call_id=cid,
                    hint="give queues.yaml `callbacks: {dial: sip:{number}@HOST}` to offer them",
                )
            else:
                waiter.offers = self._spawn(self._offer_callback(waiter, request.callback))
        log.info("acd.enqueue", call_id=cid, queue=request.queue, skills=dict(request.skills))
        try:
            self._input(
                EnqueueCall(
                    now,
                    cid,
                    request.queue,
                    request.priority,
                    dict(request.skills),
                    request.max_wait,
                )
            )
            if not waiter.done.done() and self.router.call(cid) is None:
                waiter.done.set_result(QueueResult("no_agents"))  # refused (logged)
            result = await self._wait(waiter)
        finally:
            self._leave(waiter)
        call.flush_digits()
        overflow = waiter.overflow
        if overflow is not None:
            await self._overflow_action(waiter, overflow)
        return result

    async def _wait(self, waiter: _Waiter) -> QueueResult:
        """Until the result; digits typed while bridged go to the agent."""
        call = waiter.call
        while not waiter.done.done():
            digit_task: asyncio.Future[str | None] = asyncio.ensure_future(call.get_digit(None))
            waits: set[asyncio.Future[Any]] = {waiter.done, digit_task}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not digit_task.done():
                    digit_task.cancel()
            if digit_task.done() and not digit_task.cancelled():
                digit = digit_task.result()  # raises CallHungUp when the caller left
                if digit is not None and waiter.bridge is not None:
                    sent = waiter.bridge.relay_digit(digit)
                    log.info("acd.digit_relayed", call_id=waiter.id, digit=digit, sent=sent)
                elif digit is not None and self._wants_callback(waiter, digit):
                    self._request_callback(waiter)
        return waiter.done.result()

    def _leave(self, waiter: _Waiter) -> None:
        """The caller's time in the ACD is over (result, hang-up or cancellation)."""
        self._waiters.pop(waiter.id, None)
        for task in (waiter.treatment, waiter.offers):
            if task is not None and not task.done():
                task.cancel()
        self._stop_music(waiter)
        session = waiter.call.session
        if not session.closed:
            session.player.clear()
        if self.router.call(waiter.id) is not None and waiter.id not in self._callbacks:
            self._input(Hangup(self.now(), waiter.id))  # abandoned, or completed if bridged
        if waiter.bridge is not None:
            waiter.bridge.close()
        if waiter.leg is not None and not waiter.leg.finished:
            self.outbound.hangup(waiter.leg)  # the caller left: BYE the agent
        self._record_answer_end(waiter)
        self._report_stay(waiter)
        if not waiter.done.done():
            waiter.done.cancel()
        # Break the cycles through the waiter (see tests/test_engine_no_cycles.py):
        # a cancelled task's traceback holds the waiter, the agent leg's hold
        # callback too; left in place, the call is freed only by a full collection.
        waiter.treatment = waiter.offers = None
        if waiter.leg is not None:
            waiter.leg.on_hold = None

    def _report_stay(self, waiter: _Waiter) -> None:
        if not self.on_stay:
            return
        if waiter.answered_at is not None:
            outcome = "answered"
        elif waiter.done.done() and not waiter.done.cancelled():
            outcome = waiter.done.result().outcome
        else:
            outcome = "abandoned"
        stay = {
            "queue": waiter.queue,
            "enqueued_at": waiter.joined,
            "answered_at": waiter.answered_at,
            "left_at": self.now(),
            "outcome": outcome,
            "agent": waiter.agent,
        }
        for listener in self.on_stay:
            try:
                listener(waiter.call.info.call_id, stay)
            except Exception:
                log.exception("acd.stay_listener_failed", call_id=waiter.id)

    async def _overflow_action(self, waiter: _Waiter, overflow: Overflow) -> None:
        action = overflow.action
        call = waiter.call
        if action.kind == "hangup":
            call.hangup()
        elif action.kind == "transfer" and action.target:
            target = action.target
            if ":" not in target.split("@", 1)[0]:
                host, port = call.info.remote_addr
                target = f"sip:{target}@{host}:{port}"
            ok, status = await call.transfer(target)
            log.info(
                "acd.overflow_transfer", call_id=waiter.id, target=target, ok=ok, status=status
            )
        elif action.kind == "voicemail":
            log.info(
                "acd.overflow_voicemail",
                call_id=waiter.id,
                mailbox=action.target,
                hint="the flow's overflow branch records voicemail (give the queue node one)",
            )

    # ========================================================== treatment
    async def _treatment(self, waiter: _Waiter) -> None:
        """Hold tone, cut by each announcement when it is ready."""
        call = waiter.call
        try:
            while True:
                if waiter.pending:
                    prompt, announce, text = waiter.pending.popleft()
                    waiter.holding = False
                    waiter.played.append(
                        PlayedAnnouncement(
                            self.now(),
                            text,
                            None if announce is None else announce.position,
                            None if announce is None else announce.ewt,
                            prompt.duration,
                        )
                    )
                    if announce is None:  # the callback offer
                        if not waiter.callback_offered:
                            self._callback_event(waiter.queue, "offered")
                        waiter.callback_offered = True
                        log.info("acd.callback_offered", call_id=waiter.id, text=text)
                    else:
                        log.info(
                            "acd.announce",
                            call_id=waiter.id,
                            text=announce.text,
                            position=announce.position,
                            ewt=None if announce.ewt is None else round(announce.ewt, 1),
                        )
                    await call.play(prompt, interruptible=False)
                    continue
                waiter.holding = True
                await call.play(self.hold, interruptible=False)  # cut by an announcement
        except CallHungUp:
            return
        finally:
            waiter.holding = False

    async def _announce(self, waiter: _Waiter, effect: Announce) -> None:
        prompt = await self.announcer.speak(effect.text)
        if prompt is None or waiter.done.done() or waiter.bridge is not None:
            return
        if waiter.id not in self._waiters or waiter.callback is not None:
            return
        waiter.pending.append((prompt, effect, effect.text))
        if waiter.holding:
            waiter.call.session.player.clear()  # the treatment loop plays it next

    # ========================================================== callbacks
    async def _offer_callback(self, waiter: _Waiter, option: CallbackOption) -> None:
        """Queue the callback offer for the treatment after ``option.after`` seconds
        (again every ``option.every``), while the caller waits in line."""
        await asyncio.sleep(option.after)
        while waiter.callback is None and waiter.bridge is None and not waiter.done.done():
            routed = self.router.call(waiter.id)
            if routed is None:
                return
            if routed.state is not CallState.WAITING:  # an agent is ringing: not now
                await asyncio.sleep(1.0)
                continue
            prompt = await self.announcer.speak(option.offer, option.language, static=False)
            if prompt is None:
                log.warning("acd.callback_offer_unspeakable", call_id=waiter.id)
                return
            if waiter.callback is not None or waiter.bridge is not None or waiter.done.done():
                return
            waiter.pending.append((prompt, None, option.offer))
            if waiter.holding:
                waiter.call.session.player.clear()  # the treatment loop plays it next
            if option.every is None:
                return
            await asyncio.sleep(option.every)

    def _wants_callback(self, waiter: _Waiter, digit: str) -> bool:
        option = waiter.request.callback
        return (
            option is not None
            and digit == option.digit
            and waiter.callback_offered
            and waiter.callback is None
            and waiter.id in self._waiters
        )

    def _request_callback(self, waiter: _Waiter) -> None:
        option = waiter.request.callback
        assert option is not None
        log.info("acd.callback_request", call_id=waiter.id, number=option.number)
        self._input(RequestCallback(self.now(), waiter.id, option.number))

    def _callback_accepted(self, effect: CallbackAccepted) -> None:
        """The router keeps the caller's place as a callback: confirm and let them go."""
        waiter = self._waiters.get(effect.call)
        cb = self._callbacks.get(effect.call)
        if cb is None:
            if waiter is None or waiter.request.callback is None:
                log.error("acd.callback_without_caller", call_id=effect.call)
                return
            info = waiter.call.info
            host, port = info.remote_addr[:2]
            cb = _Callback(
                effect.call,
                effect.call,
                effect.queue,
                waiter.request.callback.number,
                waiter.request.priority,
                dict(waiter.request.skills),
                self.now(),
                caller=info.caller_name or info.caller,
                pbx=f"{host}:{port}",
            )
            self._callbacks[effect.call] = cb
            self._callback_event(cb.queue, "requested")
        log.info(
            "acd.callback_accepted",
            call_id=effect.call,
            queue=effect.queue,
            position=effect.position,
            number=cb.number,
            attempt=cb.attempts + 1,
        )
        if waiter is not None and waiter.callback is None:
            waiter.callback = cb
            self._spawn(self._confirm_callback(waiter))

    async def _confirm_callback(self, waiter: _Waiter) -> None:
        """Stop the treatment, say the confirmation, end the wait with ``callback``."""
        option = waiter.request.callback
        assert option is not None
        for task in (waiter.treatment, waiter.offers):
            if task is not None and not task.done():
                task.cancel()
        waiter.pending.clear()
        if not waiter.call.session.closed:
            waiter.call.session.player.clear()
        prompt = await self.announcer.speak(option.confirm, option.language, static=False)
        try:
            if prompt is not None:
                waiter.played.append(
                    PlayedAnnouncement(self.now(), option.confirm, None, None, prompt.duration)
                )
                await waiter.call.play(prompt, interruptible=False)
        except CallHungUp:
            pass
        if not waiter.done.done():
            waited = self.now() - waiter.joined
            waiter.done.set_result(QueueResult("callback", waited=waited))

    def _callback_event(self, queue: str, event: str) -> None:
        if self.prometheus is not None:
            self.prometheus.callback(queue, event)

    async def _ring_callback(self, ring: _Ring, uri: str, cb: _Callback) -> None:
        """Dial the agent for a callback; once they answer, call the customer."""
        display = f"callback {cb.queue}: {cb.number}"
        leg = await self._agent_answers(
            ring, uri, display, lambda: self._callbacks.get(ring.call) is cb
        )
        if leg is None:
            return
        cb.agent = ring.agent
        cb.agent_leg = leg
        await self._call_customer(cb, leg)

    async def _call_customer(self, cb: _Callback, agent_leg: OutboundLeg) -> None:
        """The agent took the callback: dial the customer, bridge, or record the failure."""
        policy = self.router.config.callbacks
        cb.attempts += 1
        started = self.now()
        status: int | None = None
        outcome = "failed"
        customer: OutboundLeg | None = None
        self._callback_event(cb.queue, "attempted")
        target = None
        if policy.dial is not None and (cb.pbx or "{pbx}" not in policy.dial):
            target = policy.dial.format(number=cb.number, pbx=cb.pbx)
        log.info(
            "acd.callback_dial", call_id=cb.id, agent=cb.agent, target=target, attempt=cb.attempts
        )
        if target is None:
            outcome = "no_target"
        else:
            try:
                customer = await self.outbound.dial(
                    target, from_uri=self.from_uri, display=f"{cb.queue} callback"
                )
            except (DialError, PortRangeExhausted) as exc:
                log.error("acd.callback_dial_failed", call_id=cb.id, target=target, error=str(exc))
        if customer is not None:
            cb.customer_leg = customer
            player = agent_leg.session.player if agent_leg.session is not None else None
            if player is not None:  # the agent hears the customer's phone ring
                cycles = max(1, math.ceil(policy.ring_timeout / 6.0))
                player.enqueue(Prompt(ringback(cycles), name="acd:ringback"), interruptible=False)
            agent_gone = asyncio.ensure_future(agent_leg.ended.wait())
            waits: set[asyncio.Future[Any]] = {customer.outcome, agent_gone}
            try:
                await asyncio.wait(
                    waits,
                    timeout=policy.ring_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                agent_gone.cancel()
            status = customer.outcome.result() if customer.outcome.done() else 408
            if agent_leg.finished:
                outcome = "agent_gone"
            elif status == 200:
                outcome = "connected"
            if player is not None and not agent_leg.finished:
                player.clear()
            if outcome != "connected":
                self.outbound.hangup(customer)  # CANCEL on no answer
        self._save_attempt(cb, started, status, outcome)
        if outcome == "connected":
            assert customer is not None
            await self._callback_connected(cb, agent_leg, customer)
            return
        self._callback_event(cb.queue, "failed")
        log.info(
            "acd.callback_failed",
            call_id=cb.id,
            agent=cb.agent,
            status=status,
            outcome=outcome,
            attempt=cb.attempts,
        )
        self.outbound.hangup(agent_leg)
        self._callbacks.pop(cb.id, None)
        agent = cb.agent
        cb.agent = None
        cb.agent_leg = cb.customer_leg = None
        self._input(Hangup(self.now(), cb.id))
        if agent is not None and self.router.agent(agent).state is AgentState.WRAP_UP:
            self._input(EndWrapUp(self.now(), agent))  # no customer: nothing to wrap up
        if cb.attempts < policy.attempts and policy.dial is not None:
            self._schedule_retry(cb, policy.retry_after)
        else:
            self._give_up(cb, f"{cb.attempts} attempt(s) failed")

    async def _callback_connected(
        self, cb: _Callback, agent_leg: OutboundLeg, customer: OutboundLeg
    ) -> None:
        assert agent_leg.session is not None and customer.session is not None
        recorded = None
        if self.recorder is not None:  # a callback is a call like any other: recorded
            # left the customer, right what they hear (the agent); the customer is
            # the "caller" of the row so the call lands in their history
            recorded = replace(customer.info, caller=cb.number, callee=customer.info.caller)
            customer.session.capture = self.recorder.open(recorded, customer.session)
        cb.bridge = Bridge(agent_leg.session, customer.session)
        now = self.now()
        self._callback_event(cb.queue, "connected")
        routed = self.router.call(cb.id)
        answered_at = routed.answered_at if routed is not None else None
        self.answered[cb.id] = {
            "call": cb.id,
            "queue": cb.queue,
            "agent": cb.agent,
            "wait": (answered_at or now) - (routed.entered_at if routed else cb.requested_at),
            "answered_at": answered_at,
            "ended_at": None,
            "caller_codec": customer.session.codec.name,
            "agent_codec": agent_leg.session.codec.name,
            "agent_telephone_event": agent_leg.session.te_pt is not None,
            "callback": {"number": cb.number, "connected_at": now, "attempt": cb.attempts},
        }
        while len(self.answered) > 500:
            self.answered.popitem(last=False)
        log.info(
            "acd.callback_bridged",
            call_id=cb.id,
            agent=cb.agent,
            number=cb.number,
            attempt=cb.attempts,
            customer_codec=customer.session.codec.name,
            agent_codec=agent_leg.session.codec.name,
        )
        ends = [asyncio.ensure_future(leg.ended.wait()) for leg in (agent_leg, customer)]
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in ends:
                task.cancel()
        cb.bridge.close()
        self.outbound.hangup(agent_leg)
        self.outbound.hangup(customer)
        if recorded is not None and self.recorder is not None:
            by = "customer" if customer.ended_by_remote else "agent"
            self.recorder.call_done(recorded.call_id, f"callback-{by}-hangup")
        item = self.answered.get(cb.id)
        if item is not None:
            item["ended_at"] = self.now()
        self._callbacks.pop(cb.id, None)
        self._input(Hangup(self.now(), cb.id))  # completed: the agent goes to wrap-up
        log.info(
            "acd.callback_ended",
            call_id=cb.id,
            agent=cb.agent,
            by="customer" if customer.ended_by_remote else "agent",
        )

    def _save_attempt(
        self, cb: _Callback, started: float, status: int | None, outcome: str
    ) -> None:
        if self.store is None:
            return
        try:
            self.store.add_callback_attempt(
                {
                    "callback": cb.origin,
                    "call": cb.id,
                    "queue": cb.queue,
                    "number": cb.number,
                    "attempt": cb.attempts,
                    "agent": cb.agent,
                    "started": started,
                    "ended": self.now(),
                    "status": status,
                    "outcome": outcome,
                }
            )
        except MetricsStoreError as exc:
            log.error("acd.callback_attempt_not_saved", call_id=cb.id, error=str(exc))

    def _schedule_retry(self, cb: _Callback, delay: float) -> None:
        """The callback rejoins its queue (at the back) in ``delay`` seconds."""
        if self._loop is None or self._stopped:
            return
        cb.retry_at = self.now() + delay
        self._retrying[cb.origin] = cb
        cb.retry = self._loop.call_later(delay, self._retry_callback, cb)
        self._schedule_save()
        log.info("acd.callback_retry_scheduled", callback=cb.origin, delay=delay)

    def _retry_callback(self, cb: _Callback) -> None:
        cb.retry = None
        cb.retry_at = None
        self._retrying.pop(cb.origin, None)
        if self._stopped:
            return
        if cb.queue not in self.router.config.queues:
            self._give_up(cb, f"queue {cb.queue!r} is no longer configured")
            return
        cid = f"{cb.origin}~{cb.attempts + 1}"
        while self.router.call(cid) is not None or cid in self._callbacks:
            cid += "+"
        cb.id = cid
        self._callbacks[cid] = cb
        now = self.now()
        self._input(EnqueueCall(now, cid, cb.queue, cb.priority, dict(cb.skills), None, cb.number))
        if self.router.call(cid) is None and self._callbacks.get(cid) is cb:
            self._callbacks.pop(cid, None)
            self._give_up(cb, "the queue refused it (no agents, full or closed)")

    def _give_up(self, cb: _Callback, why: str) -> None:
        self._callback_event(cb.queue, "given_up")
        self._schedule_save()
        log.warning(
            "acd.callback_given_up",
            callback=cb.origin,
            number=cb.number,
            attempts=cb.attempts,
            why=why,
        )

    def callbacks_view(self) -> list[dict[str, Any]]:
        """Callbacks waiting their turn, being served, or waiting to retry."""
        now = self.now()
        items = [*self._callbacks.values(), *self._retrying.values()]
        return [cb.view(now) for cb in sorted(items, key=lambda c: c.requested_at)]

    # ============================================================ inputs
    def _input(self, event: Input | None) -> None:
        """Handle ``event`` (None: the timer) and the inputs its effects cause, in order."""
        self._inbox.append(event)
        if self._busy:
            return
        self._busy = True
        try:
            while self._inbox:
                item = self._inbox.popleft()
                try:
                    if item is None:
                        effects = self.router.on_timer(self.now())
                    else:
                        effects = self.router.handle(item)
                except AcdError as exc:
                    log.error("acd.input_refused", input=repr(item)[:200], error=str(exc))
                    continue
                for effect in effects:
                    try:
                        self._execute(effect)
                    except Exception:
                        log.exception("acd.effect_failed", effect=repr(effect)[:200])
        finally:
            self._busy = False
        self._after()

    def _after(self) -> None:
        records = self.router.drain_records()
        if records:
            self.metrics.feed_all(records)
            if self.prometheus is not None:
                self.prometheus.feed(records)
            self._unsaved.extend(records)
            self._schedule_save()
        self._arm()

    def _arm(self) -> None:
        if self._stopped or self._loop is None or self.clock is None:
            return
        deadline = self.router.next_deadline()
        if self._timer is not None:
            if deadline == self._timer_at:
                return
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(self.clock.loop_time(deadline), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._timer_at is not None and self.clock is not None:
            self.clock.advance_to(self._timer_at)
        self._timer_at = None
        self._input(None)

    # =========================================================== effects
    def _execute(self, effect: Effect) -> None:
        if isinstance(effect, Offer):
            self._offer(effect)
        elif isinstance(effect, CancelOffer):
            self._cancel_offer(effect)
        elif isinstance(effect, Announce):
            waiter = self._waiters.get(effect.call)
            if waiter is not None and waiter.bridge is None:
                self._spawn(self._announce(waiter, effect))
        elif isinstance(effect, Overflow):
            self._overflowed(effect)
        elif isinstance(effect, CallbackAccepted):
            self._callback_accepted(effect)
        elif isinstance(effect, CallbackRefused):
            log.info("acd.callback_refused", call_id=effect.call, reason=effect.reason)
        elif isinstance(effect, AgentStateChanged):
            log.info(
                "acd.agent_state",
                agent=effect.agent,
                old=effect.old.value,
                new=effect.new.value,
                reason=effect.reason,
            )

    def _offer(self, offer: Offer) -> None:
        agent = self.router.agent(offer.agent)
        waiter = self._waiters.get(offer.call)
        cb = self._callbacks.get(offer.call)
        log.info(
            "acd.offer",
            call_id=offer.call,
            agent=offer.agent,
            queue=offer.queue,
            callback=offer.callback,
            why=offer.why.text(),
        )
        if waiter is None and cb is None:  # no caller leg behind this call: it cannot be bridged
            self._later(lambda: Hangup(self.now(), offer.call))
            return
        uri = agent.config.uri
        if uri is None:
            log.error(
                "acd.agent_without_phone",
                agent=offer.agent,
                hint="give the agent `uri: sip:USER@HOST:PORT` in queues.yaml",
            )
            self._later(lambda: AgentNotReady(self.now(), offer.agent, "no_phone"))
            return
        ring = _Ring(offer.call, offer.agent)
        self._rings[(offer.call, offer.agent)] = ring
        if cb is not None:  # the caller left the line: the customer is dialled after the agent
            ring.task = self._spawn(self._ring_callback(ring, uri, cb))
        else:
            assert waiter is not None
            ring.task = self._spawn(self._ring(ring, uri, waiter))

    def _cancel_offer(self, cancel: CancelOffer) -> None:
        ring = self._rings.pop((cancel.call, cancel.agent), None)
        log.info(
            "acd.offer_cancelled", call_id=cancel.call, agent=cancel.agent, reason=cancel.reason
        )
        cb = self._callbacks.get(cancel.call)
        routed = self.router.call(cancel.call)
        if cb is not None and routed is not None and routed.callback is None:
            # a retry offered the moment it rejoined, before the Router took it as a
            # callback: now that it is back in line, make it one (no announcements,
            # no max_wait)
            cid, number = cancel.call, cb.number
            self._later(lambda: RequestCallback(self.now(), cid, number))
        if ring is None:
            return
        ring.cancelled = True
        if ring.leg is not None:
            self.outbound.hangup(ring.leg)  # CANCEL (or BYE if its 200 is just in)

    def _overflowed(self, overflow: Overflow) -> None:
        waiter = self._waiters.get(overflow.call)
        log.info(
            "acd.overflow",
            call_id=overflow.call,
            queue=overflow.queue,
            reason=overflow.reason,
            action=overflow.action.kind,
            moved_to=overflow.moved_to,
        )
        cb = self._callbacks.get(overflow.call)
        if cb is not None:
            if overflow.moved_to is not None:
                cb.queue = overflow.moved_to
            else:
                self._callbacks.pop(overflow.call, None)
                self._give_up(cb, f"overflow ({overflow.reason})")
        if waiter is None:
            return
        if overflow.moved_to is not None:
            waiter.queue = overflow.moved_to
            return
        waiter.overflow = overflow
        waited = self.now() - waiter.joined
        result = (
            QueueResult("no_agents", waited=waited)
            if overflow.reason == "no_agents"
            else QueueResult("overflow", waited=waited)
        )
        if not waiter.done.done():
            waiter.done.set_result(result)

    # ======================================================== agent legs
    async def _agent_answers(
        self, ring: _Ring, uri: str, display: str, still_wanted: Callable[[], bool]
    ) -> OutboundLeg | None:
        """Dial the agent of ``ring``; the leg once they answered and the Router gave
        them the call, else None (the failure is reported, a late leg hung up).
        ``still_wanted``: whether the runtime still holds the call at the answer."""
        try:
            leg = await self.outbound.dial(uri, from_uri=self.from_uri, display=display[:80])
        except (DialError, PortRangeExhausted) as exc:
            log.error("acd.dial_failed", agent=ring.agent, uri=uri, error=str(exc))
            self._ring_failed(ring)
            return None
        ring.leg = leg
        if ring.cancelled:
            self.outbound.hangup(leg)
            return None
        status = await leg.outcome
        if ring.cancelled:
            return None  # CancelOffer hung the leg up already
        if status != 200:
            log.info("acd.agent_did_not_answer", agent=ring.agent, call_id=ring.call, status=status)
            self._ring_failed(ring)
            return None
        self._rings.pop((ring.call, ring.agent), None)
        self._input(AgentAnswer(self.now(), ring.agent, ring.call))
        routed = self.router.call(ring.call)
        if (
            routed is None
            or routed.state is not CallState.ANSWERED
            or routed.agent != ring.agent
            or not still_wanted()
        ):
            log.info("acd.answer_too_late", agent=ring.agent, call_id=ring.call)
            self.outbound.hangup(leg)
            return None
        return leg

    async def _ring(self, ring: _Ring, uri: str, waiter: _Waiter) -> None:
        """Dial the agent; report failure or answer; bridge; wait for the end."""
        caller = waiter.call.info.caller_name or waiter.call.info.caller
        leg = await self._agent_answers(
            ring, uri, f"{waiter.queue}: {caller}", lambda: ring.call in self._waiters
        )
        if leg is None:
            return
        self._connect(self._waiters[ring.call], ring.agent, leg)
        await leg.ended.wait()
        if waiter.leg is leg and not waiter.done.done():
            self._agent_gone(waiter)

    def _ring_failed(self, ring: _Ring) -> None:
        if self._rings.pop((ring.call, ring.agent), None) is None or ring.cancelled:
            return
        self._input(AgentDecline(self.now(), ring.agent, ring.call))

    def _connect(self, waiter: _Waiter, agent: str, leg: OutboundLeg) -> None:
        """The agent answered and the router agrees: join the two legs."""
        assert leg.session is not None
        waiter.agent = agent
        waiter.leg = leg
        waiter.answered_at = self.now()
        if waiter.treatment is not None:
            waiter.treatment.cancel()
        waiter.pending.clear()
        waiter.call.session.player.clear()
        waiter.bridge = Bridge(waiter.call.session, leg.session)
        cid = waiter.id
        leg.on_hold = lambda held: self._agent_hold(waiter, held)
        wait = waiter.answered_at - waiter.joined
        self.answered[cid] = {
            "call": cid,
            "queue": waiter.queue,
            "agent": agent,
            "wait": wait,
            "answered_at": waiter.answered_at,
            "ended_at": None,
            "caller_codec": waiter.call.session.codec.name,
            "agent_codec": leg.session.codec.name,
            "agent_telephone_event": leg.session.te_pt is not None,
        }
        while len(self.answered) > 500:
            self.answered.popitem(last=False)
        log.info(
            "acd.bridged",
            call_id=cid,
            agent=agent,
            wait=round(wait, 2),
            caller_codec=waiter.call.session.codec.name,
            agent_codec=leg.session.codec.name,
        )

    def _agent_hold(self, waiter: _Waiter, held: bool) -> None:
        """The agent's phone put the call on hold (or took it off): the hold time
        counts apart from talk, and the caller hears the comfort tone meanwhile."""
        self._input(Hold(self.now(), waiter.id, held))
        if held and waiter.music is None:
            waiter.music = self._spawn(self._hold_music(waiter))
        elif not held:
            self._stop_music(waiter)
        log.info("acd.hold", call_id=waiter.id, agent=waiter.agent, held=held)

    async def _hold_music(self, waiter: _Waiter) -> None:
        try:
            while True:
                await waiter.call.play(self.hold, interruptible=False)
        except CallHungUp:
            return

    def _stop_music(self, waiter: _Waiter) -> None:
        if waiter.music is None:
            return
        waiter.music.cancel()
        waiter.music = None
        if not waiter.call.session.closed:
            waiter.call.session.player.clear()  # the agent's voice again

    def _agent_gone(self, waiter: _Waiter) -> None:
        """The agent hung up: the call is complete, the flow goes on."""
        self._stop_music(waiter)
        if waiter.bridge is not None:
            waiter.bridge.close()
        self._input(Hangup(self.now(), waiter.id))
        waited = (waiter.answered_at or waiter.joined) - waiter.joined
        self._record_answer_end(waiter)
        log.info("acd.agent_hung_up", call_id=waiter.id, agent=waiter.agent)
        if not waiter.done.done():
            waiter.done.set_result(QueueResult("answered", agent=waiter.agent, waited=waited))

    def _record_answer_end(self, waiter: _Waiter) -> None:
        item = self.answered.get(waiter.id)
        if item is not None and item["ended_at"] is None:
            item["ended_at"] = self.now()

    # ===================================================== supervisors
    def set_agent_state(self, name: str, state: str, reason: str | None = None) -> None:
        """login / ready / not_ready(reason) / logout for ``name``, applied at once.
        Raises :class:`AcdRequestError` (404 unknown agent, 400 bad request, 409 not now)."""
        if name not in self.router.config.agents:
            known = ", ".join(self.router.config.agents) or "none"
            raise AcdRequestError(404, f"unknown agent {name!r} (known: {known})")
        if state not in STATE_REQUESTS:
            raise AcdRequestError(
                400, f"state must be one of {', '.join(STATE_REQUESTS)}, not {state!r}"
            )
        if reason is not None and (not reason.strip() or len(reason) > 64):
            raise AcdRequestError(400, "reason must be a non-empty text of at most 64 characters")
        agent = self.router.agent(name)
        current = agent.state
        now = self.now()
        if state == "login":
            if current is AgentState.OFFLINE:
                self._input(AgentLogin(now, name, ready=False))
        elif state == "ready":
            if current is AgentState.OFFLINE:
                self._input(AgentLogin(now, name, ready=True))
            elif current is AgentState.WRAP_UP:
                self._input(AgentReady(now, name))  # drops a pending break
                self._input(EndWrapUp(self.now(), name))
            else:
                self._input(AgentReady(now, name))
        elif state == "not_ready":
            if current is AgentState.OFFLINE:
                raise AcdRequestError(
                    409, f"agent {name!r} is logged out: log in first (state login or ready)"
                )
            self._input(AgentNotReady(now, name, reason or "break"))
        else:
            self._input(AgentLogout(now, name))
        log.info("acd.state_request", agent=name, state=state, reason=reason)

    # ====================================================== persistence
    def _schedule_save(self) -> None:
        if self.store is None or self._save_handle is not None or self._loop is None:
            return
        if self._stopped:
            return
        self._save_handle = self._loop.call_later(self.save_delay, self._save)

    def _save(self) -> None:
        self._save_handle = None
        if self.store is None:
            return
        records, self._unsaved = self._unsaved, []
        try:
            self.store.save(self.metrics, router=self._snapshot(), records=records)
        except MetricsStoreError as exc:
            self._unsaved[:0] = records  # kept for the next try
            log.error("acd.save_failed", error=str(exc))

    def _snapshot(self) -> dict[str, Any]:
        """The router's snapshot plus the callbacks (their numbers, attempts, retries)."""
        snapshot = self.router.snapshot()
        items = [*self._callbacks.values(), *self._retrying.values()]
        snapshot["callbacks"] = [cb.saved() for cb in items]
        return snapshot

    # ========================================================== helpers
    def _later(self, make: Callable[[], Input]) -> None:
        """An input caused by an effect, handled after the current one."""
        if self._loop is not None:
            self._loop.call_soon(lambda: self._input(make()))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("acd.task_failed", error=repr(task.exception()))


async def start_acd(
    *,
    flows_dir: Path,
    data_dir: Path,
    outbound: OutboundCalls,
    prompts: PromptLibrary | None,
    from_uri: str,
    registry: CollectorRegistry | None = None,
) -> AcdRuntime | None:
    """The ACD for ``flows_dir/queues.yaml``, started on the engine's database;
    None when there is no queues file or it does not load (every error is
    logged with file:line:column and the fix: flows then take their
    no-agents branch, as before). ``registry``: where its Prometheus series
    go (:mod:`engine.acd_metrics`)."""
    path = flows_dir / QUEUES_FILE
    if not path.exists():
        log.info("acd.none", file=str(path))
        return None
    try:
        text = await asyncio.to_thread(path.read_text)
        config, warnings = parse_config(text, path)
    except OSError as exc:
        log.error("acd.not_started", file=str(path), error=str(exc), hint="make it readable")
        return None
    except AcdConfigError as exc:
        for diagnostic in exc.diagnostics:
            log.error("acd.config_error", problem=str(diagnostic))
        log.error(
            "acd.not_started", file=str(path), hint="fix the errors above; queues answer no_agents"
        )
        return None
    for diagnostic in warnings:
        log.warning("acd.config_warning", problem=str(diagnostic))
    try:
        store: MetricsStore | None = MetricsStore(data_dir / DB_NAME)
    except MetricsStoreError as exc:
        log.error("acd.store_unusable", error=str(exc), hint="the ACD runs without saving state")
        store = None
    runtime = AcdRuntime(
        config,
        outbound=outbound,
        prompts=prompts,
        store=store,
        from_uri=from_uri,
        config_text=text,
        config_file=path,
        prometheus=None if registry is None else AcdPrometheus(registry),
    )
    await runtime.start()
    return runtime
