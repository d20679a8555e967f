"""Staffing maths against published values and independent numerical solves.

* Erlang B against the standard 1 % grade-of-service table (traffic in Erlangs
  that n trunks carry at B = 0.01, as printed in every Erlang B table).
* Erlang B/C against an exact rational evaluation of the textbook sums
  (``fractions.Fraction``, no floating point) and the closed forms of M/M/1
  and M/M/2.
* Erlang C against Call Centre Helper's worked example ("Erlang C formula
  made simple": 100 calls per 30 min, AHT 180 s, 80/20 target: 11 raw agents
  give P(wait) 68.21 %, ASA 122.8 s; 14 agents reach 88.84 %).
* Erlang A against an independent numerical solve of the M/M/n+M
  birth-death chain (stationary distribution) and of a tagged caller's
  absorbing Markov chain (matrix exponential for within-t figures, linear
  solve for ASA); against the M/M/inf identity when patience equals handle
  time; and against its limits (Erlang C for infinite patience, Erlang B for
  zero patience).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import linalg
from scipy.stats import poisson

from acd.erlang import (
    ErlangA,
    ErlangC,
    agents_for_asa,
    agents_for_service_level,
    erlang_a_agents_for_service_level,
    erlang_b,
    erlang_c,
    log_erlang_b,
    offered_load,
)

# Erlang B table, GoS 0.01: trunks -> Erlangs offered, as printed.
ERLANG_B_1PCT = {
    1: "0.0101",
    2: "0.153",
    3: "0.455",
    4: "0.869",
    5: "1.361",
    6: "1.909",
    7: "2.501",
    8: "3.128",
    9: "3.783",
    10: "4.461",
    20: "12.031",
    30: "20.337",
    40: "29.007",
    50: "37.901",
    100: "84.064",
}


@pytest.mark.parametrize(("n", "printed"), sorted(ERLANG_B_1PCT.items()))
def test_erlang_b_matches_the_one_percent_table(n: int, printed: str) -> None:
    # the table rounds A to its last printed digit; B is 0.01 within what that rounding moves
    a = float(printed)
    b = erlang_b(n, a)
    db_da = b * (n / a - 1 + b)  # derivative of Erlang B in the load
    half_digit = 0.5 * 10.0 ** -len(printed.split(".")[1])
    assert b == pytest.approx(0.01, abs=db_da * half_digit)


def _exact_b(n: int, a: Fraction) -> Fraction:
    num = a**n / math.factorial(n)
    return num / sum(a**k / math.factorial(k) for k in range(n + 1))


def _exact_c(n: int, a: Fraction) -> Fraction:
    top = a**n / math.factorial(n) * n / (n - a)
    return top / (sum(a**k / math.factorial(k) for k in range(n)) + top)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 15, 40, 90])
@pytest.mark.parametrize("load_share", [Fraction(1, 10), Fraction(1, 2), Fraction(9, 10)])
def test_erlang_b_and_c_equal_the_exact_rational_sums(n: int, load_share: Fraction) -> None:
    a = load_share * n
    assert erlang_b(n, float(a)) == pytest.approx(float(_exact_b(n, a)), rel=1e-12)
    assert erlang_c(n, float(a)) == pytest.approx(float(_exact_c(n, a)), rel=1e-12)


def test_closed_forms_of_mm1_and_mm2() -> None:
    for rho in (0.1, 0.5, 0.95):
        assert erlang_c(1, rho) == pytest.approx(rho, rel=1e-13)
        assert erlang_c(2, 2 * rho) == pytest.approx(2 * rho**2 / (1 + rho), rel=1e-13)
        # M/M/1 mean wait in queue rho/(mu - lambda) with mu = 1
        assert ErlangC(rho, 1.0, 1).asa == pytest.approx(rho / (1 - rho), rel=1e-12)


def test_call_centre_helper_worked_example() -> None:
    lam = 100 / 1800  # 100 calls in 30 minutes
    assert offered_load(100, 1800, 180) == pytest.approx(10.0)
    eleven = ErlangC(lam, 180, 11)
    assert eleven.p_wait == pytest.approx(0.6821, abs=5e-5)
    assert eleven.asa == pytest.approx(122.8, abs=0.05)
    assert eleven.occupancy == pytest.approx(10 / 11)
    assert agents_for_service_level(lam, 180, 0.80, 20) == 14
    assert ErlangC(lam, 180, 14).service_level(20) == pytest.approx(0.8884, abs=5e-5)
    assert ErlangC(lam, 180, 13).service_level(20) < 0.80


def test_agents_for_asa_is_the_first_staffing_under_target() -> None:
    lam, aht = 100 / 1800, 180
    n = agents_for_asa(lam, aht, 30.0)
    assert ErlangC(lam, aht, n).asa <= 30.0 < ErlangC(lam, aht, n - 1).asa
    assert n == 13


def test_overload_and_empty_queue() -> None:
    over = ErlangC(1.0, 10.0, 10)  # a == n
    assert (over.p_wait, over.asa, over.service_level(20)) == (1.0, math.inf, 0.0)
    idle = ErlangC(0.0, 10.0, 3)
    assert (idle.p_wait, idle.asa, idle.service_level(0)) == (0.0, 0.0, 1.0)
    assert erlang_b(0, 3.0) == 1.0
    assert erlang_b(4, 0.0) == 0.0


def test_thousands_of_agents_neither_overflow_nor_underflow() -> None:
    b = erlang_b(5000, 4800.0)
    assert 0.0 < b < 1e-3
    # log B for a tiny blocking probability stays exact where B itself underflows
    assert erlang_b(1000, 10.0) == 0.0
    # B = 10^1000 / sum_k 10^k 1000!/k!, all integers: its log is exact to float precision
    den = sum(10**k * (math.factorial(1000) // math.factorial(k)) for k in range(1001))
    exact_log = 1000 * math.log(10) - math.log(den)
    assert log_erlang_b(1000, 10.0) == pytest.approx(exact_log, rel=1e-12)
    n = agents_for_service_level(4000 / 180.0, 180.0, 0.8, 20.0)
    c = ErlangC(4000 / 180.0, 180.0, n)
    assert c.service_level(20) >= 0.8 > ErlangC(4000 / 180.0, 180.0, n - 1).service_level(20)
    assert 4000 < n < 4100


def test_bad_inputs_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="agents must be a whole number >= 0"):
        erlang_b(-1, 2.0)
    with pytest.raises(ValueError, match="offered load must be a finite number"):
        erlang_c(3, math.nan)
    with pytest.raises(ValueError, match=r"fraction in \(0, 1\)"):
        agents_for_service_level(1.0, 10.0, 80, 20)
    with pytest.raises(ValueError, match="raise max_agents"):
        agents_for_service_level(1.0, 10.0, 0.8, 20, max_agents=10)
    with pytest.raises(ValueError, match="patience > 0"):
        ErlangA(1.0, 10.0, 0.0, 3)


# --------------------------------------------------------------------------- Erlang A


class BirthDeath:
    """Independent numerical M/M/n+M: truncated birth-death chain + tagged-caller chain."""

    def __init__(self, lam: float, aht: float, patience: float, n: int) -> None:
        mu, theta = 1 / aht, 1 / patience
        self.lam, self.mu, self.theta, self.n = lam, mu, theta, n
        # unnormalized stationary weights in log space, truncated where they vanish
        logs = [0.0]
        k = 0
        while True:
            k += 1
            death = k * mu if k <= n else n * mu + (k - n) * theta
            logs.append(logs[-1] + math.log(lam / death))
            if k > n + 10 and logs[-1] < max(logs) - 60:
                break
        w = np.exp(np.array(logs) - max(logs))
        self.pi = w / w.sum()

    def p_wait(self) -> float:
        return float(self.pi[self.n :].sum())

    def p_abandon(self) -> float:
        q = np.arange(len(self.pi)) - self.n
        return float(self.theta * (self.pi * np.clip(q, 0, None)).sum() / self.lam)

    def _tagged(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Transient generator over 'j callers ahead', start law, exit rates to served/abandoned."""
        ahead = self.pi[self.n :]  # PASTA: arrival finds n + j -> j ahead
        m = len(ahead)
        qt = np.zeros((m, m))
        served = np.zeros(m)
        gone = np.full(m, self.theta)
        for j in range(m):
            move = self.n * self.mu + j * self.theta
            if j == 0:
                served[j] = self.n * self.mu
            else:
                qt[j, j - 1] = move
            qt[j, j] = -(self.n * self.mu + j * self.theta + self.theta)
        return qt, ahead, served, gone

    def within(self, t: float) -> tuple[float, float]:
        qt, start, served, gone = self._tagged()
        m = len(start)
        # augmented generator with the two absorbing states appended
        g = np.zeros((m + 2, m + 2))
        g[:m, :m] = qt
        g[:m, m] = served
        g[:m, m + 1] = gone
        p = np.concatenate([start, [0.0, 0.0]]) @ linalg.expm(g * t)
        return float(1 - self.p_wait() + p[m]), float(p[m + 1])

    def asa(self) -> float:
        qt, start, served, _ = self._tagged()
        h = linalg.solve(-qt, served)  # P(served | j ahead)
        m_t = linalg.solve(-qt, h)  # E[T 1{served} | j ahead]
        answered = 1 - self.p_wait() + float(start @ h)
        return float(start @ m_t) / answered


ERLANG_A_CASES = [
    # lam (calls/s), aht, mean patience, agents
    (100 / 1800, 180.0, 180.0, 11),
    (100 / 1800, 180.0, 60.0, 9),  # under-staffed: a = 10 > n
    (100 / 1800, 180.0, 900.0, 12),
    (1 / 5, 60.0, 30.0, 10),  # 12 Erlangs on 10 agents, impatient callers
    (2.0, 100.0, 120.0, 210),
    (0.5, 240.0, 400.0, 100),  # 120 Erlangs on 100 agents: heavy overload
]


@pytest.mark.parametrize(("lam", "aht", "patience", "n"), ERLANG_A_CASES)
def test_erlang_a_equals_the_birth_death_solve(
    lam: float, aht: float, patience: float, n: int
) -> None:
    model = ErlangA(lam, aht, patience, n)
    ref = BirthDeath(lam, aht, patience, n)
    assert model.p_wait == pytest.approx(ref.p_wait(), rel=1e-9)
    assert model.p_abandon == pytest.approx(ref.p_abandon(), rel=1e-9)
    assert model.occupancy == pytest.approx(lam * aht * (1 - ref.p_abandon()) / n, rel=1e-9)
    for t in (0.0, 5.0, 20.0, 60.0, 300.0):
        answered, abandoned = ref.within(t)
        assert model.answered_within(t) == pytest.approx(answered, abs=1e-9)
        assert model.abandoned_within(t) == pytest.approx(abandoned, abs=1e-9)
    assert model.asa == pytest.approx(ref.asa(), rel=1e-7)
    # every call is answered or abandons, and the long-run means agree (Little)
    assert model.answered_within(1e6) + model.abandoned_within(1e6) == pytest.approx(1.0, abs=1e-9)
    assert model.mean_wait == pytest.approx(model.p_abandon * patience)


def test_patience_equal_to_handle_time_is_mm_infinity() -> None:
    # theta == mu: every caller leaves at rate mu whatever it is doing, so the number
    # in system is Poisson(a); an arrival waits when it finds >= n there (PASTA)
    lam, aht, n = 100 / 1800, 180.0, 11
    a = lam * aht
    model = ErlangA(lam, aht, aht, n)
    assert model.p_wait == pytest.approx(float(poisson.sf(n - 1, a)), rel=1e-12)
    excess = sum((k - n) * poisson.pmf(k, a) for k in range(n + 1, 200))
    assert model.p_abandon == pytest.approx(excess / a, rel=1e-10)


def test_erlang_a_limits() -> None:
    lam, aht, n = 100 / 1800, 180.0, 12
    c = ErlangC(lam, aht, n)
    patient = ErlangA(lam, aht, 1e9, n)
    assert patient.p_wait == pytest.approx(c.p_wait, rel=1e-5)
    assert patient.answered_within(20) == pytest.approx(c.service_level(20), rel=1e-5)
    assert patient.asa == pytest.approx(c.asa, rel=1e-4)
    infinite = ErlangA(lam, aht, math.inf, n)
    assert (infinite.p_wait, infinite.asa) == (c.p_wait, c.asa)
    # callers who hang up at once: a loss system, abandon = Erlang B blocking
    hasty = ErlangA(lam, aht, 1e-7, n)
    assert hasty.p_abandon == pytest.approx(erlang_b(n, lam * aht), rel=1e-5)


def test_erlang_a_stays_finite_with_thousands_of_agents() -> None:
    light = ErlangA(4500 / 180, 180.0, 1e6, 5000)  # x, y ~ 1e8: deep incomplete-gamma tails
    c = ErlangC(4500 / 180, 180.0, 5000)
    assert light.p_wait == pytest.approx(c.p_wait, rel=1e-3)
    assert 0 < light.p_wait < 1e-12
    over = ErlangA(5200 / 180, 180.0, 120.0, 5000)  # 4 % overload
    assert 0.98 < over.p_wait < 1.0
    # the queue is what sheds the excess load: abandons ~ (a - n) / a
    assert over.p_abandon == pytest.approx(200 / 5200, rel=0.05)
    assert math.isfinite(over.asa) and over.asa > 0
    n = erlang_a_agents_for_service_level(4000 / 180, 180.0, 120.0, 0.8, 20.0)
    assert ErlangA(4000 / 180, 180.0, 120.0, n).answered_within(20) >= 0.8
    assert ErlangA(4000 / 180, 180.0, 120.0, n - 1).answered_within(20) < 0.8


def test_erlang_a_staffing_uses_fewer_agents_than_erlang_c() -> None:
    lam, aht = 100 / 1800, 180.0
    n_a = erlang_a_agents_for_service_level(lam, aht, 120.0, 0.8, 20.0)
    assert ErlangA(lam, aht, 120.0, n_a).answered_within(20) >= 0.8
    assert ErlangA(lam, aht, 120.0, n_a - 1).answered_within(20) < 0.8
    assert n_a <= agents_for_service_level(lam, aht, 0.8, 20.0)
