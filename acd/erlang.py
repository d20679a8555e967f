"""Staffing maths: Erlang B, Erlang C (M/M/n) and Erlang A (M/M/n+M).

Units: rates are per second, times are seconds. ``a = arrival_rate * aht`` is
the offered load in Erlangs. Every function is pure and deterministic.

Numerical method (the rule this module keeps): nothing is computed as
``a**n / n!``. Erlang B comes from Jagerman's recursion carried in log space,
``L(k) = log(1/B(k)) = log(1 + (k/a) * exp(L(k-1)))``, which neither
overflows nor underflows for n in the tens of thousands. Erlang A is written
with the regularized lower incomplete gamma function P(x, u) (scipy's
``gammainc``) and its logarithm; where P underflows (deep lower tail) its
log comes from the convergent series ``P(x,u) = u^x e^-u / Gamma(x+1) *
sum_k u^k / ((x+1)...(x+k))``. Products of huge and tiny factors are added as
logarithms before one final ``exp``.

Formulas (with the references they come from):

* Erlang B, blocking of M/M/n/n: ``B(0)=1, B(k) = a B(k-1) / (k + a B(k-1))``
  (D. L. Jagerman, "Some properties of the Erlang loss function", Bell System
  Technical Journal 53(3), 1974).
* Erlang C, probability of wait in M/M/n, ``a < n``:
  ``C = n B / (n - a (1 - B))``; service level ``P(W <= t) = 1 - C exp(-(n - a)
  t / aht)``; ``ASA = E[W] = C aht / (n - a)``; occupancy ``a / n``
  (L. Kleinrock, Queueing Systems vol. 1, 1975, section 3.5; G. Koole,
  "Call Center Optimization", 2013, chapter 5).
* Erlang A (Palm's M/M/n+M, exponential patience of rate theta): with
  ``x = n mu / theta``, ``y = lambda / theta`` and
  ``S = sum_j y^j / ((x+1)...(x+j)) = x e^y y^-x gamma(x, y)``,
  ``pi_n = B / (1 + (S - 1) B)``, ``P(wait) = S pi_n``,
  ``P(abandon) = pi_n ((y - x) S + x) / y``
  (O. Garnett, A. Mandelbaum, M. Reiman, "Designing a call center with
  impatient customers", M&SOM 4(3), 2002; A. Mandelbaum, S. Zeltyn, "The
  Palm/Erlang-A queue, with applications to call centers", 2004/2007).
  The offered wait V (the wait a caller with infinite patience would have)
  has ``P(V > t) = pi_n x e^y y^-x gamma(x, y e^(-theta t))``; a caller is
  answered within t when ``V <= t`` and patience exceeds V, so
  ``P(answered, V <= t) = 1 - P(wait) + pi_n x e^y y^-(x+1)
  [gamma(x+1, y) - gamma(x+1, y e^(-theta t))]``. (Derived here by summing
  the hypoexponential wait ``sum_{i=0..j} Exp(n mu + i theta)`` of a caller
  who finds j waiting, weighted by the stationary distribution; the
  module's tests check every one against an independent numerical solve of
  the birth-death chain and of the tagged caller's absorbing chain.)
  Abandoned-within-t and the answered callers' mean wait (ASA) are the
  integrals ``int_0^t theta e^(-theta s) P(V > s) ds`` and
  ``int_0^inf P(s < V < patience) ds / P(answered)``, done by quadrature.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import integrate, special

__all__ = [
    "ErlangA",
    "ErlangC",
    "agents_for_asa",
    "agents_for_service_level",
    "erlang_a_agents_for_service_level",
    "erlang_b",
    "erlang_c",
    "log_erlang_b",
    "offered_load",
]

_TINY_P = 1e-250  # below this, P(x, u) from gammainc is replaced by the log-space series


def offered_load(calls: float, interval_s: float, aht: float) -> float:
    """Offered load in Erlangs of ``calls`` arriving in ``interval_s`` seconds, AHT ``aht`` s."""
    if interval_s <= 0:
        raise ValueError(f"interval_s must be > 0 seconds, got {interval_s}")
    if calls < 0 or aht < 0:
        raise ValueError(f"calls and aht must be >= 0, got calls={calls}, aht={aht}")
    return calls * aht / interval_s


def _check_agents(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"agents must be a whole number >= 0, got {n!r}")


def _check_load(a: float) -> None:
    if not (a >= 0.0) or math.isinf(a):
        raise ValueError(f"offered load must be a finite number of Erlangs >= 0, got {a!r}")


def _log_inv_b_steps(a: float) -> Iterator[float]:
    """Yield ``log(1/B(k, a))`` for k = 0, 1, 2, ... (Jagerman's recursion in log space)."""
    lv = 0.0  # B(0) = 1
    yield lv
    k = 0
    log_a = math.log(a)
    while True:
        k += 1
        u = math.log(k) - log_a + lv
        lv = u + math.log1p(math.exp(-u)) if u > 0 else math.log1p(math.exp(u))
        yield lv


def log_erlang_b(n: int, a: float) -> float:
    """``log B(n, a)``, the log of Erlang B's blocking probability (``-inf`` when B is 0)."""
    _check_agents(n)
    _check_load(a)
    if a == 0.0:
        return 0.0 if n == 0 else -math.inf
    lv = 0.0
    for k, lv in enumerate(_log_inv_b_steps(a)):  # noqa: B007 - lv is the result
        if k == n:
            break
    return -lv


def erlang_b(n: int, a: float) -> float:
    """Erlang B: probability that a call offered ``a`` Erlangs finds all ``n`` lines busy.

    ``B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1))`` (Jagerman 1974), run in log space.
    """
    return math.exp(log_erlang_b(n, a))


def _log_c_from_log_b(n: int, a: float, log_b: float) -> float:
    """``log C`` from ``log B``: ``C = n B / (n - a (1 - B))``, requires ``a < n``."""
    b = math.exp(log_b)
    return math.log(n) + log_b - math.log(n - a + a * b)


def erlang_c(n: int, a: float) -> float:
    """Erlang C: probability that a call waits in M/M/n with load ``a`` (1.0 when ``a >= n``).

    ``C = n B(n, a) / (n - a (1 - B(n, a)))`` (Kleinrock 1975, eq. 3.40 in B-form).
    """
    _check_agents(n)
    _check_load(a)
    if a == 0.0:
        return 0.0
    if a >= n:
        return 1.0
    return math.exp(_log_c_from_log_b(n, a, log_erlang_b(n, a)))


@dataclass(frozen=True)
class ErlangC:
    """M/M/n with infinite patience: ``arrival_rate`` calls/s, mean handle ``aht`` s, ``agents``.

    When the load reaches the agents (``a >= n``) the queue grows without bound:
    ``p_wait`` is 1, ``asa`` infinite and every service level 0.
    """

    arrival_rate: float
    aht: float
    agents: int

    def __post_init__(self) -> None:
        _check_agents(self.agents)
        if not (self.arrival_rate >= 0) or not (self.aht > 0):
            raise ValueError(
                f"need arrival_rate >= 0 and aht > 0 seconds, got {self.arrival_rate}, {self.aht}"
            )

    @property
    def load(self) -> float:
        """Offered load ``a = lambda * aht`` in Erlangs."""
        return self.arrival_rate * self.aht

    @property
    def stable(self) -> bool:
        """True when ``a < n`` (the queue has a steady state)."""
        return self.load < self.agents

    @cached_property
    def p_wait(self) -> float:
        """Probability that a call has to wait (Erlang C)."""
        return erlang_c(self.agents, self.load)

    @property
    def occupancy(self) -> float:
        """Fraction of agent time busy: ``a / n`` (capped at 1)."""
        if self.agents == 0:
            return 1.0 if self.load > 0 else 0.0
        return min(1.0, self.load / self.agents)

    @property
    def asa(self) -> float:
        """Average speed of answer ``C * aht / (n - a)`` in seconds (over all calls)."""
        if self.load == 0.0:
            return 0.0
        if not self.stable:
            return math.inf
        return self.p_wait * self.aht / (self.agents - self.load)

    def service_level(self, threshold: float) -> float:
        """``P(W <= t) = 1 - C exp(-(n - a) t / aht)``: share answered within ``threshold`` s."""
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0 seconds, got {threshold}")
        if self.load == 0.0:
            return 1.0
        if not self.stable:
            return 0.0
        return 1.0 - self.p_wait * math.exp(-(self.agents - self.load) * threshold / self.aht)

    @property
    def mean_queue_length(self) -> float:
        """Mean number waiting ``lambda * ASA`` (Little's law)."""
        return self.arrival_rate * self.asa if self.load else 0.0


def _search_agents(a: float, ok: object, max_agents: int, what: str) -> int:
    """Smallest n in (floor(a), max_agents] with ``ok(n, log_b)`` true (B from one recursion)."""
    assert callable(ok)
    if a == 0.0:
        return 0
    start = math.floor(a) + 1
    for n, lv in enumerate(_log_inv_b_steps(a)):
        if n > max_agents:
            break
        if n >= start and ok(n, -lv):
            return n
    raise ValueError(
        f"no staffing up to {max_agents} agents reaches {what} at {a:.6g} Erlangs; "
        "lower the target or raise max_agents"
    )


def _default_max(a: float) -> int:
    return math.ceil(a + 20.0 * math.sqrt(a) + 100.0)


def agents_for_service_level(
    arrival_rate: float,
    aht: float,
    target: float,
    threshold: float,
    max_agents: int | None = None,
) -> int:
    """Fewest agents whose Erlang C service level ``P(W <= threshold)`` is >= ``target``.

    ``target`` is a fraction in (0, 1), e.g. 0.8 with ``threshold=20`` for 80/20.
    """
    if not 0.0 < target < 1.0:
        raise ValueError(f"target service level must be a fraction in (0, 1), got {target}")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0 seconds, got {threshold}")
    a = arrival_rate * aht
    _check_load(a)

    def ok(n: int, log_b: float) -> bool:
        c = math.exp(_log_c_from_log_b(n, a, log_b))
        return 1.0 - c * math.exp(-(n - a) * threshold / aht) >= target

    return _search_agents(a, ok, max_agents or _default_max(a), f"service level {target}")


def agents_for_asa(
    arrival_rate: float, aht: float, target_asa: float, max_agents: int | None = None
) -> int:
    """Fewest agents whose Erlang C ASA ``C aht / (n - a)`` is <= ``target_asa`` seconds."""
    if target_asa < 0:
        raise ValueError(f"target ASA must be >= 0 seconds, got {target_asa}")
    a = arrival_rate * aht
    _check_load(a)

    def ok(n: int, log_b: float) -> bool:
        c = math.exp(_log_c_from_log_b(n, a, log_b))
        return c * aht / (n - a) <= target_asa

    return _search_agents(a, ok, max_agents or _default_max(a), f"ASA {target_asa} s")


# --------------------------------------------------------------------------- Erlang A


def _log_series_p(x: float, u: float) -> float:
    """``log P(x, u)`` by the series; used only where P underflows (then ``u < x``)."""
    # P(x,u) = u^x e^-u / Gamma(x+1) * sum_{k>=0} u^k / ((x+1)...(x+k))
    head = x * math.log(u) - u - special.gammaln(x + 1.0)
    total = -math.inf
    log_term = 0.0
    k0 = 1
    chunk = 256
    log_u = math.log(u)
    total = 0.0  # k = 0 term is 1 -> log 1
    while True:
        ks = np.arange(k0, k0 + chunk, dtype=np.float64)
        steps = log_u - np.log(x + ks)
        logs = log_term + np.cumsum(steps)
        total = float(np.logaddexp(total, special.logsumexp(logs)))
        log_term = float(logs[-1])
        k0 += chunk
        if log_term < total - 40.0 and steps[-1] < 0:
            break
        chunk = min(chunk * 2, 1 << 16)
    return float(head + total)


def _log_p(x: float, u: float) -> float:
    """``log P(x, u)``, the log of the regularized lower incomplete gamma function."""
    if u <= 0.0:
        return -math.inf
    p = float(special.gammainc(x, u))
    if p > _TINY_P:
        return math.log(p)
    return _log_series_p(x, u)


def _quad(f: Callable[[float], float], lo: float, hi: float) -> float:
    """Adaptive quadrature of a smooth, positive integrand.

    ``full_output`` keeps QUADPACK's round-off notes quiet: with very patient callers
    (theta -> 0) the integrand is computed to ~1e-13 relative and QUADPACK reports it
    cannot reach the absolute tolerance; the value is still good to ~1e-9 relative.
    """
    out = integrate.quad(f, lo, hi, limit=200, epsabs=1e-14, epsrel=1e-10, full_output=1)
    return float(out[0])


def _log_s_series(x: float, y: float) -> tuple[float, float]:
    """``(log S, log sum_j j t_j)`` with ``t_j = y^j / ((x+1)...(x+j))``, for ``y < x``."""
    log_y = math.log(y)
    log_s = 0.0  # t_0 = 1
    log_js = -math.inf
    log_term = 0.0
    k0 = 1
    chunk = 256
    while True:
        ks = np.arange(k0, k0 + chunk, dtype=np.float64)
        logs = log_term + np.cumsum(log_y - np.log(x + ks))
        log_s = float(np.logaddexp(log_s, special.logsumexp(logs)))
        log_js = float(np.logaddexp(log_js, special.logsumexp(logs + np.log(ks))))
        log_term = float(logs[-1])
        k0 += chunk
        if log_term + math.log(k0) < log_s - 40.0:
            break
        chunk = min(chunk * 2, 1 << 16)
    return log_s, log_js


@dataclass(frozen=True)
class ErlangA:
    """Palm's M/M/n+M (Erlang A): Poisson calls, exponential handle times and patience.

    ``arrival_rate`` calls/s, ``aht`` mean handle time (s), ``patience`` mean
    time a caller is willing to wait (s; ``math.inf`` gives Erlang C),
    ``agents`` servers. Every probability is per offered call. With the
    probabilities here, Asterisk's figures follow: SL (answered within /
    answered) is ``answered_within(t) / (1 - p_abandon)`` and SL2 is
    ``answered_within(t) + abandoned_within(t)``.
    """

    arrival_rate: float
    aht: float
    patience: float
    agents: int

    def __post_init__(self) -> None:
        _check_agents(self.agents)
        if not (self.arrival_rate >= 0) or not (self.aht > 0) or not (self.patience > 0):
            raise ValueError(
                "need arrival_rate >= 0, aht > 0 and patience > 0 seconds, got "
                f"{self.arrival_rate}, {self.aht}, {self.patience}"
            )

    # -- parameters -------------------------------------------------------
    @property
    def load(self) -> float:
        """Offered load ``a = lambda * aht`` in Erlangs."""
        return self.arrival_rate * self.aht

    @property
    def _theta(self) -> float:
        return 1.0 / self.patience

    @property
    def _x(self) -> float:
        return self.agents / self.aht / self._theta

    @property
    def _y(self) -> float:
        return self.arrival_rate / self._theta

    @cached_property
    def _erlang_c(self) -> ErlangC | None:
        if math.isinf(self.patience):
            return ErlangC(self.arrival_rate, self.aht, self.agents)
        return None

    @cached_property
    def _core(self) -> tuple[float, float, float]:
        """``(log pi_n, log S, log sum_j j t_j)`` for the finite-patience, loaded case."""
        n, a, x, y = self.agents, self.load, self._x, self._y
        lv = -log_erlang_b(n, a)  # log(1/B)
        log_inv_b_minus_1 = lv if lv > 30.0 else (math.log(math.expm1(lv)) if lv > 0 else -math.inf)
        if y < x:
            log_s, log_js = _log_s_series(x, y)
        else:
            log_s = math.log(x) + y - x * math.log(y) + special.gammaln(x) + _log_p(x, y)
            # sum_j j t_j = (y - x) S + x: both terms >= 0 here, no cancellation
            log_js = float(
                np.logaddexp(math.log(y - x) + log_s if y > x else -math.inf, math.log(x))
            )
        log_pi = -float(np.logaddexp(log_inv_b_minus_1, log_s))
        return log_pi, log_s, log_js

    @property
    def _log_c0(self) -> float:
        """``log(pi_n x e^y y^-x Gamma(x))``: the factor in front of every P(x, .)."""
        x, y = self._x, self._y
        return self._core[0] + math.log(x) + y - x * math.log(y) + special.gammaln(x)

    def _trivial(self) -> bool:
        return self.arrival_rate == 0.0 or self.agents == 0

    # -- stationary measures ---------------------------------------------
    @cached_property
    def p_wait(self) -> float:
        """Probability that an arriving call finds every agent busy (``S pi_n``)."""
        if self._erlang_c is not None:
            return self._erlang_c.p_wait
        if self.arrival_rate == 0.0:
            return 0.0
        if self.agents == 0:
            return 1.0
        log_pi, log_s, _ = self._core
        return min(1.0, math.exp(log_pi + log_s))

    @cached_property
    def p_abandon(self) -> float:
        """Probability that a call abandons: ``pi_n ((y - x) S + x) / y``."""
        if self._erlang_c is not None:
            return 0.0 if self._erlang_c.stable or self.load == 0 else math.nan
        if self.arrival_rate == 0.0:
            return 0.0
        if self.agents == 0:
            return 1.0
        log_pi, _, log_js = self._core
        return min(1.0, math.exp(log_pi + log_js - math.log(self._y)))

    @property
    def p_answered(self) -> float:
        """Probability that a call is answered (``1 - p_abandon``)."""
        return 1.0 - self.p_abandon

    @property
    def mean_wait(self) -> float:
        """Mean time in queue over all calls, answered or not: ``P(abandon) / theta``."""
        if self._erlang_c is not None:
            return self._erlang_c.asa
        return self.p_abandon * self.patience

    @property
    def mean_queue_length(self) -> float:
        """Mean number of callers waiting (``lambda * mean_wait``, Little's law)."""
        return self.arrival_rate * self.mean_wait

    @property
    def occupancy(self) -> float:
        """Fraction of agent time busy: ``lambda (1 - P(abandon)) aht / n``."""
        if self.agents == 0:
            return 0.0
        if self._erlang_c is not None:
            return self._erlang_c.occupancy
        return min(1.0, self.load * self.p_answered / self.agents)

    # -- waiting-time distribution ---------------------------------------
    def p_offered_wait_exceeds(self, t: float) -> float:
        """``P(V > t)``: the wait a caller would have with infinite patience exceeds ``t`` s."""
        if t < 0:
            raise ValueError(f"t must be >= 0 seconds, got {t}")
        if self._erlang_c is not None:
            return 1.0 - self._erlang_c.service_level(t)
        if self._trivial():
            return self.p_wait
        u = self._y * math.exp(-self._theta * t)
        return min(1.0, math.exp(self._log_c0 + _log_p(self._x, u)))

    def _answered_after_wait_within(self, t: float) -> float:
        x, y = self._x, self._y
        lp_total = _log_p(x + 1.0, y)
        lp_t = _log_p(x + 1.0, y * math.exp(-self._theta * t))
        coef = self._log_c0 + math.log(x) - math.log(y) + lp_total
        return math.exp(coef) * -math.expm1(lp_t - lp_total) if lp_t > -math.inf else math.exp(coef)

    def answered_within(self, t: float) -> float:
        """Share of all calls answered with a wait of at most ``t`` seconds."""
        if t < 0:
            raise ValueError(f"t must be >= 0 seconds, got {t}")
        if self._erlang_c is not None:
            return self._erlang_c.service_level(t)
        if self.arrival_rate == 0.0:
            return 1.0
        if self.agents == 0:
            return 0.0
        return min(1.0, 1.0 - self.p_wait + self._answered_after_wait_within(t))

    def service_level(self, t: float) -> float:
        """Calls answered within ``t`` s over calls offered (abandons count as misses)."""
        return self.answered_within(t)

    def abandoned_within(self, t: float) -> float:
        """Share of all calls that abandon after waiting at most ``t`` seconds."""
        if t < 0:
            raise ValueError(f"t must be >= 0 seconds, got {t}")
        if self._erlang_c is not None or self.arrival_rate == 0.0:
            return 0.0
        theta = self._theta
        if self.agents == 0:
            return -math.expm1(-theta * t)
        if math.isinf(t):
            return self.p_abandon
        c0, x, y = self._log_c0, self._x, self._y

        def f(s: float) -> float:
            return theta * math.exp(-theta * s + c0 + _log_p(x, y * math.exp(-theta * s)))

        total = 0.0
        for lo, hi in itertools.pairwise(self._breaks()):
            if lo >= t:
                break
            total += _quad(f, lo, min(hi, t))
        if t > self._breaks()[-1]:
            total += _quad(f, self._breaks()[-1], t)
        return min(self.p_abandon, max(0.0, total))

    def _breaks(self) -> list[float]:
        """Quadrature break points: where ``P(V > s)`` turns down, and decay scales after it.

        ``P(V > s)`` stays near ``P(wait)`` while ``y e^(-theta s) > x`` (up to the knee
        ``log(y/x)/theta``), then falls at least as fast as ``exp(-(n mu + theta) s)``.
        """
        x, y = self._x, self._y
        knee = math.log(y / x) / self._theta if y > x else 0.0
        scale = 1.0 / (self.agents / self.aht + self._theta)
        return [0.0, *(knee + k * scale for k in (0.0, 2.0, 8.0, 30.0, 80.0))]

    @cached_property
    def asa(self) -> float:
        """Average speed of answer: mean wait of the answered calls (zero waits included)."""
        if self._erlang_c is not None:
            return self._erlang_c.asa
        if self.arrival_rate == 0.0:
            return 0.0
        if self.agents == 0:
            return math.nan
        theta, x, y = self._theta, self._x, self._y
        coef = self._log_c0 + math.log(x) - math.log(y)

        def f(s: float) -> float:
            # P(s < V < patience) = P(answered after waiting) - P(answered, 0 < V <= s)
            return math.exp(coef + _log_p(x + 1.0, y * math.exp(-theta * s)))

        breaks = self._breaks()
        total = 0.0
        for lo, hi in itertools.pairwise(breaks):
            if hi > lo:
                total += _quad(f, lo, hi)
        total += _quad(f, breaks[-1], math.inf)
        return total / self.p_answered


def erlang_a_agents_for_service_level(
    arrival_rate: float,
    aht: float,
    patience: float,
    target: float,
    threshold: float,
    max_agents: int | None = None,
) -> int:
    """Fewest agents with Erlang A ``answered_within(threshold) >= target`` (of offered calls)."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"target service level must be a fraction in (0, 1), got {target}")
    a = arrival_rate * aht
    _check_load(a)
    limit = max_agents or _default_max(a)

    def ok(n: int) -> bool:
        return ErlangA(arrival_rate, aht, patience, n).answered_within(threshold) >= target

    if ok(limit):
        # answered_within grows with n: bisect for the first n that reaches the target
        lo, hi = -1, limit
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid
        return hi
    raise ValueError(
        f"no staffing up to {limit} agents answers {target} of calls within {threshold} s; "
        "lower the target or raise max_agents"
    )
