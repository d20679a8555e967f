"""Retention written beside the queues, in ``flows/queues.yaml``, checked with file:line:column.

The ACD owns the file (acd/config.py reads its queues and agents and lets a
``retention`` key through); this module reads only the retention keys::

    defaults:
      retention: {days: 365}      # every recording, also calls that reached no queue
    queues:
      billing:
        retention: {days: 90}     # calls whose last queue was billing
      vip:
        retention: {days: 0}      # 0: kept for ever

``days`` is a whole number >= 0. A recording under legal hold is kept
whatever the policy says.

:class:`RetentionSettings` holds the policy in force. It follows the flows
hot reload like the ACD does (each published version's ``queues.yaml``); a
text with errors is refused with every error (file:line:column and the fix),
logged and shown by ``GET /recordings/retention``, and the policy in force
stays: bad input never deletes anything. ``CALLCORE_RETENTION`` (the older
way to give the policy) still works, as an override over the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from ivr.diagnostics import Diagnostic, errors, sort_key
from ivr.yamldoc import DataPath, YamlDoc, YamlError, parse_yaml
from recordings.retention import RetentionError, RetentionPolicy, override_policy

__all__ = [
    "MAX_DAYS",
    "QUEUES_FILE",
    "RetentionConfigError",
    "RetentionSettings",
    "check_retention_text",
]

log = structlog.get_logger("recordings.retention")

QUEUES_FILE = "queues.yaml"
MAX_DAYS = 36600
"""A hundred years: more is surely a typo (0 keeps for ever)."""
_KEYS = ("days",)


class RetentionConfigError(ValueError):
    """A queues.yaml whose retention cannot be used; ``diagnostics`` lists every error."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errs = errors(diagnostics)
        head = f"{len(errs)} error{'s' if len(errs) != 1 else ''} in the retention settings"
        super().__init__("\n".join([head, *(str(d) for d in errs)]))


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    return {dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _retention(doc: YamlDoc, path: DataPath, what: str, diags: list[Diagnostic]) -> int | None:
    """The days of the ``retention`` mapping at ``path`` (None: absent or wrong)."""
    value = doc.data
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, dict):
        diags.append(
            doc.diagnostic(
                "error",
                doc.value_pos(path),
                f"{what} retention must be a mapping, not {_kind(value)}",
                "write `retention: {days: 90}` (0 keeps for ever)",
            )
        )
        return None
    ok = True
    for key in value:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), _KEYS, n=1)
            diags.append(
                doc.diagnostic(
                    "error",
                    doc.key_pos((*path, key)),
                    f"unknown key {key!r} in {what} retention",
                    f"did you mean {close[0]!r}?" if close else "the only key is `days`",
                )
            )
            ok = False
    if "days" not in value:
        diags.append(
            doc.diagnostic(
                "error",
                doc.value_pos(path),
                f"{what} retention has no `days`",
                "write `retention: {days: 90}` (0 keeps for ever)",
            )
        )
        return None
    days = value["days"]
    where = doc.value_pos((*path, "days"))
    if isinstance(days, bool) or not isinstance(days, int):
        diags.append(
            doc.diagnostic(
                "error",
                where,
                f"{what} retention days must be a whole number, not {_kind(days)} {days!r}",
                "write e.g. `days: 90` (0 keeps for ever)",
            )
        )
        return None
    if not 0 <= days <= MAX_DAYS:
        diags.append(
            doc.diagnostic(
                "error",
                where,
                f"{what} retention days must be 0 to {MAX_DAYS}, not {days}",
                "write the days to keep recordings, e.g. 90; 0 keeps them for ever",
            )
        )
        return None
    return days if ok else None


def check_retention_text(
    text: str, file: Path = Path(QUEUES_FILE)
) -> tuple[RetentionPolicy | None, list[Diagnostic]]:
    """The retention policy written in queues.yaml ``text`` (shown as ``file``) and the
    errors found (the policy is None when there is any). Only retention keys are
    checked: the rest of the file is the ACD's (acd.config)."""
    try:
        doc = parse_yaml(text, file)
    except YamlError as exc:
        return None, [exc.diagnostic]
    diags: list[Diagnostic] = []
    data = doc.data if isinstance(doc.data, dict) else {}
    default = 0
    defaults = data.get("defaults")
    if isinstance(defaults, dict) and "retention" in defaults:
        got = _retention(doc, ("defaults", "retention"), "defaults", diags)
        default = got if got is not None else default
    queues: dict[str, int] = {}
    raw = data.get("queues")
    if isinstance(raw, dict):
        for name, body in raw.items():
            if isinstance(body, dict) and "retention" in body:
                got = _retention(doc, ("queues", name, "retention"), f"queue {name!r}", diags)
                if got is not None:
                    queues[str(name)] = got
    diags.sort(key=sort_key)
    if errors(diags):
        return None, diags
    return RetentionPolicy(default, queues), diags


class RetentionSettings:
    """The retention policy in force (see module docstring).

    ``override``: the ``CALLCORE_RETENTION`` text (checked already by the
    engine configuration), applied over whatever the file says.
    """

    def __init__(self, override: str = "", file: Path = Path(QUEUES_FILE)) -> None:
        self.override = override
        self.file = file
        self.text: str | None = None
        """The queues.yaml text the policy in force was read from (None: none read)."""
        self.file_policy = RetentionPolicy()
        self.errors: list[str] | None = None
        """The errors of the last queues.yaml refused (None: the last one is in force)."""
        self._refused: str | None = None
        self.on_change: list[Callable[[RetentionPolicy], None]] = []
        """Told the new policy each time one is put in force (the engine runs a pass)."""
        self.policy = self._with_override(self.file_policy)

    def _with_override(self, base: RetentionPolicy) -> RetentionPolicy:
        try:
            return override_policy(base, self.override)
        except RetentionError as exc:  # EngineConfig.from_env refuses this already
            log.error("retention.override_refused", value=self.override, error=str(exc))
            return base

    def load(self, text: str | None, file: Path | None = None) -> bool:
        """Put the retention of queues.yaml ``text`` in force (None: there is no file,
        so nothing is deleted but by the override). Returns whether it was applied;
        a text with errors is refused and the policy in force stays."""
        if file is not None:
            self.file = file
        if text is not None and text == (self.text if self.errors is None else self._refused):
            return False  # the same text again (another file of the flows changed)
        if text is None:
            policy: RetentionPolicy | None = RetentionPolicy()
            diags: list[Diagnostic] = []
        else:
            policy, diags = check_retention_text(text, self.file)
        if policy is None:
            self._refused = text
            self.errors = [str(d) for d in errors(diags)]
            for problem in self.errors:
                log.error("retention.config_error", problem=problem)
            log.error(
                "retention.reload_refused",
                file=str(self.file),
                hint="fix the errors above; the retention in force stays",
                default=self.policy.default,
                queues=dict(self.policy.queues),
            )
            return False
        self.text = text
        self.errors = None
        self.file_policy = policy
        self.policy = self._with_override(policy)
        for listener in self.on_change:
            listener(self.policy)
        log.info(
            "retention.policy",
            file=str(self.file),
            default=self.policy.default,
            queues=dict(self.policy.queues),
            override=self.override or None,
        )
        return True

    def load_file(self, path: Path) -> bool:
        """:meth:`load` the file at ``path`` (absent: no file)."""
        self.file = path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self.load(None)
        except OSError as exc:
            self.errors = [f"{path}: cannot be read ({exc}); make it readable"]
            log.error("retention.config_error", problem=self.errors[0])
            return False
        return self.load(text)

    def follow(self, live: Any) -> None:
        """A flow-set swap of the hot-reload registry: :meth:`load` its queues.yaml."""
        sources: Mapping[str, str] = getattr(live.flowset, "sources", {})
        self.load(sources.get(QUEUES_FILE))

    def status(self) -> dict[str, Any]:
        """JSON-ready: the policy in force, where it comes from, the last refusal."""
        return {
            "default_days": self.policy.default,
            "queues": dict(self.policy.queues),
            "file": str(self.file),
            "file_policy": {
                "default_days": self.file_policy.default,
                "queues": dict(self.file_policy.queues),
            },
            "override": self.override or None,
            "errors": self.errors,
        }
