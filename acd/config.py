"""flows/queues.yaml: skills, queues and agents, checked with file:line:column.

Shape (every key but ``queues`` optional; the IVR flow loader reads only
the names under ``queues:``)::

    skills: [billing, internet, sales]          # every skill name used below
    groups: [tier1, tier2]                      # if given, the only group names
    defaults: {ring_timeout: 15, wrap_up: 10}   # queue settings applied to every queue
    queues:
      billing:
        priority: 0                             # higher is served first, across queues
        strategy: most_skilled                  # see acd.strategies
        service_level: {percent: 80, seconds: 20}
        max_wait: 300                           # seconds, then overflow
        max_length: 50                          # callers (waiting or ringing), then overflow
        overflow: {action: queue, target: sales}  # flow (default), queue, voicemail,
                                                  # transfer, hangup
        no_agents: join                         # join | overflow | {after: 30}
        wrap_up: 10
        ring_timeout: 15                        # then the agent goes not_ready (rna)
        announce: {first: 30, every: 60, position: true, ewt: true, round_to: 60}
        aht: 240                                # handle time assumed before the first call
        retention: {days: 90}                   # recordings kept (recordings.retention_config)
        steps:                                  # relax over time; or just `skills:`/`groups:`
          - {skills: {billing: 4}, for: 30}
          - {skills: {billing: 2}, for: 60}
          - {groups: [tier1]}
    agents:
      alice: {skills: {billing: 5}, groups: [tier1], wrap_up: 5, lease: 120,
              uri: "sip:alice@10.0.0.5:5060"}     # her phone: the engine rings it
    callbacks:                                  # callers who asked to be called back
      dial: "sip:{number}@{pbx}"                # the customer's leg: {number} theirs,
                                                # {pbx} host:port their call came from
      ring_timeout: 30                          # seconds for the customer to answer
      attempts: 3                               # customer legs at most ...
      retry_after: 120                          # ... this many seconds apart

Errors (the file is refused, nothing running changes): YAML syntax and
duplicate keys, unknown keys, unknown skills/groups/strategies/queues,
levels outside 1-5, negative or missing durations (every step but the last
needs ``for``), overflow loops, a step no configured agent can ever meet,
duplicates in the ``skills``/``groups`` lists. Warnings: a last step with
``for`` (it lasts until the caller leaves), no agents in the file (steps
cannot be checked; agents may come from the database).

Each problem is an :class:`ivr.diagnostics.Diagnostic` (file, line, column,
message, hint); :class:`AcdConfigError` carries them all.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from acd.model import (
    MAX_LEVEL,
    MIN_LEVEL,
    AcdConfig,
    AgentConfig,
    Announcements,
    CallbackPolicy,
    NoAgentsPolicy,
    OverflowAction,
    QueueConfig,
    Requirement,
    Step,
)
from acd.strategies import StrategyRegistry
from ivr.diagnostics import Diagnostic, errors, sort_key
from ivr.yamldoc import DataPath, YamlDoc, YamlError, load_yaml, parse_yaml

__all__ = ["AcdConfigError", "check_config_text", "load_config", "parse_config"]

_TOP = ("skills", "groups", "defaults", "queues", "agents", "callbacks")
_CALLBACKS = ("dial", "ring_timeout", "attempts", "retry_after")
_QUEUE = (
    "priority",
    "strategy",
    "service_level",
    "max_wait",
    "max_length",
    "overflow",
    "no_agents",
    "wrap_up",
    "ring_timeout",
    "announce",
    "aht",
    "steps",
    "skills",
    "groups",
    "description",
    "retention",  # recordings' retention {days: N}: read and checked by recordings.retention_config
)
_DEFAULTS = tuple(k for k in _QUEUE if k not in ("steps", "skills", "groups", "description"))
_STEP = ("skills", "groups", "for")
_AGENT = ("skills", "groups", "wrap_up", "lease", "uri", "description")
_OVERFLOW_KINDS = ("flow", "queue", "voicemail", "transfer", "hangup")
_NEEDS_TARGET = ("queue", "voicemail", "transfer")


class AcdConfigError(ValueError):
    """A queues file that cannot be used; ``diagnostics`` holds every
    problem found (errors and warnings), ``str()`` lists the errors."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errs = errors(diagnostics)
        head = f"{len(errs)} error{'s' if len(errs) != 1 else ''} in the ACD configuration"
        super().__init__("\n".join([head, *(str(d) for d in errs)]))


def load_config(
    path: Path, *, strategies: StrategyRegistry | None = None
) -> tuple[AcdConfig, list[Diagnostic]]:
    """Read ``path``; returns the configuration and its warnings, or raises
    :class:`AcdConfigError` listing every error."""
    try:
        doc = load_yaml(path)
    except YamlError as exc:
        raise AcdConfigError([exc.diagnostic]) from None
    return _checked(doc, strategies)


def parse_config(
    text: str, file: Path = Path("queues.yaml"), *, strategies: StrategyRegistry | None = None
) -> tuple[AcdConfig, list[Diagnostic]]:
    """Like :func:`load_config` for text (shown as ``file``)."""
    try:
        doc = parse_yaml(text, file)
    except YamlError as exc:
        raise AcdConfigError([exc.diagnostic]) from None
    return _checked(doc, strategies)


def check_config_text(
    text: str, file: Path = Path("queues.yaml"), *, strategies: StrategyRegistry | None = None
) -> list[Diagnostic]:
    """Every diagnostic for ``text`` (empty: fine), never raises."""
    try:
        doc = parse_yaml(text, file)
    except YamlError as exc:
        return [exc.diagnostic]
    reader = _Reader(doc, strategies or StrategyRegistry())
    reader.read()
    return sorted(reader.diags, key=sort_key)


def _checked(
    doc: YamlDoc, strategies: StrategyRegistry | None
) -> tuple[AcdConfig, list[Diagnostic]]:
    reader = _Reader(doc, strategies or StrategyRegistry())
    config = reader.read()
    diags = sorted(reader.diags, key=sort_key)
    if config is None or errors(diags):
        raise AcdConfigError(diags)
    return config, diags


def _close(name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1)
    listed = ", ".join(known) if len(known) <= 12 else ", ".join(known[:12]) + ", ..."
    if close:
        return f"did you mean {close[0]!r}? (known: {listed})"
    return f"known: {listed}" if known else "none is declared"


class _Reader:
    """One pass over the document, collecting diagnostics."""

    def __init__(self, doc: YamlDoc, strategies: StrategyRegistry) -> None:
        self.doc = doc
        self.strategies = strategies
        self.diags: list[Diagnostic] = []
        self.skills: set[str] = set()
        self.groups: set[str] | None = None
        self.queue_names: set[str] = set()

    # ------------------------------------------------------------ helpers
    def error(self, path: DataPath, message: str, hint: str = "", *, key: bool = False) -> None:
        pos = self.doc.key_pos(path) if key else self.doc.value_pos(path)
        self.diags.append(self.doc.diagnostic("error", pos, message, hint))

    def warn(self, path: DataPath, message: str, hint: str = "", *, key: bool = False) -> None:
        pos = self.doc.key_pos(path) if key else self.doc.value_pos(path)
        self.diags.append(self.doc.diagnostic("warning", pos, message, hint))

    def mapping(self, value: Any, path: DataPath, what: str, example: str) -> dict[str, Any]:
        if isinstance(value, dict):
            return cast(dict[str, Any], value)
        self.error(path, f"{what} must be a mapping, not {_kind(value)}", f"write it as {example}")
        return {}

    def known_keys(
        self, data: Mapping[str, Any], allowed: Iterable[str], path: DataPath, what: str
    ) -> None:
        allowed = tuple(allowed)
        for key in data:
            if key not in allowed:
                self.error(
                    (*path, key),
                    f"unknown key {key!r} in {what}",
                    _close(str(key), allowed),
                    key=True,
                )

    def number(
        self,
        data: Mapping[str, Any],
        key: str,
        path: DataPath,
        what: str,
        *,
        positive: bool = False,
        integer: bool = False,
    ) -> float | None:
        """``data[key]`` as a number >= 0 (> 0 when ``positive``), None when absent/bad."""
        if key not in data or data[key] is None:
            return None
        value = data[key]
        where = (*path, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(
                where, f"{what} must be a number of seconds, not {_kind(value)}", "write e.g. 30"
            )
            return None
        if integer and not isinstance(value, int):
            self.error(where, f"{what} must be a whole number, not {value}", "write e.g. 50")
            return None
        if value < 0 or (positive and value == 0):
            need = "greater than 0" if positive else "0 or more"
            self.error(where, f"{what} must be {need}, not {value}", f"give {what} a value {need}")
            return None
        return float(value)

    # ------------------------------------------------------------ document
    def read(self) -> AcdConfig | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.error(
                (),
                f"the ACD configuration must be a mapping, not {_kind(data)}",
                "start with `queues:`",
            )
            return None
        self.known_keys(data, _TOP, (), "the ACD configuration")
        self.read_skills(data.get("skills"))
        if "groups" in data:
            self.groups = set(self.name_list(data["groups"], ("groups",), "group"))
        defaults = self.mapping(
            data.get("defaults", {}), ("defaults",), "defaults", "`defaults: {wrap_up: 10}`"
        )
        self.known_keys(defaults, _DEFAULTS, ("defaults",), "defaults")
        agents = self.read_agents(data.get("agents"))
        if "queues" not in data:
            self.error(
                (), "no `queues:` mapping", "add `queues:` with one indented `NAME:` per queue"
            )
            return None
        raw = self.mapping(data["queues"], ("queues",), "queues", "`queues:` then `NAME:` lines")
        queues: dict[str, QueueConfig] = {}
        self.queue_names = {str(name) for name in raw}
        for name, body in raw.items():
            queue = self.read_queue(str(name), body, defaults)
            if queue is not None:
                queues[queue.name] = queue
        self.check_overflow(queues)
        self.check_reachable(queues, agents)
        callbacks = self.read_callbacks(data.get("callbacks"))
        return AcdConfig(tuple(sorted(self.skills)), queues, agents, callbacks)

    def read_callbacks(self, value: Any) -> CallbackPolicy:
        """The top-level ``callbacks:`` section (absent: callbacks are not offered)."""
        if value is None:
            return CallbackPolicy()
        path: DataPath = ("callbacks",)
        what = "callbacks"
        example = '`callbacks: {dial: "sip:{number}@pbx.example.com"}`'
        body = self.mapping(value, path, what, example)
        self.known_keys(body, _CALLBACKS, path, what)
        dial = body.get("dial")
        if dial is not None:
            dial = self.callback_dial(dial, (*path, "dial"))
        ring = self.number(body, "ring_timeout", path, "callbacks ring_timeout", positive=True)
        retry = self.number(body, "retry_after", path, "callbacks retry_after")
        attempts = self.number(
            body, "attempts", path, "callbacks attempts", positive=True, integer=True
        )
        default = CallbackPolicy()
        return CallbackPolicy(
            dial=dial,
            ring_timeout=ring if ring is not None else default.ring_timeout,
            attempts=int(attempts) if attempts is not None else default.attempts,
            retry_after=retry if retry is not None else default.retry_after,
        )

    def callback_dial(self, value: Any, path: DataPath) -> str | None:
        """A ``sip:`` URI template holding ``{number}`` (None when bad, reported)."""
        hint = (
            "write e.g. sip:{number}@{pbx} ({number}: the caller's number, {pbx}: the"
            " host:port their call came from) or sip:{number}@pbx.example.com:5060"
        )
        if not isinstance(value, str) or not value.strip():
            self.error(path, f"callbacks dial must be a SIP URI template, not {_kind(value)}", hint)
            return None
        text = value.strip()
        try:
            sample = text.format(number="5551234", pbx="192.0.2.1:5060")
        except (KeyError, IndexError, ValueError) as exc:
            self.error(
                path,
                f"callbacks dial {text!r} is not a valid template ({exc!r}): "
                "only {number} and {pbx} may appear in braces",
                hint,
            )
            return None
        if "{number}" not in text:
            self.error(path, f"callbacks dial {text!r} does not hold {{number}}", hint)
            return None
        scheme, _, rest = sample.partition(":")
        host = rest.rpartition("@")[2].split(";", 1)[0]
        if scheme.lower() != "sip" or not host or host.startswith(":"):
            self.error(path, f"callbacks dial {text!r} is not a sip: URI with a host", hint)
            return None
        return text

    def name_list(self, value: Any, path: DataPath, what: str) -> list[str]:
        if isinstance(value, dict):
            value = list(value)  # name: description
        if not isinstance(value, list):
            self.error(
                path,
                f"{what}s must be a list of names, not {_kind(value)}",
                f"write `[{what}1, {what}2]`",
            )
            return []
        names: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.error(
                    (*path, index), f"{what} name must be text, not {_kind(item)}", "write a name"
                )
            elif item in names:
                self.error((*path, index), f"{what} {item!r} is listed twice", "remove one of them")
            else:
                names.append(item)
        return names

    def read_skills(self, value: Any) -> None:
        if value is None:
            self.error((), "no `skills:` list", "add `skills: [name, ...]` naming every skill used")
            return
        self.skills = set(self.name_list(value, ("skills",), "skill"))

    def skill_map(self, value: Any, path: DataPath, what: str) -> dict[str, int]:
        raw = self.mapping(value, path, f"{what} skills", "`{billing: 3}` (skill: level 1-5)")
        skills: dict[str, int] = {}
        for name, level in raw.items():
            where = (*path, name)
            if name not in self.skills:
                self.error(
                    where,
                    f"unknown skill {name!r} in {what}",
                    f"{_close(str(name), self.skills)}; or add it to `skills:`",
                    key=True,
                )
                continue
            if (
                isinstance(level, bool)
                or not isinstance(level, int)
                or not MIN_LEVEL <= level <= MAX_LEVEL
            ):
                self.error(
                    where,
                    f"level of {name!r} in {what} must be a whole number "
                    f"{MIN_LEVEL}-{MAX_LEVEL}, not {level!r}",
                    "proficiency runs from 1 (basic) to 5 (expert)",
                )
                continue
            skills[str(name)] = level
        return skills

    def group_set(self, body: Mapping[str, Any], path: DataPath, what: str) -> frozenset[str]:
        if "groups" not in body or body["groups"] is None:
            return frozenset()
        value = body["groups"]
        if isinstance(value, str):
            value = [value]
        names = self.name_list(value, (*path, "groups"), "group")
        out = []
        for index, name in enumerate(names):
            if self.groups is not None and name not in self.groups:
                self.error(
                    (*path, "groups", index)
                    if isinstance(body["groups"], list)
                    else (*path, "groups"),
                    f"unknown group {name!r} in {what}",
                    f"{_close(name, self.groups)}; or add it to `groups:`",
                )
            else:
                out.append(name)
        return frozenset(out)

    # --------------------------------------------------------------- agents
    def read_agents(self, value: Any) -> dict[str, AgentConfig]:
        if value is None:
            return {}
        raw = self.mapping(value, ("agents",), "agents", "`agents:` then `NAME: {skills: {...}}`")
        agents: dict[str, AgentConfig] = {}
        for name, body in raw.items():
            path: DataPath = ("agents", name)
            what = f"agent {name!r}"
            body = self.mapping(body, path, what, "`{skills: {billing: 3}, groups: [tier1]}`")
            self.known_keys(body, _AGENT, path, what)
            skills = self.skill_map(body.get("skills", {}), (*path, "skills"), what)
            groups = self.group_set(body, path, what)
            wrap_up = self.number(body, "wrap_up", path, f"{what} wrap_up")
            lease = self.number(body, "lease", path, f"{what} lease", positive=True)
            uri = self.agent_uri(body.get("uri"), (*path, "uri"), what)
            agents[str(name)] = AgentConfig(str(name), skills, groups, wrap_up, lease, uri)
        return agents

    def agent_uri(self, value: Any, path: DataPath, what: str) -> str | None:
        """The agent's phone: a ``sip:``/``sips:`` URI with a host (None when absent)."""
        if value is None:
            return None
        text = value.strip() if isinstance(value, str) else ""
        scheme, _, rest = text.partition(":")
        host = rest.rpartition("@")[2].split(";", 1)[0]
        if scheme.lower() not in ("sip", "sips") or not host or host.startswith(":"):
            self.error(
                path,
                f"{what} uri must be a SIP URI such as sip:alice@10.0.0.5:5060, not {value!r}",
                "give the address of the agent's phone (sip:USER@HOST[:PORT])",
            )
            return None
        return text

    # --------------------------------------------------------------- queues
    def read_queue(self, name: str, body: Any, defaults: Mapping[str, Any]) -> QueueConfig | None:
        path: DataPath = ("queues", name)
        what = f"queue {name!r}"
        if body is None:
            body = {}
        body = self.mapping(body, path, what, "`{skills: {billing: 1}}`")
        self.known_keys(body, _QUEUE, path, what)
        merged = {**defaults, **body}

        def where(key: str) -> DataPath:
            return path if key in body else ("defaults",)

        steps = self.read_steps(body, path, what)
        priority = merged.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            self.error(
                (*where("priority"), "priority"),
                f"{what} priority must be a whole number, not {priority!r}",
                "write e.g. 5 (higher is served first)",
            )
            priority = 0
        strategy = merged.get("strategy", "longest_idle")
        if strategy not in self.strategies:
            self.error(
                (*where("strategy"), "strategy"),
                f"{what}: unknown strategy {strategy!r}",
                _close(str(strategy), self.strategies),
            )
            strategy = "longest_idle"
        sl_seconds, sl_target = 20.0, 0.8
        if "service_level" in merged:
            sl_path = (*where("service_level"), "service_level")
            sl = self.mapping(
                merged["service_level"],
                sl_path,
                f"{what} service_level",
                "`{percent: 80, seconds: 20}`",
            )
            self.known_keys(sl, ("percent", "seconds"), sl_path, f"{what} service_level")
            seconds = self.number(
                sl, "seconds", sl_path, f"{what} service_level seconds", positive=True
            )
            percent = self.number(sl, "percent", sl_path, f"{what} service_level percent")
            if percent is not None and percent > 100:
                self.error(
                    (*sl_path, "percent"),
                    f"{what} service_level percent must be 0-100, not {percent:g}",
                    "write e.g. 80",
                )
                percent = None
            sl_seconds = seconds if seconds is not None else sl_seconds
            sl_target = percent / 100 if percent is not None else sl_target
        max_wait = self.number(
            merged, "max_wait", where("max_wait"), f"{what} max_wait", positive=True
        )
        max_length = self.number(
            merged,
            "max_length",
            where("max_length"),
            f"{what} max_length",
            positive=True,
            integer=True,
        )
        wrap_up = self.number(merged, "wrap_up", where("wrap_up"), f"{what} wrap_up")
        ring_timeout = self.number(
            merged, "ring_timeout", where("ring_timeout"), f"{what} ring_timeout", positive=True
        )
        aht = self.number(merged, "aht", where("aht"), f"{what} aht", positive=True)
        overflow = self.read_overflow(
            merged.get("overflow"), (*where("overflow"), "overflow"), what
        )
        no_agents = self.read_no_agents(
            merged.get("no_agents", "join"), (*where("no_agents"), "no_agents"), what
        )
        announce = self.read_announce(
            merged.get("announce"), (*where("announce"), "announce"), what
        )
        if steps is None:
            return None
        return QueueConfig(
            name=name,
            steps=steps,
            priority=priority,
            strategy=str(strategy),
            sl_threshold=sl_seconds,
            sl_target=sl_target,
            max_wait=max_wait,
            max_length=None if max_length is None else int(max_length),
            overflow=overflow,
            no_agents=no_agents,
            wrap_up=wrap_up or 0.0,
            ring_timeout=ring_timeout if ring_timeout is not None else 15.0,
            announce=announce,
            default_aht=aht if aht is not None else 180.0,
        )

    def read_steps(
        self, body: Mapping[str, Any], path: DataPath, what: str
    ) -> tuple[Step, ...] | None:
        if "steps" not in body:
            skills = self.skill_map(body.get("skills") or {}, (*path, "skills"), what)
            groups = self.group_set(body, path, what)
            return (Step(Requirement(tuple(skills.items()), groups)),)
        for key in ("skills", "groups"):
            if key in body:
                self.error(
                    (*path, key),
                    f"{what} has both `steps:` and `{key}:`",
                    f"move `{key}:` into the first step",
                    key=True,
                )
        raw = body["steps"]
        if not isinstance(raw, list) or not raw:
            self.error(
                (*path, "steps"),
                f"{what} steps must be a non-empty list",
                "write `steps:` then `- {skills: {billing: 4}, for: 30}` lines",
            )
            return None
        steps: list[Step] = []
        ok = True
        for index, item in enumerate(raw):
            step_path: DataPath = (*path, "steps", index)
            step_what = f"{what} step {index + 1}"
            item = self.mapping(item, step_path, step_what, "`{skills: {billing: 4}, for: 30}`")
            self.known_keys(item, _STEP, step_path, step_what)
            skills = self.skill_map(item.get("skills") or {}, (*step_path, "skills"), step_what)
            groups = self.group_set(item, step_path, step_what)
            last = index == len(raw) - 1
            duration = self.number(item, "for", step_path, f"{step_what} `for`", positive=True)
            if not last and "for" not in item:
                self.error(
                    step_path,
                    f"{step_what} has no `for:` (how long it stays in force)",
                    "add `for: SECONDS`; only the last step may leave it out",
                )
                ok = False
            elif not last and duration is None:
                ok = False
            if last and "for" in item:
                self.warn(
                    (*step_path, "for"),
                    f"{step_what} is the last: it lasts until the caller leaves, `for` is ignored",
                    "remove `for`, or add a step after it",
                    key=True,
                )
                duration = None
            steps.append(Step(Requirement(tuple(skills.items()), groups), duration))
        return tuple(steps) if ok else None

    def read_overflow(self, value: Any, path: DataPath, what: str) -> OverflowAction:
        if value is None:
            return OverflowAction()
        if isinstance(value, str):
            value = {"action": value}
        body = self.mapping(value, path, f"{what} overflow", "`{action: queue, target: sales}`")
        self.known_keys(body, ("action", "target"), path, f"{what} overflow")
        kind = body.get("action", "flow")
        target = body.get("target")
        if kind not in _OVERFLOW_KINDS:
            self.error(
                (*path, "action") if "action" in body else path,
                f"{what}: unknown overflow action {kind!r}",
                _close(str(kind), _OVERFLOW_KINDS),
            )
            return OverflowAction()
        if target is not None and not isinstance(target, str):
            target = str(target)  # extensions such as 2000
        if kind in _NEEDS_TARGET and not target:
            self.error(
                path,
                f"{what}: overflow action {kind!r} needs a `target`",
                {
                    "queue": "name the queue",
                    "voicemail": "name the mailbox",
                    "transfer": "give the extension or SIP URI",
                }[kind],
            )
            return OverflowAction()
        return OverflowAction(kind, target)

    def read_no_agents(self, value: Any, path: DataPath, what: str) -> NoAgentsPolicy:
        if value in ("join", "overflow"):
            return NoAgentsPolicy(value)
        if isinstance(value, dict) and set(value) == {"after"}:
            after = self.number(value, "after", path, f"{what} no_agents after")
            if after is not None:
                return NoAgentsPolicy("after", after)
            if value.get("after") is None:
                self.error(
                    path,
                    f"{what} no_agents `after` needs a number of seconds",
                    "write `{after: 30}`",
                )
            return NoAgentsPolicy()
        self.error(
            path,
            f"{what}: no_agents must be join, overflow or {{after: SECONDS}}, not {value!r}",
            "join waits anyway; overflow leaves at once; "
            "{after: 30} leaves after 30 s without agents",
        )
        return NoAgentsPolicy()

    def read_announce(self, value: Any, path: DataPath, what: str) -> Announcements | None:
        if value is None or value is False:
            return None
        if value is True:
            return Announcements()
        body = self.mapping(value, path, f"{what} announce", "`{first: 30, every: 60}`")
        self.known_keys(
            body, ("first", "every", "position", "ewt", "round_to"), path, f"{what} announce"
        )
        first = self.number(body, "first", path, f"{what} announce first")
        every = self.number(body, "every", path, f"{what} announce every", positive=True)
        round_to = self.number(body, "round_to", path, f"{what} announce round_to", positive=True)
        flags = {}
        for key in ("position", "ewt"):
            flag = body.get(key, True)
            if not isinstance(flag, bool):
                self.error(
                    (*path, key),
                    f"{what} announce {key} must be true or false, not {flag!r}",
                    "write true or false",
                )
                flag = True
            flags[key] = flag
        return Announcements(
            first=first or 0.0,
            every=every if "every" in body else 60.0,
            position=flags["position"],
            ewt=flags["ewt"],
            round_to=round_to or 60.0,
        )

    # ----------------------------------------------------------- cross checks
    def check_overflow(self, queues: Mapping[str, QueueConfig]) -> None:
        for name, queue in queues.items():
            action = queue.overflow
            if action.kind != "queue":
                continue
            path: DataPath = ("queues", name, "overflow")
            if action.target not in self.queue_names:
                self.error(
                    path,
                    f"queue {name!r} overflows to unknown queue {action.target!r}",
                    _close(str(action.target), self.queue_names),
                )
                continue
            seen = [name]
            target: str | None = action.target
            while target is not None and target in queues and target not in seen:
                seen.append(target)
                nxt = queues[target].overflow
                target = nxt.target if nxt.kind == "queue" else None
            if target is not None and target in seen:
                loop = " -> ".join([*seen[seen.index(target) :], target])
                if target == name:
                    self.error(
                        path,
                        f"queue {name!r} overflows in a loop: {loop}",
                        "end the chain with voicemail, transfer, flow or hangup",
                    )

    def check_reachable(
        self, queues: Mapping[str, QueueConfig], agents: Mapping[str, AgentConfig]
    ) -> None:
        if not agents:
            if queues:
                self.warn(
                    ("queues",),
                    "no agents in this file: routing steps cannot be checked against agents",
                    "add `agents:` here unless they come from the database",
                    key=True,
                )
            return
        for name, queue in queues.items():
            for index, step in enumerate(queue.steps):
                requirement = step.requirement
                if any(requirement.matches(a.skills, a.groups) for a in agents.values()):
                    continue
                path: DataPath = (
                    ("queues", name, "steps", index)
                    if len(queue.steps) > 1 or "steps" in _body(self.doc, name)
                    else ("queues", name)
                )
                self.error(
                    path,
                    f"queue {name!r} step {index + 1} ({requirement.describe()}) "
                    "matches no configured agent",
                    _best_hint(requirement, agents),
                    key=True,
                )


def _body(doc: YamlDoc, queue: str) -> dict[str, Any]:
    data = doc.data.get("queues", {}) if isinstance(doc.data, dict) else {}
    body = data.get(queue) if isinstance(data, dict) else None
    return body if isinstance(body, dict) else {}


def _best_hint(requirement: Requirement, agents: Mapping[str, AgentConfig]) -> str:
    parts = []
    for skill, level in requirement.skills:
        best = max(agents.values(), key=lambda a: a.skills.get(skill, 0))
        have = best.skills.get(skill, 0)
        if have < level:
            parts.append(
                f"nobody has {skill}>={level} (best: {best.name} {skill}={have})"
                if have
                else f"nobody has {skill}"
            )
    if requirement.groups and not any(requirement.groups & a.groups for a in agents.values()):
        parts.append(f"no agent is in {', '.join(sorted(requirement.groups))}")
    if not parts:
        parts.append("no single agent has all of these together")
    return "; ".join(parts) + ": lower the levels or give an agent these skills"


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    return {
        dict: "a mapping",
        list: "a list",
        str: "text",
        bool: "true/false",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)
