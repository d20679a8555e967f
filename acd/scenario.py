"""Simulation scenarios: a day of traffic and staffing, written in YAML.

A scenario says what the simulator (:mod:`acd.simulator`) plays through the
real router: the ACD configuration (queues, steps, wrap-up; a file or
inline), Poisson arrival rates per queue and interval, handle-time, hold,
patience and answer-delay distributions, agents with skills and shifts, and
optional callbacks. Times of day are ``"HH:MM"`` (or ``"HH:MM:SS"``, or
seconds since midnight); the simulation clock is seconds since midnight::

    name: Northwind weekday
    seed: 7
    acd: ../../flows/queues.yaml     # or an inline mapping in the ACD's format
    interval: 900                    # arrival rates are per 15 minutes ...
    start: "08:00"                   # ... from 08:00
    arrivals:
      billing: [12, 20, 31, 35]      # mean calls in 08:00-08:15, 08:15-08:30, ...
    handle:                          # talk time (hold and wrap-up come on top)
      default: {dist: lognormal, mean: 240, sd: 150}
      sales: {dist: exponential, mean: 300}
    patience:                        # how long callers wait before hanging up
      default: {dist: exponential, mean: 150}
      vip: null                      # never hang up
    hold: {probability: 0.2, duration: {dist: exponential, mean: 40}}
    answer_delay: {dist: fixed, value: 3}   # ringing until the agent picks up
    ready_after: {dist: fixed, value: 30}   # back to ready after a missed offer (null: never)
    callbacks: {after: 60, probability: 0.25, connect: {dist: fixed, value: 12}}
    agents:
      - {name: billing, count: 8, skills: {billing: 4}, shift: ["08:00", "16:30"]}

Distributions (``dist``): ``exponential`` (``mean``), ``lognormal``
(``mean`` and ``sd`` of the time itself, not of its log), ``fixed``
(``value``). Errors name the file, line and column and say how to fix them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from acd.sampling import Sampler
from ivr.yamldoc import YamlDoc, YamlError, load_yaml, parse_yaml

__all__ = [
    "AgentGroup",
    "Callbacks",
    "Dist",
    "HoldModel",
    "Sampler",
    "Scenario",
    "ScenarioError",
    "clock",
    "load_scenario",
    "parse_scenario",
]

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?$")


def clock(value: Any) -> float:
    """Seconds since midnight of ``"HH:MM"``, ``"HH:MM:SS"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time of day")
    if isinstance(value, int | float):
        seconds = float(value)  # plain seconds may run past one day (multi-day runs)
        if seconds < 0 or math.isinf(seconds) or math.isnan(seconds):
            raise ValueError(f"{value!r} is not a time of day: seconds must be >= 0")
        return seconds
    elif isinstance(value, str) and (m := _CLOCK.match(value.strip())):
        h, mi, sec = int(m.group(1)), int(m.group(2)), float(m.group(3) or 0)
        if mi > 59 or sec >= 60:
            raise ValueError(f"{value!r} is not a time of day (minutes and seconds go to 59)")
        seconds = h * 3600 + mi * 60 + sec
    else:
        raise ValueError(f'{value!r} is not a time of day: write it as "HH:MM", e.g. "08:30"')
    if not 0 <= seconds <= 48 * 3600:
        raise ValueError(f"{value!r} is outside 00:00-48:00")
    return seconds


Clock = Annotated[float, BeforeValidator(clock)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dist(_Model):
    """A distribution of durations in seconds."""

    dist: Literal["exponential", "lognormal", "fixed"]
    mean: float | None = Field(default=None, gt=0)
    sd: float | None = Field(default=None, ge=0)
    value: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _parameters(self) -> Dist:
        need = {"exponential": ("mean",), "lognormal": ("mean", "sd"), "fixed": ("value",)}[
            self.dist
        ]
        extra = {"mean", "sd", "value"} - set(need)
        missing = [p for p in need if getattr(self, p) is None]
        if missing:
            raise ValueError(f"{self.dist} needs {' and '.join(need)} (missing: {missing[0]})")
        given = [p for p in sorted(extra) if getattr(self, p) is not None]
        if given:
            raise ValueError(f"{self.dist} takes {' and '.join(need)}, not {given[0]}")
        return self

    @property
    def expected(self) -> float:
        """The mean of the distribution (s)."""
        if self.dist == "fixed":
            assert self.value is not None
            return self.value
        assert self.mean is not None
        return self.mean


class HoldModel(_Model):
    """A share of answered calls goes on hold once, for ``duration``."""

    probability: float = Field(ge=0, le=1)
    duration: Dist


class Callbacks(_Model):
    """Callers still waiting ``after`` seconds ask for a callback with ``probability``;
    once an agent takes it, the customer answers after ``connect`` seconds."""

    after: float = Field(ge=0)
    probability: float = Field(ge=0, le=1)
    connect: Dist = Dist(dist="fixed", value=0.0)


class AgentGroup(_Model):
    """``count`` agents named ``name-01``, ``name-02``... (``name`` alone when count is 1),
    with the same skills (level 1-5), groups and shift ``[login, logout]``."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.@-]+$")
    count: int = Field(default=1, ge=1)
    skills: dict[str, int] = Field(default_factory=dict)
    groups: list[str] = Field(default_factory=list)
    shift: tuple[Clock, Clock]
    wrap_up: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _order(self) -> AgentGroup:
        if self.shift[1] <= self.shift[0]:
            raise ValueError("shift must end after it starts: [login, logout], e.g. [08:00, 16:30]")
        for skill, level in self.skills.items():
            if not 1 <= level <= 5:
                raise ValueError(f"skill {skill!r} level must be 1-5, got {level}")
        return self

    def names(self) -> list[str]:
        """The agents' names."""
        if self.count == 1:
            return [self.name]
        width = max(2, len(str(self.count)))
        return [f"{self.name}-{i:0{width}d}" for i in range(1, self.count + 1)]


class Scenario(_Model):
    """A simulated day (see the module docstring for the YAML)."""

    name: str = "scenario"
    seed: int | None = None
    acd: str | dict[str, Any]
    interval: float = Field(default=900.0, gt=0)
    start: Clock = 0.0
    end: Clock | None = None
    arrivals: dict[str, list[Annotated[float, Field(ge=0)]]]
    handle: dict[str, Dist]
    patience: dict[str, Dist | None] = Field(default_factory=dict)
    hold: HoldModel | None = None
    answer_delay: Dist = Dist(dist="fixed", value=0.0)
    ready_after: Dist | None = Dist(dist="fixed", value=30.0)
    callbacks: Callbacks | None = None
    agents: list[AgentGroup] = Field(default_factory=list)
    sample_every: float = Field(default=60.0, gt=0)
    sl_threshold: float | None = Field(default=None, ge=0)

    @field_validator("handle")
    @classmethod
    def _handle_every_queue(cls, handle: dict[str, Dist], info: ValidationInfo) -> dict[str, Dist]:
        for queue in info.data.get("arrivals", {}):
            if queue not in handle and "default" not in handle:
                raise ValueError(
                    f"no handle time for queue {queue!r}: add handle.{queue} or handle.default"
                )
        return handle

    @field_validator("agents")
    @classmethod
    def _unique_agents(cls, agents: list[AgentGroup]) -> list[AgentGroup]:
        names: set[str] = set()
        for group in agents:
            for agent in group.names():
                if agent in names:
                    raise ValueError(f"agent {agent!r} is defined twice: rename one agent group")
                names.add(agent)
        return agents

    @property
    def arrivals_end(self) -> float:
        """End of the last arrival interval (s since midnight)."""
        longest = max((len(v) for v in self.arrivals.values()), default=0)
        return self.start + longest * self.interval

    @property
    def day_end(self) -> float:
        """When the simulation stops: ``end``, else the last logout or arrival interval end."""
        if self.end is not None:
            return self.end
        last_shift = max((g.shift[1] for g in self.agents), default=0.0)
        return max(self.arrivals_end, last_shift)

    def handle_for(self, queue: str) -> Dist:
        """The talk-time distribution of ``queue``."""
        return self.handle.get(queue) or self.handle["default"]

    def patience_for(self, queue: str) -> Dist | None:
        """The patience distribution of ``queue`` (None: callers never hang up)."""
        if queue in self.patience:
            return self.patience[queue]
        return self.patience.get("default")

    def expected_calls(self) -> float:
        """Mean number of calls of the day."""
        return float(sum(sum(v) for v in self.arrivals.values()))


class ScenarioError(ValueError):
    """A scenario that cannot be simulated; ``problems`` are ``file:line:col: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _loc_text(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "scenario"


def _data_path(doc: YamlDoc, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """The longest prefix of pydantic's ``loc`` that exists in the YAML data."""
    path: tuple[str | int, ...] = ()
    node: Any = doc.data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            path = (*path, part)
        # union member labels and similar parts of the model path are skipped
    return path


def _problems(doc: YamlDoc, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = _data_path(doc, loc)
        line, col = doc.value_pos(path) if path else (1, 1)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            line, col = doc.key_pos(path)
            msg = "unknown setting: check the spelling (see acd/scenario.py for the keys)"
        elif err["type"] == "missing":
            msg = f"{loc[-1]} is required"
        out.append(f"{doc.file}:{line}:{col}: {_loc_text(path)}: {msg}")
    return out


def _from_doc(doc: YamlDoc) -> Scenario:
    if not isinstance(doc.data, dict):
        raise ScenarioError([f"{doc.file}:1:1: a scenario is a mapping (name:, arrivals:, ...)"])
    try:
        return Scenario.model_validate(doc.data)
    except ValidationError as exc:
        raise ScenarioError(_problems(doc, exc)) from None


def parse_scenario(text: str, file: Path = Path("<scenario>")) -> tuple[Scenario, YamlDoc]:
    """Validate the scenario in ``text`` (shown as ``file`` in errors)."""
    try:
        doc = parse_yaml(text, file)
    except YamlError as exc:
        raise ScenarioError([str(exc.diagnostic)]) from None
    return _from_doc(doc), doc


def load_scenario(path: Path) -> tuple[Scenario, YamlDoc]:
    """Read and validate the scenario file at ``path``."""
    try:
        doc = load_yaml(path)
    except YamlError as exc:
        raise ScenarioError([str(exc.diagnostic)]) from None
    return _from_doc(doc), doc


def queue_names(acd: Mapping[str, Any]) -> list[str]:
    """Queue names of an ACD configuration mapping (for cross-checks before it is built)."""
    queues = acd.get("queues", {})
    return list(queues) if isinstance(queues, dict) else []
