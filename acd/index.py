"""Indexed matcher: routing decisions without scanning every agent or call.

Available agents are grouped by *source*: one per ``(skill, level)``, one
per group, and one for everyone. A source keeps a sorted list of its
agents per strategy key (``(strategy.key(agent), agent.index)``), built
the first time a query walks that source with that key and kept up to
date after, so an agent becoming (un)available touches only the lists
some queue actually uses. Finding agents for a requirement walks the
smallest candidate source in strategy order and stops after ``limit``
matches:

* skills required: the pivot is the required skill with the fewest
  available agents at or above its level (``most_skilled``: the primary
  skill, walked level 5 down to the minimum); the ``(skill, level)`` lists
  of the pivot are merged lazily (heapq.merge) so agents below the level
  are never visited; the other skills and groups are checked per agent;
* only groups: the groups' lists merged (an agent in two groups is seen once);
* nothing: the list of all available agents;
* round robin: agents after the queue's pointer, then the rest (irange).

Waiting calls sit in one sorted list per distinct requirement (bucket),
keyed by ``Call.rank`` (plain lists kept sorted with ``bisect``, like the
agents' lists). Each agent remembers which requirements it meets,
checked once per (agent, requirement), lazily, and only for requirements
filed under one of the agent's skills or groups (a requirement is filed
under its primary skill, else its groups, else "any"); the best call for
an agent is the smallest head among those buckets.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator
from itertools import chain, islice

from acd.matching import Entry, Matcher
from acd.model import MAX_LEVEL, Agent, Call, Requirement
from acd.strategies import SortKey, Strategy

__all__ = ["IndexedMatcher"]


class _Lists:
    """The available agents of one source (a skill at one level, a group,
    or everyone): their indexes, and sorted lists of their entries for the
    key functions that queries have asked this source for (built on first
    use, then kept up to date).

    The sorted lists are plain Python lists kept in order with ``bisect``:
    an update is one C-level binary search and one memmove, which for the
    sizes a source has (the available agents holding one skill at one
    level: hundreds to a few thousand) costs less than a SortedList's
    Python-level bookkeeping (measured in bench/acd_day.py)."""

    __slots__ = ("lists", "members")

    def __init__(self) -> None:
        self.members: set[int] = set()
        self.lists: dict[SortKey, list[Entry]] = {}

    @property
    def count(self) -> int:
        return len(self.members)


class IndexedMatcher(Matcher):
    """Indexed :class:`acd.matching.Matcher` (see the module docstring)."""

    def __init__(self) -> None:
        self._available: dict[int, Agent] = {}
        self._keys: list[SortKey] = []
        self._entries: dict[int, dict[SortKey, Entry]] = {}
        self._by_skill: dict[tuple[str, int], _Lists] = {}
        self._by_group: dict[str, _Lists] = {}
        self._all = _Lists()
        self._agent_sources: dict[int, tuple[_Lists, ...]] = {}
        self._fixed_passes: dict[tuple[Requirement, SortKey, bool], list[list[list[Entry]]]] = {}
        """agents_for's lists for a requirement of at most one skill (see there)."""
        """Each agent's sources (an agent's skills and groups do not change
        while this matcher lives: a reconfiguration builds a new one)."""
        # calls
        self._requirements: list[Requirement] = []
        self._requirement_ids: dict[Requirement, int] = {}
        self._buckets: list[list[tuple[int, float, int]]] = []
        """Per requirement: the ranks of its waiting calls, sorted (bisect)."""
        self._calls: dict[int, Call] = {}
        self._call_bucket: dict[int, int] = {}
        self._agent_requirements: dict[int, tuple[int, list[int]]] = {}
        self._by_anchor: dict[tuple[str, str], list[int]] = {}

    # ------------------------------------------------------------ agents
    def _sources(self, agent: Agent) -> Iterator[_Lists]:
        for skill, level in agent.config.skills.items():
            lists = self._by_skill.get((skill, level))
            if lists is None:
                lists = self._by_skill[(skill, level)] = _Lists()
                self._fixed_passes.clear()  # a query may have to walk it too
            yield lists
        for group in agent.config.groups:
            lists = self._by_group.get(group)
            if lists is None:
                lists = self._by_group[group] = _Lists()
                self._fixed_passes.clear()
            yield lists
        yield self._all

    def add_agent(self, agent: Agent) -> None:
        index = agent.index
        entries = {}
        for key in self._keys:
            entries[key] = (key(agent), index)
        self._entries[index] = entries
        self._available[index] = agent
        sources = self._agent_sources.get(index)
        if sources is None:
            sources = self._agent_sources[index] = tuple(self._sources(agent))
        for source in sources:
            source.members.add(index)
            for key, ordered in source.lists.items():
                insort(ordered, entries[key])

    def remove_agent(self, agent: Agent) -> None:
        index = agent.index
        entries = self._entries.pop(index)
        del self._available[index]
        for source in self._agent_sources[index]:
            source.members.discard(index)
            for key, ordered in source.lists.items():
                del ordered[bisect_left(ordered, entries[key])]  # it is there: entries are unique

    def _ordered_list(self, source: _Lists, key: SortKey) -> list[Entry]:
        """``source``'s agents sorted by ``key`` (built on the first query)."""
        ordered = source.lists.get(key)
        if ordered is None:
            if key not in self._keys:  # first use of this strategy's key
                self._keys.append(key)
                for index, agent in self._available.items():
                    self._entries[index][key] = (key(agent), index)
            entries = self._entries
            ordered = source.lists[key] = sorted(entries[index][key] for index in source.members)
        return ordered

    def agents_for(
        self, requirement: Requirement, strategy: Strategy, pointer: Entry | None, limit: int | None
    ) -> list[tuple[Agent, Entry]]:
        if not self._available:
            return []
        found: list[tuple[Agent, Entry]] = []
        skills_needed = requirement.skills
        groups_needed = requirement.groups
        if len(skills_needed) <= 1 and not groups_needed and not strategy.rotate:
            # every agent in the lists qualifies (they hold the one skill at
            # the level, or nothing is required): the first ``limit`` in
            # order; which lists to walk depends only on the requirement and
            # the strategy (until a new source appears: see _sources)
            cache_key = (requirement, strategy.key, strategy.by_level)
            passes = self._fixed_passes.get(cache_key)
            if passes is None:
                passes = self._fixed_passes[cache_key] = self._passes(requirement, strategy)[0]
            available = self._available
            if limit is None:
                for lists in passes:
                    for entry in _first(lists, None):
                        found.append((available[entry[1]], entry))
                return found
            for lists in passes:
                for entry in _first(lists, limit - len(found)):
                    found.append((available[entry[1]], entry))
                if len(found) >= limit:
                    break
            return found
        passes, dedupe = self._passes(requirement, strategy)
        seen: set[int] = set()
        for lists in passes:
            for entry in _ordered(lists, pointer if strategy.rotate else None):
                index = entry[1]
                if dedupe:
                    if index in seen:
                        continue
                    seen.add(index)
                agent = self._available[index]
                config = agent.config
                ok = True
                for skill, level in skills_needed:
                    if config.skills.get(skill, 0) < level:
                        ok = False
                        break
                if not ok or (groups_needed and groups_needed.isdisjoint(config.groups)):
                    continue
                found.append((agent, entry))
                if limit is not None and len(found) >= limit:
                    return found
        return found

    def _passes(
        self, requirement: Requirement, strategy: Strategy
    ) -> tuple[list[list[list[Entry]]], bool]:
        """The sorted lists to walk, pass after pass (by_level: one pass per
        level, highest first), and whether an agent can appear twice."""
        key = strategy.key
        lst = self._ordered_list
        passes: list[list[list[Entry]]]
        dedupe = False
        if requirement.skills:
            if strategy.by_level:
                skill, low = requirement.skills[0]
                passes = [
                    [lst(self._by_skill[(skill, level)], key)]
                    for level in range(MAX_LEVEL, low - 1, -1)
                    if (skill, level) in self._by_skill
                ]
            else:
                skill, low = min(requirement.skills, key=self._available_at_least)
                passes = [
                    [
                        lst(self._by_skill[(skill, level)], key)
                        for level in range(low, MAX_LEVEL + 1)
                        if (skill, level) in self._by_skill
                    ]
                ]
                if requirement.groups and self._in_groups(requirement) < self._available_at_least(
                    (skill, low)
                ):
                    passes, dedupe = [self._group_lists(requirement, key)], True
        elif requirement.groups:
            passes, dedupe = [self._group_lists(requirement, key)], True
        else:
            passes = [[lst(self._all, key)]]
        return passes, dedupe

    def _available_at_least(self, skill_level: tuple[str, int]) -> int:
        skill, low = skill_level
        total = 0
        for level in range(low, MAX_LEVEL + 1):
            lists = self._by_skill.get((skill, level))
            if lists is not None:
                total += lists.count
        return total

    def _in_groups(self, requirement: Requirement) -> int:
        return sum(
            lists.count
            for group in requirement.groups
            if (lists := self._by_group.get(group)) is not None
        )

    def _group_lists(self, requirement: Requirement, key: SortKey) -> list[list[Entry]]:
        return [
            self._ordered_list(self._by_group[group], key)
            for group in sorted(requirement.groups)
            if group in self._by_group
        ]

    # ------------------------------------------------------------- calls
    def add_call(self, call: Call) -> None:
        requirement = call.requirement
        bucket_id = self._requirement_ids.get(requirement)
        if bucket_id is None:
            bucket_id = len(self._requirements)
            self._requirements.append(requirement)
            self._requirement_ids[requirement] = bucket_id
            self._buckets.append([])
            for anchor in _requirement_anchors(requirement):
                self._by_anchor.setdefault(anchor, []).append(bucket_id)
        insort(self._buckets[bucket_id], call.rank)
        self._calls[call.seq] = call
        self._call_bucket[call.seq] = bucket_id

    def remove_call(self, call: Call) -> None:
        bucket_id = self._call_bucket.pop(call.seq)
        bucket = self._buckets[bucket_id]
        rank = call.rank
        index = bisect_left(bucket, rank)
        if index == len(bucket) or bucket[index] != rank:
            raise ValueError(f"call {call.id!r} is not waiting in the matcher")
        del bucket[index]
        del self._calls[call.seq]

    def call_for(self, agent: Agent) -> tuple[Call | None, int]:
        if not self._calls:
            return None, 0
        known = self._agent_requirements.get(agent.index)
        if known is None:
            known = (0, [])
        checked, matched = known
        if checked < len(self._requirements):
            # only requirements anchored on one of the agent's skills or
            # groups (or on nothing) can match; each is checked once per agent
            skills, groups = agent.config.skills, agent.config.groups
            fresh: set[int] = set()
            for anchor in _agent_anchors(agent):
                ids = self._by_anchor.get(anchor)
                if ids:
                    fresh.update(ids[bisect_left(ids, checked) :])
            requirements = self._requirements
            for bucket_id in sorted(fresh):
                if requirements[bucket_id].matches(skills, groups):
                    matched.append(bucket_id)
            self._agent_requirements[agent.index] = (len(requirements), matched)
        best: tuple[int, float, int] | None = None
        count = 0
        buckets = self._buckets
        for bucket_id in matched:
            bucket = buckets[bucket_id]
            if bucket:
                count += len(bucket)
                head = bucket[0]
                if best is None or head < best:
                    best = head
        if best is None:
            return None, 0
        return self._calls[best[2]], count


def _requirement_anchors(requirement: Requirement) -> list[tuple[str, str]]:
    """Where a requirement is filed: its primary skill, else each of its
    groups, else the catch-all (an agent must have what it is filed under)."""
    if requirement.skills:
        return [("skill", requirement.skills[0][0])]
    if requirement.groups:
        return [("group", group) for group in requirement.groups]
    return [("any", "")]


def _agent_anchors(agent: Agent) -> Iterator[tuple[str, str]]:
    for skill in agent.config.skills:
        yield ("skill", skill)
    for group in agent.config.groups:
        yield ("group", group)
    yield ("any", "")


def _first(lists: list[list[Entry]], limit: int | None) -> Iterable[Entry]:
    """The first ``limit`` entries (``None``: all) of ``lists`` merged in order."""
    if limit is None:
        filled = [ordered for ordered in lists if ordered]
        if len(filled) == 1:
            return filled[0]
        if not filled:
            return ()
        return heapq.merge(*filled)
    if len(lists) == 1:
        return lists[0][:limit]
    # the first ``limit`` of the merge are the first ``limit`` of each list's
    # first ``limit``, sorted (entries are unique: the order is total)
    merged: list[Entry] = []
    for ordered in lists:
        if ordered:
            merged += ordered[:limit]
    merged.sort()
    return merged[:limit]


def _ordered(lists: list[list[Entry]], pointer: Entry | None) -> Iterable[Entry]:
    """Entries of ``lists`` in order; with a round-robin ``pointer``, those
    after it first, then the others."""
    if pointer is None:
        if len(lists) == 1:
            return lists[0]
        return heapq.merge(*lists)
    cuts = [bisect_right(ordered, pointer) for ordered in lists]
    after = [
        map(ordered.__getitem__, range(cut, len(ordered)))
        for ordered, cut in zip(lists, cuts, strict=True)
    ]
    before = [islice(ordered, cut) for ordered, cut in zip(lists, cuts, strict=True)]
    return chain(heapq.merge(*after), heapq.merge(*before))
