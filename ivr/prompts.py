"""Prompts of a flow: resolving a prompt spec to concrete parts, and listing
every static text and audio file a flow set can play (for rendering ahead).

Pure functions over :mod:`ivr.model`; the runtime and the engine's
``prerender`` both use :func:`resolve_prompt` / :func:`say_item`, so the text
rendered ahead of time is exactly the text a call asks for.

Rules
    * A ``say`` text is a Jinja template only when it holds ``{{``, ``{%`` or
      ``{#``; otherwise it is spoken verbatim (stripped of surrounding
      whitespace) and can be rendered before any call.
    * Text per language (``{en: Hi, es: Hola}``) picks the caller's language,
      else the flow's default language, else the first one given; the chosen
      key is the :class:`~ivr.actions.SayText` language (a plain string is in
      the flow's default language).
    * The voice is the part's, else the node's (``say`` nodes), else the flow's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ivr.actions import PlayFile, PromptItem, SayText, Silence, Tone
from ivr.expressions import is_template
from ivr.model import (
    Flow,
    GatherNode,
    HangupNode,
    LanguageNode,
    MenuNode,
    PlayNode,
    PromptPart,
    SayNode,
    VoicemailNode,
)

__all__ = [
    "PromptUse",
    "iter_prompts",
    "pick_text",
    "play_refs",
    "resolve_prompt",
    "say_item",
    "spec_parts",
    "static_speech",
]

Render = Callable[[str], str]
"""Renders a template text with the call's variables."""

PROMPT_FIELDS = ("prompt", "no_input_prompt", "invalid_prompt")


def pick_text(text: str | Mapping[str, str], language: str, flow_language: str) -> tuple[str, str]:
    """(text, its language) for the caller's ``language`` (see module rules)."""
    if isinstance(text, str):
        return text, flow_language
    for lang in (language, flow_language):
        if lang in text:
            return text[lang], lang
    lang, value = next(iter(text.items()))
    return value, lang


def spec_parts(spec: Any) -> list[PromptPart]:
    """A prompt spec (text, text per language, or list of parts) as a list of parts."""
    if spec is None:
        return []
    if isinstance(spec, str | dict):
        return [PromptPart(say=spec)]
    return list(spec)


def say_item(
    text: str | Mapping[str, str],
    *,
    language: str,
    flow: Flow,
    voice: str | None,
    render: Render | None,
) -> SayText:
    """The :class:`SayText` a ``say`` text becomes for a caller in ``language``.

    ``render`` renders templates; None is allowed only for static text.
    """
    chosen, lang = pick_text(text, language, flow.language)
    if is_template(chosen):
        if render is None:
            raise ValueError(f"text {chosen[:40]!r} is a template: it needs the call's variables")
        chosen = render(chosen)
    return SayText(chosen.strip(), lang, voice or flow.voice)


def resolve_prompt(
    spec: Any,
    *,
    language: str,
    flow: Flow,
    voice: str | None = None,
    render: Render,
) -> tuple[PromptItem, ...]:
    """A prompt spec as concrete parts for a caller in ``language``.

    Empty texts (after rendering) are dropped; ``play`` names holding Jinja
    syntax are rendered too (``sound:digits/{{ d }}``).
    """
    out: list[PromptItem] = []
    for part in spec_parts(spec):
        if part.say is not None:
            item = say_item(
                part.say, language=language, flow=flow, voice=part.voice or voice, render=render
            )
            if item.text:
                out.append(item)
        elif part.play is not None:
            ref = render(part.play).strip() if is_template(part.play) else part.play
            out.append(PlayFile(ref))
        elif part.silence is not None:
            out.append(Silence(part.silence))
        elif part.tone is not None:
            out.append(Tone(part.tone))
    return tuple(out)


@dataclass(frozen=True)
class PromptUse:
    """One place a flow speaks or plays: ``flow``/``node``/``field`` and its spec."""

    flow: Flow
    node: str
    field: str
    spec: Any
    voice: str | None


def iter_prompts(flow: Flow) -> Iterator[PromptUse]:
    """Every prompt spec of ``flow`` (``play`` nodes as lists of play parts)."""
    for node_id, node in flow.nodes.items():
        if isinstance(node, SayNode):
            yield PromptUse(flow, node_id, "text", [PromptPart(say=node.text)], node.voice)
        elif isinstance(node, PlayNode):
            files = [node.audio] if isinstance(node.audio, str) else node.audio
            yield PromptUse(flow, node_id, "audio", [PromptPart(play=f) for f in files], None)
        elif isinstance(node, MenuNode | GatherNode | LanguageNode | VoicemailNode | HangupNode):
            for name in PROMPT_FIELDS:
                spec = getattr(node, name, None)
                if spec is not None:
                    yield PromptUse(flow, node_id, name, spec, None)


def _texts(say: str | Mapping[str, str], flow: Flow) -> Iterator[tuple[str, str]]:
    if isinstance(say, str):
        yield say, flow.language
    else:
        yield from ((text, lang) for lang, text in say.items())


def static_speech(flows: Iterable[Flow]) -> list[SayText]:
    """Every static text the flows can speak, once each, as the runtime will ask
    for it (same text, language and voice): what to render ahead of time."""
    seen: dict[SayText, None] = {}
    for flow in flows:
        for use in iter_prompts(flow):
            for part in spec_parts(use.spec):
                if part.say is None:
                    continue
                for text, lang in _texts(part.say, flow):
                    if is_template(text) or not text.strip():
                        continue
                    voice = part.voice or use.voice or flow.voice
                    seen[SayText(text.strip(), lang, voice)] = None
    return list(seen)


def play_refs(flows: Iterable[Flow]) -> list[str]:
    """Every static audio file or ``sound:NAME`` the flows can play, once each."""
    seen: dict[str, None] = {}
    for flow in flows:
        for use in iter_prompts(flow):
            for part in spec_parts(use.spec):
                if part.play is not None and not is_template(part.play):
                    seen[part.play] = None
    return list(seen)
