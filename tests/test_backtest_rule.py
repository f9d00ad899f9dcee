"""The boost rule on hand-built minutes: window sums, confirm, release, reversal, gaps, θ."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liqmap.backtest import params, rule, stats, sweep
from liqmap.backtest.rule import (
    EVENT_OFF,
    EVENT_ON,
    EVENT_REVERSE,
    bin_prefix_sums,
    run_rule,
    trailing_quantile,
    window_sums,
)

T, Q = True, False  # a trigger minute / a quiet minute


def rule_on(pattern: list[bool], *, below_wins: list[bool] | None = None,
            gap: list[bool] | None = None, confirm: int = 1, release: int = 5,
            reversal: bool = False) -> rule.RuleOutput:
    """Run the rule on minutes given as triggered or not (θ = 10, a trigger sums 20)."""
    n = len(pattern)
    wins = below_wins if below_wins is not None else [True] * n
    big = np.array([20.0 if t else 1.0 for t in pattern])
    small = np.where(big > 10, 5.0, 0.5)
    below = np.where(wins, big, small)
    above = np.where(wins, small, big)
    frozen = np.array(gap if gap is not None else [False] * n)
    return run_rule(above, below, np.full(n, 10.0), frozen, confirm=confirm, release=release,
                    reversal=reversal)


def test_window_sums_follow_the_edge_rules() -> None:
    # bins with lower edges 100..105 USD, one token times 2**i in bin i
    z = (2.0 ** np.arange(6))[:, None]
    edges = np.arange(100.0, 106.0)
    prefix = bin_prefix_sums(z)
    col = np.array([0])
    # p on an edge: that bin is in neither sum; p + W and p - W edges are included
    above, below = window_sums(prefix, edges, col, np.array([102.0]), 2.0)
    assert above[0] == 8 + 16  # edges 103, 104 in (102, 104]
    assert below[0] == 1 + 2  # edges 100, 101 in [100, 102)
    # p inside bin 102: its lower edge 102 is below p, so it counts below
    above, below = window_sums(prefix, edges, col, np.array([102.5]), 2.0)
    assert above[0] == 8 + 16  # 103, 104 in (102.5, 104.5]
    assert below[0] == 2 + 4  # 101, 102 in [100.5, 102.5)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 3.0))
def test_window_sums_equal_the_mask_definition(seed: int, window: float) -> None:
    rng = np.random.default_rng(seed)
    edges = np.round(np.arange(50.0, 60.0, 0.1), 10)
    z = rng.integers(0, 100, size=(edges.size, 7)).astype(float)
    price = rng.uniform(49.0, 61.0, size=20)
    cols = rng.integers(0, 7, size=20)
    above, below = window_sums(bin_prefix_sums(z), edges, cols, price, window)
    for i in range(20):
        p = price[i]
        up = (edges > p) & (edges <= p + window)
        down = (edges >= p - window) & (edges < p)
        assert above[i] == z[up, cols[i]].sum()
        assert below[i] == z[down, cols[i]].sum()


def test_confirm_needs_consecutive_triggers() -> None:
    out = rule_on([T, T, Q, T, T, T, Q], confirm=3)
    assert out.direction.tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert out.event.tolist() == [0, 0, 0, 0, 0, EVENT_ON, 0]


def test_direction_follows_the_larger_side_and_ties_go_down() -> None:
    assert rule_on([T], below_wins=[True]).direction[0] == 1
    assert rule_on([T], below_wins=[False]).direction[0] == -1
    tie = run_rule(np.array([20.0]), np.array([20.0]), np.array([10.0]), np.array([False]),
                   confirm=1, release=1, reversal=False)
    assert tie.direction[0] == -1


def test_release_counts_quiet_minutes_and_a_trigger_restarts_it() -> None:
    out = rule_on([T, Q, Q, T, Q, Q, Q, Q], release=3)
    assert out.direction.tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    assert np.flatnonzero(out.event == EVENT_OFF).tolist() == [6]


def test_reversal_flips_only_during_cooldown() -> None:
    # on +1 (below wins); then an opposite trigger while still triggering: no flip
    pattern = [T, T, Q, T, Q]
    below = [True, False, True, False, True]
    out = rule_on(pattern, below_wins=below, release=5, reversal=True)
    assert out.direction.tolist() == [1, 1, 1, -1, -1]
    assert np.flatnonzero(out.event == EVENT_REVERSE).tolist() == [3]
    # the same minutes without --reversal keep the first direction
    plain = rule_on(pattern, below_wins=below, release=5, reversal=False)
    assert plain.direction.tolist() == [1, 1, 1, 1, 1]
    assert not (plain.event == EVENT_REVERSE).any()


def test_reversal_resets_the_counters() -> None:
    # after the flip (release = 0, confirm = 1) it takes `release` quiet minutes to switch off
    out = rule_on([T, Q, T, Q, Q, Q], below_wins=[True, True, False, True, True, True],
                  release=3, reversal=True)
    assert out.direction.tolist() == [1, 1, -1, -1, -1, 0]


def test_gap_minutes_freeze_counters_and_state() -> None:
    # confirm = 2: a gap between two triggers does not break the run
    out = rule_on([T, T, T, Q], gap=[False, True, False, False], confirm=2, release=9)
    assert out.direction.tolist() == [0, 0, 1, 1]
    assert not out.trigger[1]
    # release = 2: gaps during cooldown neither release nor confirm; the direction is held
    out = rule_on([T, Q, Q, Q, Q], gap=[False, False, True, True, False], release=2)
    assert out.direction.tolist() == [1, 1, 1, 1, 0]
    # without the gaps the same minutes release at minute 2
    out = rule_on([T, Q, Q, Q, Q], release=2)
    assert out.direction.tolist() == [1, 1, 0, 0, 0]


def _reference_rule(above: list[float], below: list[float], theta: list[float],
                    gap: list[bool], confirm_n: int, release_n: int,
                    reversal: bool) -> list[int]:
    """The rule as the issue words it, one minute at a time."""
    on, direction, confirm, release, out = False, 0, 0, 0, []
    for a, b, th, g in zip(above, below, theta, gap, strict=True):
        if not g:
            trigger = a > th or b > th
            new = 1 if b > a else -1
            cooling = release > 0
            if trigger:
                confirm, release = confirm + 1, 0
                if reversal and on and cooling and new != direction:
                    direction, confirm = new, 1
            else:
                confirm, release = 0, release + 1
            if not on and confirm >= confirm_n:
                on, direction = True, new
            if on and release >= release_n:
                on, direction = False, 0
        out.append(direction)
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30), st.booleans()),
                min_size=1, max_size=80),
       st.integers(1, 4), st.integers(1, 4), st.booleans())
def test_kernel_matches_the_rule_as_worded(minutes: list[tuple[int, int, bool]], confirm: int,
                                           release: int, reversal: bool) -> None:
    above = [float(m[0]) for m in minutes]
    below = [float(m[1]) for m in minutes]
    gap = [m[2] and i % 3 == 0 for i, m in enumerate(minutes)]
    theta = [15.0] * len(minutes)
    out = run_rule(np.array(above), np.array(below), np.array(theta), np.array(gap),
                   confirm=confirm, release=release, reversal=reversal)
    assert out.direction.tolist() == _reference_rule(above, below, theta, gap, confirm,
                                                     release, reversal)


def test_trailing_quantile_uses_only_past_usable_minutes() -> None:
    rng = np.random.default_rng(7)
    values = rng.uniform(0, 100, size=60)
    gap = np.zeros(60, dtype=bool)
    gap[[10, 11, 30]] = True
    out = trailing_quantile(values, gap, 0.8, 5)
    usable = np.flatnonzero(~gap)
    for rank, t in enumerate(usable):
        if rank < 5:
            assert np.isnan(out[t])  # warm-up
        else:
            past = values[usable[rank - 5:rank]]
            assert out[t] == pytest.approx(np.quantile(past, 0.8), rel=1e-12)
    assert np.isnan(out[gap]).all()
    # changing the present and the future leaves every threshold up to now unchanged
    changed = values.copy()
    changed[40:] = 1e9
    assert np.array_equal(trailing_quantile(changed, gap, 0.8, 5)[:41], out[:41], equal_nan=True)


def test_docstring_examples() -> None:
    for module in (rule, stats, sweep, params):
        failed, _ = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert failed == 0, module.__name__
