"""Random draws for the simulator, a block at a time.

:class:`Sampler` draws from an :class:`acd.scenario.Dist` (also importable
from there). It lives in its own module so that the compiled build of the
simulator (:mod:`acd.native`) compiles it too: the simulator draws two or
three values per call.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from acd.scenario import Dist

__all__ = ["Sampler"]


class Sampler:
    """Draws from a :class:`Dist` with ``rng``, a block of values at a time (fast per draw)."""

    def __init__(self, dist: Dist, rng: np.random.Generator, block: int = 4096) -> None:
        self.dist = dist
        self.rng = rng
        self.block = block
        self._buf: list[float] = []
        if dist.dist == "lognormal":
            assert dist.mean is not None and dist.sd is not None
            s2 = math.log1p((dist.sd / dist.mean) ** 2)
            self._mu, self._sigma = math.log(dist.mean) - s2 / 2, math.sqrt(s2)

    def _refill(self) -> None:
        d = self.dist
        if d.dist == "exponential":
            assert d.mean is not None
            values = self.rng.exponential(d.mean, self.block)
        elif d.dist == "lognormal":
            values = self.rng.lognormal(self._mu, self._sigma, self.block)
        else:
            values = np.full(self.block, d.value)
        self._buf = values[::-1].tolist()

    def __call__(self) -> float:
        """One draw."""
        if not self._buf:
            self._refill()
        return self._buf.pop()
