"""Tests for jaxnn.optim.schedules: values, optax parity, jit/vmap, optimizers, errors."""

from __future__ import annotations

import doctest
import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxnn.optim import schedules as S

F32_TINY = float(np.finfo(np.float32).tiny)


def _eval(schedule, n: int) -> np.ndarray:
    """A schedule tabulated at steps 0..n-1 (one compiled call)."""
    out = jax.jit(schedule)(jnp.arange(n))
    assert out.dtype == jnp.float32
    assert out.shape == (n,)
    return np.asarray(out, np.float64)


def _reference(schedule, n: int) -> np.ndarray:
    """An optax schedule evaluated eagerly in float64 (x64 is on in the test suite).

    Eagerly, not under ``jit``: compiled, optax 0.2.8's ``polynomial_schedule`` with a
    fractional power returns NaN past its end (XLA turns ``count / T`` into
    ``count * (1 / T)``, so ``1 - count / T`` can be a tiny negative number).
    """
    steps = jnp.arange(n, dtype=jnp.int64)
    return np.broadcast_to(np.asarray(jax.vmap(schedule)(steps), np.float64), (n,))


def _max_rel(ours: np.ndarray, ref: np.ndarray) -> float:
    # Values below float32's normal range cannot be compared relatively.
    big = np.abs(ref) > 1e3 * F32_TINY
    assert np.all(np.abs(ours[~big]) <= 1e4 * F32_TINY)
    if not big.any():
        return 0.0
    return float(np.max(np.abs(ours[big] - ref[big]) / np.abs(ref[big])))


# --------------------------------------------------------------------------- optax parity

_SGDR_CYCLES = [
    dict(init_value=0.0, peak_value=0.1, warmup_steps=10, decay_steps=100, end_value=1e-3),
    dict(init_value=0.05, peak_value=0.05, warmup_steps=0, decay_steps=200),
    dict(init_value=0.01, peak_value=0.02, warmup_steps=5, decay_steps=50, exponent=2.0),
]

PARITY = [
    ("constant", lambda m: m.constant_schedule(0.3), 50),
    ("piecewise_constant",
     lambda m: m.piecewise_constant_schedule(0.1, {10: 0.5, 30: 0.1, 31: 3.0, 40: 0.0}), 60),
    ("piecewise_constant_none", lambda m: m.piecewise_constant_schedule(0.1), 20),
    ("exponential", lambda m: m.exponential_decay(0.1, 100, 0.5), 300),
    ("exponential_staircase_begin_end",
     lambda m: m.exponential_decay(0.1, 7, 0.8, transition_begin=20, staircase=True,
                                   end_value=0.03), 200),
    ("exponential_growth_end",
     lambda m: m.exponential_decay(0.01, 50, 1.5, end_value=0.05), 300),
    ("polynomial_2", lambda m: m.polynomial_schedule(1.0, 1e-3, 2, 100, 10), 150),
    ("polynomial_0.5", lambda m: m.polynomial_schedule(1.0, 1e-3, 0.5, 100, 10), 150),
    ("polynomial_1.7_up", lambda m: m.polynomial_schedule(1e-4, 1.0, 1.7, 100), 150),
    ("linear_up", lambda m: m.linear_schedule(1e-5, 0.1, 1000), 1200),
    ("linear_down_begin", lambda m: m.linear_schedule(0.1, 0.001, 300, 50), 400),
    ("cosine", lambda m: m.cosine_decay_schedule(0.1, 1000), 1200),
    ("cosine_alpha_exp2",
     lambda m: m.cosine_decay_schedule(0.1, 1000, alpha=0.01, exponent=2.0), 1200),
    ("cosine_exp1.5", lambda m: m.cosine_decay_schedule(0.1, 1000, exponent=1.5), 1200),
    ("warmup_constant", lambda m: m.warmup_constant_schedule(0.0, 0.1, 50), 100),
    ("warmup_cosine",
     lambda m: m.warmup_cosine_decay_schedule(1e-4, 0.1, 100, 1000, 1e-5), 1200),
    ("warmup_cosine_no_warmup",
     lambda m: m.warmup_cosine_decay_schedule(0.0, 0.1, 0, 1000), 1200),
    ("warmup_cosine_exp",
     lambda m: m.warmup_cosine_decay_schedule(0.0, 0.1, 20, 300, 0.01, exponent=1.5), 400),
    ("warmup_exponential",
     lambda m: m.warmup_exponential_decay_schedule(0.0, 0.1, 50, 100, 0.5, 20, False, 0.01),
     600),
    ("warmup_exponential_staircase",
     lambda m: m.warmup_exponential_decay_schedule(0.01, 0.1, 10, 25, 0.7, staircase=True),
     200),
    ("cosine_onecycle", lambda m: m.cosine_onecycle_schedule(1000, 0.1), 1200),
    ("cosine_onecycle_args",
     lambda m: m.cosine_onecycle_schedule(200, 2.0, pct_start=0.45, div_factor=10.0,
                                          final_div_factor=100.0), 260),
    ("cosine_onecycle_tiny", lambda m: m.cosine_onecycle_schedule(3, 0.1), 10),
    ("linear_onecycle", lambda m: m.linear_onecycle_schedule(1000, 0.1), 1200),
    ("linear_onecycle_args",
     lambda m: m.linear_onecycle_schedule(100, 1.0, 0.2, 0.6, 5.0, 50.0), 150),
    ("linear_onecycle_tiny", lambda m: m.linear_onecycle_schedule(5, 0.1), 10),
    ("sgdr", lambda m: m.sgdr_schedule(_SGDR_CYCLES), 450),
    ("join",
     lambda m: m.join_schedules(
         [m.linear_schedule(0.0, 1.0, 10), m.exponential_decay(1.0, 10, 0.9),
          m.constant_schedule(0.2)], [10, 60]), 100),
]


@pytest.mark.parametrize("name,build,n", PARITY, ids=[p[0] for p in PARITY])
def test_matches_optax(name, build, n):
    ours = _eval(build(S), n)
    ref = _reference(build(optax), n)
    assert _max_rel(ours, ref) <= 1e-6


def test_cosine_warm_restarts_matches_optax_sgdr():
    init, first, mult, alpha, df = 0.1, 10, 2.0, 0.01, 0.5
    cycles = [
        dict(init_value=init * df**i, peak_value=init * df**i, warmup_steps=0,
             decay_steps=first * int(mult) ** i, end_value=alpha * init * df**i)
        for i in range(5)
    ]
    n = sum(c["decay_steps"] for c in cycles)
    ours = _eval(S.cosine_warm_restarts(init, first, mult, alpha, df), n)
    assert _max_rel(ours, _reference(optax.sgdr_schedule(cycles), n)) <= 1e-6
    cycles = [dict(init_value=0.1, peak_value=0.1, warmup_steps=0, decay_steps=25)] * 8
    ours = _eval(S.cosine_warm_restarts(0.1, 25), 200)
    assert _max_rel(ours, _reference(optax.sgdr_schedule(cycles), 200)) <= 1e-6


def test_warmup_linear_decay_matches_joined_optax_linear():
    ours = _eval(S.warmup_linear_decay_schedule(1e-4, 0.1, 30, 130, 1e-3), 200)
    ref = optax.join_schedules(
        [optax.linear_schedule(1e-4, 0.1, 30), optax.linear_schedule(0.1, 1e-3, 100)], [30])
    assert _max_rel(ours, _reference(ref, 200)) <= 1e-6


def test_step_decay_is_staircase_exponential_decay():
    ours = _eval(S.step_decay(0.1, 0.5, 30), 200)
    ref = optax.exponential_decay(0.1, 30, 0.5, staircase=True)
    assert _max_rel(ours, _reference(ref, 200)) <= 1e-6
    smooth = _eval(S.step_decay(0.1, 0.5, 30, staircase=False), 200)
    assert _max_rel(smooth, _reference(optax.exponential_decay(0.1, 30, 0.5), 200)) <= 1e-6


def test_inverse_time_decay_formula():
    t = np.arange(500, dtype=np.float64)
    ours = _eval(S.inverse_time_decay(0.01, 1e-3), 500)  # Keras legacy `decay=1e-3`
    np.testing.assert_allclose(ours, 0.01 / (1 + 1e-3 * t), rtol=1e-6)
    ours = _eval(S.inverse_time_decay(0.5, 0.3, decay_steps=7, staircase=True), 500)
    np.testing.assert_allclose(ours, 0.5 / (1 + 0.3 * np.floor(t / 7)), rtol=1e-6)


# --------------------------------------------------------------------------- hand-computed values


def _tri(base, peak, scale):
    return base + (peak - base) * scale


HAND = [
    # cyclic, half-cycle 10: troughs at 0, 20, 40; peaks at 10, 30, 50
    ("triangular", S.cyclic_schedule(0.1, 1.0, 10), {
        0: 0.1, 5: 0.55, 10: 1.0, 15: 0.55, 20: 0.1, 30: 1.0, 40: 0.1, 50: 1.0, 1005: 0.55}),
    ("triangular2", S.cyclic_schedule(0.1, 1.0, 10, "triangular2"), {
        0: 0.1, 10: 1.0, 20: 0.1, 25: _tri(0.1, 1.0, 0.25), 30: _tri(0.1, 1.0, 0.5), 40: 0.1,
        50: _tri(0.1, 1.0, 0.25), 70: _tri(0.1, 1.0, 0.125)}),
    ("exp_range", S.cyclic_schedule(0.1, 1.0, 10, "exp_range", gamma=0.99), {
        0: 0.1, 5: _tri(0.1, 1.0, 0.5 * 0.99**5), 10: _tri(0.1, 1.0, 0.99**10), 20: 0.1,
        30: _tri(0.1, 1.0, 0.99**30), 50: _tri(0.1, 1.0, 0.99**50)}),
    # warm-up end
    ("linear_warmup", S.linear_warmup(0.1, 10), {0: 0.0, 1: 0.01, 9: 0.09, 10: 0.1, 11: 0.1}),
    ("linear_warmup_init", S.linear_warmup(0.1, 4, init_value=0.02), {0: 0.02, 2: 0.06, 4: 0.1}),
    ("linear_warmup_zero", S.linear_warmup(0.1, 0), {0: 0.1, 7: 0.1}),
    ("warmup_cosine", S.warmup_cosine_decay_schedule(0.0, 1.0, 10, 110, 0.1), {
        0: 0.0, 9: 0.9, 10: 1.0, 60: 0.55, 110: 0.1, 500: 0.1}),
    ("warmup_linear", S.warmup_linear_decay_schedule(0.0, 1.0, 10, 30), {
        9: 0.9, 10: 1.0, 20: 0.5, 30: 0.0, 40: 0.0}),
    # restart points
    ("restarts_x2", S.cosine_warm_restarts(1.0, 10, 2.0, alpha=0.1, decay_factor=0.5), {
        0: 1.0, 5: 0.55, 9: 0.1 + 0.9 * 0.5 * (1 + math.cos(0.9 * math.pi)), 10: 0.5,
        20: 0.5 * 0.55, 29: 0.5 * (0.1 + 0.45 * (1 + math.cos(0.95 * math.pi))), 30: 0.25,
        70: 0.125, 150: 0.0625}),
    ("restarts_x1", S.cosine_warm_restarts(0.2, 25), {
        0: 0.2, 24: 0.1 * (1 + math.cos(24 / 25 * math.pi)), 25: 0.2, 50: 0.2, 75: 0.2,
        62: 0.1 * (1 + math.cos(12 / 25 * math.pi))}),
    ("restarts_x1.5", S.cosine_warm_restarts(1.0, 10, 1.5), {
        0: 1.0, 10: 1.0, 25: 1.0, 35: 0.5 * (1 + math.cos(10 / 22.5 * math.pi))}),
    # staircase boundaries
    ("step_decay", S.step_decay(0.1, 0.5, 100), {
        0: 0.1, 99: 0.1, 100: 0.05, 199: 0.05, 200: 0.025, 1000: 0.1 * 0.5**10}),
    ("exponential_staircase_begin",
     S.exponential_decay(1.0, 10, 0.1, transition_begin=5, staircase=True), {
         0: 1.0, 5: 1.0, 14: 1.0, 15: 0.1, 24: 0.1, 25: 0.01}),
    ("exponential_end", S.exponential_decay(1.0, 10, 0.1, end_value=0.05), {
        10: 0.1, 20: 0.05, 100: 0.05}),
    ("exponential_growth_end", S.exponential_decay(1.0, 10, 2.0, end_value=3.0), {
        0: 1.0, 10: 2.0, 20: 3.0, 100: 3.0}),
    # decay_rate 1 holds init_value: no end_value replaces it (optax: min(init, end)).
    ("exponential_rate_one_end", S.exponential_decay(1.0, 10, 1.0, end_value=0.5), {
        0: 1.0, 5: 1.0, 20: 1.0}),
    ("linear_onecycle_close_fractions", S.linear_onecycle_schedule(10, 1.0, 0.3, 0.4), {
        0: 0.04, 3: 1.0, 4: 0.04, 10: 4e-6}),
    ("inverse_time_staircase", S.inverse_time_decay(1.0, 1.0, 10, staircase=True), {
        0: 1.0, 9: 1.0, 10: 0.5, 19: 0.5, 20: 1 / 3}),
    ("piecewise", S.piecewise_constant_schedule(1.0, {100: 0.1, 200: 0.5}), {
        0: 1.0, 99: 1.0, 100: 0.1, 199: 0.1, 200: 0.05, 10**6: 0.05}),
    ("polynomial", S.polynomial_schedule(1.0, 0.0, 2, 10, 5), {
        0: 1.0, 5: 1.0, 10: 0.25, 15: 0.0, 99: 0.0}),
    # one-cycle: start, peak at pct_start * T, end
    ("cosine_onecycle", S.cosine_onecycle_schedule(100, 1.0, 0.3, 25.0, 1e4), {
        0: 0.04, 15: 0.52, 30: 1.0, 65: 0.5 + 0.5 / 25e4, 100: 1 / 25e4, 200: 1 / 25e4}),
    ("linear_onecycle", S.linear_onecycle_schedule(100, 1.0, 0.25, 0.75, 10.0, 100.0), {
        0: 0.1, 25: 1.0, 50: 0.55, 75: 0.1, 100: 1e-3, 150: 1e-3}),
    ("constant", S.constant_schedule(0.3), {0: 0.3, 12345: 0.3}),
]


@pytest.mark.parametrize("name,schedule,expected", HAND, ids=[h[0] for h in HAND])
def test_hand_computed_values(name, schedule, expected):
    steps = list(expected)
    got = np.asarray(jax.jit(schedule)(jnp.asarray(steps)), np.float64)
    np.testing.assert_allclose(got, [expected[s] for s in steps], rtol=2e-6, atol=1e-9)
    out = schedule(steps[1])  # an eager call with a Python int gives the same value
    assert out.dtype == jnp.float32 and out.shape == ()
    np.testing.assert_allclose(float(out), expected[steps[1]], rtol=2e-6, atol=1e-9)


def test_cyclic_peaks_and_troughs_over_many_cycles():
    half = 7
    for mode, gamma in (("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.995)):
        sched = S.cyclic_schedule(0.01, 0.2, half, mode, gamma)
        k = np.arange(12)
        values = _eval(sched, 2 * half * 12)
        troughs, peaks = values[2 * half * k], values[(2 * k + 1) * half]
        np.testing.assert_allclose(troughs, 0.01, rtol=1e-6)
        if mode == "triangular":
            expected = np.full(12, 0.2)
        elif mode == "triangular2":
            expected = 0.01 + 0.19 * 0.5**k
        else:
            expected = 0.01 + 0.19 * 0.995 ** ((2 * k + 1) * half)
        np.testing.assert_allclose(peaks, expected, rtol=1e-6)
        # every value lies between base_lr and max_lr
        assert values.min() >= 0.01 * (1 - 1e-6)
        assert values.max() <= 0.2 * (1 + 1e-6)


@pytest.mark.parametrize("mode", ["triangular", "triangular2"])
def test_cyclic_half_cycle_beyond_int32_range(mode):
    # 2 * step_size > 2**31 - 1 used to raise OverflowError when the schedule was called.
    half = 2**30
    sched = S.cyclic_schedule(0.0, 1.0, half, mode)
    int_steps = jnp.asarray([0, half // 2, half, 2**31 - 1], jnp.int32)
    expected = [0.0, 0.5, 1.0, 1.0 - (2**30 - 1) / 2**30]
    np.testing.assert_allclose(sched(int_steps), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sched(half // 2), 0.5, rtol=1e-6)
    np.testing.assert_allclose(sched(float(half)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(S.cyclic_schedule(0.0, 1.0, 2**31 - 1, mode)(2**31 - 1), 1.0)


def test_cyclic_triangular2_past_2_to_31_cycles_stays_at_base_lr():
    # int64 steps (x64): the cycle index was cast to int32 before halving the amplitude
    # 2**cycle times, so past 2**31 cycles it wrapped around: an infinite rate at
    # 2**40 + 5, the full max_lr at cycle 2**33.
    sched = S.cyclic_schedule(0.1, 1.0, 10, "triangular2")
    steps = jnp.asarray([2**40 + 5, 2**33 * 20 + 10, 2**62 + 10], jnp.int64)
    np.testing.assert_allclose(np.asarray(sched(steps)), 0.1, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(jax.jit(sched)(steps)), 0.1, rtol=1e-6)


# --------------------------------------------------------------------------- monotonicity

DECREASING = [
    ("exponential", S.exponential_decay(0.1, 50, 0.7), 400),
    ("exponential_staircase", S.exponential_decay(0.1, 50, 0.7, staircase=True), 400),
    ("step_decay", S.step_decay(0.1, 0.5, 30), 400),
    ("inverse_time", S.inverse_time_decay(0.1, 0.01), 400),
    ("polynomial", S.polynomial_schedule(0.1, 0.001, 2.0, 300), 400),
    ("polynomial_frac", S.polynomial_schedule(0.1, 0.0, 0.7, 300), 400),
    ("linear", S.linear_schedule(0.1, 0.0, 300), 400),
    ("cosine", S.cosine_decay_schedule(0.1, 1000, alpha=0.05), 1100),
    ("cosine_exp", S.cosine_decay_schedule(0.1, 1000, exponent=1.5), 1100),
    ("piecewise", S.piecewise_constant_schedule(0.1, {50: 0.5, 80: 0.5, 200: 0.1}), 300),
]


@pytest.mark.parametrize("name,schedule,n", DECREASING, ids=[d[0] for d in DECREASING])
def test_decays_are_non_increasing(name, schedule, n):
    values = _eval(schedule, n)
    assert np.all(np.diff(values) <= 0.0)
    assert values[-1] < values[0]


@pytest.mark.parametrize("build,warmup,total", [
    (lambda: S.warmup_cosine_decay_schedule(0.0, 0.1, 100, 1000, 1e-4), 100, 1100),
    (lambda: S.warmup_linear_decay_schedule(1e-4, 0.1, 50, 300), 50, 400),
    (lambda: S.warmup_exponential_decay_schedule(0.0, 0.1, 40, 30, 0.8), 40, 400),
    (lambda: S.cosine_onecycle_schedule(500, 0.1), 150, 600),
    (lambda: S.linear_warmup(0.1, 60), 60, 100),
])
def test_warmup_rises_then_never_rises(build, warmup, total):
    values = _eval(build(), total)
    assert np.all(np.diff(values[: warmup + 1]) > 0)
    assert np.all(np.diff(values[warmup:]) <= 0)
    assert values.argmax() == warmup


def test_restart_cycles_decay_inside_and_jump_at_restarts():
    values = _eval(S.cosine_warm_restarts(0.1, 10, 2.0, alpha=0.01, decay_factor=0.8), 150)
    starts = [0, 10, 30, 70]
    jumps = np.flatnonzero(np.diff(values) > 0) + 1
    assert list(jumps) == starts[1:]
    for a, b in zip(starts, starts[1:], strict=False):
        assert np.all(np.diff(values[a:b]) < 0)


# --------------------------------------------------------------------------- jit, vmap, dtypes

JITTABLE = [
    ("piecewise", S.piecewise_constant_schedule(0.1, {10: 0.5, 20: 0.1})),
    ("exponential", S.exponential_decay(0.1, 10, 0.5, staircase=True)),
    ("inverse_time", S.inverse_time_decay(0.1, 0.5)),
    ("polynomial", S.polynomial_schedule(0.1, 0.0, 1.5, 50)),
    ("cosine", S.cosine_decay_schedule(0.1, 50, 0.1)),
    ("warmup_cosine", S.warmup_cosine_decay_schedule(0.0, 0.1, 10, 50)),
    ("triangular2", S.cyclic_schedule(0.01, 0.1, 5, "triangular2")),
    ("exp_range", S.cyclic_schedule(0.01, 0.1, 5, "exp_range", 0.9)),
    ("onecycle", S.cosine_onecycle_schedule(50, 0.1)),
    ("linear_onecycle", S.linear_onecycle_schedule(50, 0.1)),
    ("restarts", S.cosine_warm_restarts(0.1, 5, 2.0, 0.1, 0.5)),
    ("restarts_frac", S.cosine_warm_restarts(0.1, 5, 1.5)),
    ("sgdr", S.sgdr_schedule(_SGDR_CYCLES[:2])),
    ("constant", S.constant_schedule(0.1)),
]


@pytest.mark.parametrize("name,schedule", JITTABLE, ids=[j[0] for j in JITTABLE])
def test_jit_vmap_scan_with_traced_steps(name, schedule):
    n = 64
    eager = np.asarray(schedule(jnp.arange(n)))
    traces = []

    def traced(step):
        traces.append(step)
        return schedule(step)

    jitted = jax.jit(traced)
    for s in (0, 7, 33):
        out = jitted(jnp.asarray(s, jnp.int32))
        assert out.dtype == jnp.float32 and out.shape == ()
        assert float(out) == pytest.approx(float(eager[s]), rel=1e-6, abs=1e-12)
    assert len(traces) == 1  # one compilation for every int32 step

    vmapped = jax.jit(jax.vmap(schedule))(jnp.arange(n, dtype=jnp.int32))
    np.testing.assert_allclose(np.asarray(vmapped), eager, rtol=1e-6, atol=1e-12)

    def body(carry, step):
        return carry + schedule(step), schedule(step)

    total, seq = jax.lax.scan(body, jnp.zeros((), jnp.float32), jnp.arange(n))
    assert total.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(seq), eager, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("kind", [
    int, np.int32, np.int64, "int32", "int64", "uint32", float, "float64", np.float32,
])
def test_output_is_float32_for_any_step_type(kind):
    step = jnp.asarray(5, kind) if isinstance(kind, str) else kind(5)
    for sched in (S.cosine_decay_schedule(jnp.asarray(0.1, jnp.float64), 10),
                  S.cyclic_schedule(0.1, 1.0, 5), S.exponential_decay(0.1, 10, 0.5)):
        out = sched(step)
        assert out.dtype == jnp.float32
    assert float(S.cyclic_schedule(0.1, 1.0, 5)(step)) == pytest.approx(1.0)


def test_values_may_be_traced():
    lrs = jnp.asarray([0.1, 0.2, 0.4], jnp.float32)

    def at_50(lr):
        return S.warmup_cosine_decay_schedule(0.0, lr, 10, 90, end_value=lr / 10)(50)

    got = jax.jit(jax.vmap(at_50))(lrs)
    expected = [float(S.warmup_cosine_decay_schedule(0.0, float(x), 10, 90, float(x) / 10)(50))
                for x in lrs]
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6)
    got = jax.vmap(lambda lo: S.cyclic_schedule(lo, 1.0, 4)(jnp.arange(9)))(lrs)
    assert got.shape == (3, 9)
    np.testing.assert_allclose(np.asarray(got[:, 4]), 1.0)


def test_join_schedules_accepts_optax_pieces_and_restarts_steps():
    sched = S.join_schedules([optax.constant_schedule(1.0), optax.linear_schedule(1.0, 0.0, 10),
                              S.constant_schedule(0.5)], [5, 20])
    got = np.asarray(sched(jnp.asarray([0, 4, 5, 10, 15, 19, 20, 100])))
    np.testing.assert_allclose(got, [1.0, 1.0, 1.0, 0.5, 0.0, 0.0, 0.5, 0.5], atol=1e-7)
    assert sched(3).dtype == jnp.float32


# --------------------------------------------------------------------------- inside optimizers


def _sum_of_rates(schedule, n):
    return -float(np.sum(np.asarray(schedule(jnp.arange(n)), np.float64)))


@pytest.mark.parametrize("schedule", [
    S.warmup_cosine_decay_schedule(0.0, 0.1, 5, 20),
    S.cyclic_schedule(0.01, 0.1, 3, "triangular2"),
    S.step_decay(0.1, 0.5, 4),
])
def test_as_sgd_learning_rate(schedule):
    """With a unit gradient, SGD moves each parameter by exactly -lr(step) per step."""
    tx = optax.sgd(learning_rate=schedule)
    params = {"w": jnp.zeros(3, jnp.float32)}
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.tree.map(jnp.ones_like, params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(12):
        params, state = step(params, state)
    assert params["w"].dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(params["w"]), _sum_of_rates(schedule, 12), rtol=1e-5)


def test_as_adam_learning_rate_matches_optax_schedule():
    def run(schedule):
        tx = optax.adam(learning_rate=schedule)
        params = jnp.asarray([1.0, -2.0, 3.0], jnp.float32)
        state = tx.init(params)
        loss = lambda p: jnp.sum((p - 0.5) ** 2)
        for _ in range(15):
            updates, state = tx.update(jax.grad(loss)(params), state, params)
            params = optax.apply_updates(params, updates)
        return params

    ours = run(S.cosine_onecycle_schedule(15, 0.1))
    ref = run(optax.cosine_onecycle_schedule(15, 0.1))
    assert ours.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-5)
    assert not np.allclose(np.asarray(ours), [1.0, -2.0, 3.0])


# --------------------------------------------------------------------------- eager errors

ERRORS = [
    (S.exponential_decay, dict(init_value=0.1, transition_steps=0, decay_rate=0.5),
     "transition_steps", "0"),
    (S.exponential_decay, dict(init_value=0.1, transition_steps=-3, decay_rate=0.5),
     "transition_steps", "-3"),
    (S.exponential_decay, dict(init_value=0.1, transition_steps=10, decay_rate=0.0),
     "decay_rate", "0.0"),
    (S.exponential_decay, dict(init_value=0.1, transition_steps=10, decay_rate=-0.5),
     "decay_rate", "-0.5"),
    (S.exponential_decay, dict(init_value=0.1, transition_steps=10, decay_rate=0.5,
                               transition_begin=-1), "transition_begin", "-1"),
    (S.exponential_decay, dict(init_value=float("nan"), transition_steps=10, decay_rate=0.5),
     "init_value", "nan"),
    (S.step_decay, dict(init_value=0.1, decay_rate=0.5, step_size=0), "step_size", "0"),
    (S.inverse_time_decay, dict(init_value=0.1, decay_rate=-1.0), "decay_rate", "-1.0"),
    (S.inverse_time_decay, dict(init_value=0.1, decay_rate=1.0, decay_steps=0),
     "decay_steps", "0"),
    (S.polynomial_schedule, dict(init_value=1.0, end_value=0.0, power=1, transition_steps=0),
     "transition_steps", "0"),
    (S.polynomial_schedule, dict(init_value=1.0, end_value=0.0, power=-1.0,
                                 transition_steps=10), "power", "-1.0"),
    (S.linear_schedule, dict(init_value=1.0, end_value=0.0, transition_steps=2.5),
     "transition_steps", "2.5"),
    (S.cosine_decay_schedule, dict(init_value=0.1, decay_steps=0), "decay_steps", "0"),
    (S.cosine_decay_schedule, dict(init_value=0.1, decay_steps=10, alpha=-0.1), "alpha", "-0.1"),
    (S.cosine_decay_schedule, dict(init_value=0.1, decay_steps=10, exponent=0.0),
     "exponent", "0.0"),
    (S.piecewise_constant_schedule, dict(init_value=0.1, boundaries_and_scales={10: -0.5}),
     "boundaries_and_scales", "-0.5"),
    (S.piecewise_constant_schedule, dict(init_value=0.1, boundaries_and_scales={-2: 0.5}),
     "boundaries_and_scales", "-2"),
    (S.linear_warmup, dict(peak_value=0.1, warmup_steps=-1), "warmup_steps", "-1"),
    (S.warmup_cosine_decay_schedule, dict(init_value=0.0, peak_value=0.1, warmup_steps=10,
                                          decay_steps=10), "decay_steps", "10"),
    (S.warmup_cosine_decay_schedule, dict(init_value=0.0, peak_value=0.1, warmup_steps=0,
                                          decay_steps=0), "decay_steps", "0"),
    (S.warmup_linear_decay_schedule, dict(init_value=0.0, peak_value=0.1, warmup_steps=20,
                                          decay_steps=5), "decay_steps", "5"),
    (S.warmup_exponential_decay_schedule, dict(init_value=0.0, peak_value=0.1, warmup_steps=5,
                                               transition_steps=0, decay_rate=0.5),
     "transition_steps", "0"),
    (S.cyclic_schedule, dict(base_lr=0.1, max_lr=1.0, step_size=10, mode="triangle"),
     "mode", "triangle"),
    (S.cyclic_schedule, dict(base_lr=0.1, max_lr=1.0, step_size=0), "step_size", "0"),
    (S.cyclic_schedule, dict(base_lr=-0.1, max_lr=1.0, step_size=10), "base_lr", "-0.1"),
    (S.cyclic_schedule, dict(base_lr=0.5, max_lr=0.1, step_size=10), "max_lr", "0.1"),
    (S.cyclic_schedule, dict(base_lr=0.1, max_lr=1.0, step_size=10, mode="exp_range",
                             gamma=0.0), "gamma", "0.0"),
    (S.cyclic_schedule, dict(base_lr=0.1, max_lr=1.0, step_size=10, gamma=0.9),
     "gamma", "0.9"),
    (S.cosine_onecycle_schedule, dict(transition_steps=100, peak_value=0.1, pct_start=1.0),
     "pct_start", "1.0"),
    (S.cosine_onecycle_schedule, dict(transition_steps=100, peak_value=0.1, pct_start=0.0),
     "pct_start", "0.0"),
    (S.cosine_onecycle_schedule, dict(transition_steps=0, peak_value=0.1),
     "transition_steps", "0"),
    (S.cosine_onecycle_schedule, dict(transition_steps=10, peak_value=-0.1),
     "peak_value", "-0.1"),
    (S.linear_onecycle_schedule, dict(transition_steps=100, peak_value=0.1, pct_start=-0.2),
     "pct_start", "-0.2"),
    (S.linear_onecycle_schedule, dict(transition_steps=100, peak_value=0.1, pct_start=0.5,
                                      pct_final=0.4), "pct_final", "0.4"),
    (S.linear_onecycle_schedule, dict(transition_steps=100, peak_value=0.1, div_factor=0.0),
     "div_factor", "0.0"),
    # The rise and the fall would end at the same step, floor(0.3 * 10) = floor(0.35 * 10):
    # optax's curve then never reaches the peak and ends 25x too low.
    (S.linear_onecycle_schedule, dict(transition_steps=10, peak_value=1.0, pct_start=0.3,
                                      pct_final=0.35), "transition_steps=10", "step 3"),
    # An end_value on the wrong side of init_value: optax returns it at every step.
    (S.exponential_decay, dict(init_value=1.0, transition_steps=10, decay_rate=0.5,
                               end_value=2.0), "end_value", "<= init_value (1.0)"),
    (S.exponential_decay, dict(init_value=1.0, transition_steps=10, decay_rate=2.0,
                               end_value=0.5), "end_value", ">= init_value (1.0)"),
    (S.warmup_exponential_decay_schedule, dict(init_value=0.0, peak_value=0.1, warmup_steps=5,
                                               transition_steps=10, decay_rate=0.5,
                                               end_value=0.2), "end_value", "<= init_value"),
    (S.cosine_warm_restarts, dict(init_value=0.1, first_period=0), "first_period", "0"),
    (S.cosine_warm_restarts, dict(init_value=0.1, first_period=10, period_mult=0.5),
     "period_mult", "0.5"),
    (S.cosine_warm_restarts, dict(init_value=0.1, first_period=10, decay_factor=-1.0),
     "decay_factor", "-1.0"),
    (S.sgdr_schedule, dict(cosine_kwargs=[]), "cosine_kwargs", "[]"),
    (S.sgdr_schedule, dict(cosine_kwargs=[dict(init_value=0.0, peak_value=0.1, warmup_steps=0,
                                               decay_steps=0)]), "decay_steps", "0"),
    (S.join_schedules, dict(schedules=[S.constant_schedule(1.0)], boundaries=[3]),
     "boundaries", "[3]"),
    (S.join_schedules, dict(schedules=[S.constant_schedule(1.0)] * 3, boundaries=[5, 2]),
     "boundaries", "[5, 2]"),
    # Step counts past int32 would wrap around (a boundary at 3e9 acted at step 5).
    (S.piecewise_constant_schedule, dict(init_value=1.0, boundaries_and_scales={3 * 10**9: 0.1}),
     "3000000000", "2**31 - 1"),
    (S.cosine_onecycle_schedule, dict(transition_steps=3 * 10**9, peak_value=1.0),
     "transition_steps", "3000000000"),
    (S.exponential_decay, dict(init_value=1.0, transition_steps=10, decay_rate=0.5,
                               transition_begin=2**31), "transition_begin", "2147483648"),
    # A string from a config must not be read by its truthiness.
    (S.exponential_decay, dict(init_value=1.0, transition_steps=10, decay_rate=0.5,
                               staircase="False"), "staircase", "'False'"),
    (S.step_decay, dict(init_value=1.0, decay_rate=0.5, step_size=10, staircase=1),
     "staircase", "1"),
    (S.inverse_time_decay, dict(init_value=1.0, decay_rate=1.0, decay_steps=10,
                                staircase="no"), "staircase", "'no'"),
    (S.warmup_exponential_decay_schedule, dict(init_value=0.0, peak_value=float("nan"),
                                               warmup_steps=10, transition_steps=10,
                                               decay_rate=0.5), "peak_value", "nan"),
]


@pytest.mark.parametrize("factory,kwargs,arg,value", ERRORS,
                         ids=[f"{e[0].__name__}-{e[2]}-{e[3]}" for e in ERRORS])
def test_invalid_arguments_raise_eagerly(factory, kwargs, arg, value):
    with pytest.raises(ValueError) as info:
        factory(**kwargs)
    message = str(info.value)
    assert factory.__name__ in message
    assert arg in message
    assert value in message


def test_warm_restarts_at_a_restart_whose_cycle_ends_past_int32():
    # period_mult=3: cycle k starts at (3**k - 1) / 2 and lasts 3**k steps. The restart at
    # step (3**20 - 1) / 2 = 1743392200 starts a cycle of 3**20 steps, which does not fit
    # in int32; its length must not wrap around.
    sched = S.cosine_warm_restarts(1.0, first_period=1, period_mult=3.0)
    restart = (3**20 - 1) // 2
    for step in (restart, np.int32(restart), jnp.asarray(restart, jnp.int32)):
        np.testing.assert_allclose(sched(step), 1.0, rtol=1e-6)
    np.testing.assert_allclose(sched(restart - 1), 0.0, atol=1e-6)
    # Half-way through the previous cycle: (1 + cos(pi / 2)) / 2 = 0.5.
    np.testing.assert_allclose(sched((3**19 - 1) // 2 + 3**19 // 2), 0.5, atol=1e-6)
    np.testing.assert_allclose(jax.jit(sched)(jnp.int32(restart)), 1.0, rtol=1e-6)
    # A tenth into that cycle (still an int32 step): (1 + cos(pi / 10)) / 2.
    step = jnp.asarray(restart + 3**20 // 10, jnp.int32)
    np.testing.assert_allclose(sched(step), (1 + np.cos(np.pi / 10)) / 2, atol=1e-6)


def test_cyclic_mode_error_suggests_the_close_mode():
    with pytest.raises(ValueError, match="triangular2"):
        S.cyclic_schedule(0.1, 1.0, 10, mode="triangular_2")


# --------------------------------------------------------------------------- registry

MINIMAL_KWARGS = {
    "constant_schedule": dict(value=0.1),
    "piecewise_constant_schedule": dict(init_value=0.1, boundaries_and_scales={5: 0.5}),
    "step_decay": dict(init_value=0.1, decay_rate=0.5, step_size=5),
    "exponential_decay": dict(init_value=0.1, transition_steps=5, decay_rate=0.5),
    "inverse_time_decay": dict(init_value=0.1, decay_rate=0.5),
    "polynomial_schedule": dict(init_value=0.1, end_value=0.0, power=2, transition_steps=10),
    "linear_schedule": dict(init_value=0.1, end_value=0.0, transition_steps=10),
    "cosine_decay_schedule": dict(init_value=0.1, decay_steps=10),
    "linear_warmup": dict(peak_value=0.1, warmup_steps=5),
    "warmup_constant_schedule": dict(init_value=0.0, peak_value=0.1, warmup_steps=5),
    "warmup_cosine_decay_schedule": dict(init_value=0.0, peak_value=0.1, warmup_steps=5,
                                         decay_steps=20),
    "warmup_exponential_decay_schedule": dict(init_value=0.0, peak_value=0.1, warmup_steps=5,
                                              transition_steps=5, decay_rate=0.5),
    "warmup_linear_decay_schedule": dict(init_value=0.0, peak_value=0.1, warmup_steps=5,
                                         decay_steps=20),
    "cyclic_schedule": dict(base_lr=0.01, max_lr=0.1, step_size=5),
    "cosine_onecycle_schedule": dict(transition_steps=20, peak_value=0.1),
    "linear_onecycle_schedule": dict(transition_steps=20, peak_value=0.1),
    "sgdr_schedule": dict(cosine_kwargs=[dict(init_value=0.1, peak_value=0.1, warmup_steps=0,
                                              decay_steps=10)]),
    "cosine_warm_restarts": dict(init_value=0.1, first_period=10),
}


def test_every_registered_name_builds_a_schedule():
    assert set(MINIMAL_KWARGS) <= set(S.names())
    assert list(S.names()) == sorted(S.names())
    built = {}
    for name in S.names():
        factory = S.get_factory(name)
        assert factory.__name__ in MINIMAL_KWARGS
        assert getattr(S, factory.__name__) is factory
        built[factory.__name__] = S.get(name, **MINIMAL_KWARGS[factory.__name__])
    assert set(built) == set(MINIMAL_KWARGS)
    steps = jnp.asarray([0, 3, 30])
    for sched in built.values():
        out = jax.jit(sched)(steps)
        assert out.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(out)))


def _numeric_arguments():
    """(factory, valid kwargs, name) for every numeric argument of every factory, given or
    defaulted in MINIMAL_KWARGS, plus the optional end_value of exponential_decay."""
    cases = []
    for fname, kwargs in MINIMAL_KWARGS.items():
        factory = getattr(S, fname)
        for name, param in inspect.signature(factory).parameters.items():
            value = kwargs.get(name, param.default)
            if isinstance(value, int | float) and not isinstance(value, bool):
                cases.append((factory, kwargs, name))
    cases.append((S.exponential_decay, dict(init_value=0.1, transition_steps=10,
                                            decay_rate=0.5), "end_value"))
    return cases


NUMERIC_ARGUMENTS = _numeric_arguments()


@pytest.mark.parametrize("factory,kwargs,name", NUMERIC_ARGUMENTS,
                         ids=[f"{f.__name__}-{n}" for f, _, n in NUMERIC_ARGUMENTS])
@pytest.mark.parametrize("flag", [True, False, np.bool_(True), jnp.asarray(False)], ids=repr)
def test_a_bool_is_refused_where_a_number_is_expected(factory, kwargs, name, flag):
    # True read as 1.0 (a YAML "yes", a swapped argument) is refused by every value, rate
    # and step argument alike, in one line naming the schedule, the argument and the value.
    with pytest.raises(ValueError) as info:
        factory(**dict(kwargs, **{name: flag}))
    message = str(info.value)
    assert message.startswith(f"{factory.__name__}: {name} must be "), message
    # Shape arguments show the Python bool they read from a NumPy or JAX one.
    got = (f" (not a bool), got {flag!r}", f" (not a bool), got {bool(flag)!r}")
    assert message.endswith(got) and "\n" not in message, message


def test_a_bool_or_complex_value_is_refused_traced_or_nested():
    def build(value):
        return S.linear_schedule(value, 0.0, 10)(3)

    with pytest.raises(ValueError, match=r"^linear_schedule: init_value must be a finite real "
                                         r"number \(not a bool\), got "):
        jax.vmap(build)(jnp.asarray([True, False]))
    np.testing.assert_allclose(jax.vmap(build)(jnp.asarray([1.0, 2.0])), [0.7, 1.4], rtol=1e-6)
    for value in (1 + 1j, jnp.asarray(1 + 1j)):
        with pytest.raises(ValueError, match=r"^linear_schedule: init_value must be a finite "
                                             r"real number, got "):
            S.linear_schedule(value, 0.0, 10)
    cycle = dict(init_value=0.0, peak_value=True, warmup_steps=0, decay_steps=10)
    with pytest.raises(ValueError, match=r"^sgdr_schedule: cosine_kwargs\[0\]: "
                                         r"warmup_cosine_decay_schedule: peak_value .* got True"):
        S.sgdr_schedule([cycle])


def test_sgdr_restarts_past_int32_are_refused_when_built():
    # Cycles summing past 2**31 - 1 raised OverflowError only when called (x64 off), or
    # restarted at the wrong step. The last cycle may run past it: it has no restart.
    cycle = dict(init_value=0.0, peak_value=0.1, warmup_steps=0, decay_steps=2**30)
    with pytest.raises(ValueError) as info:
        S.sgdr_schedule([cycle, cycle, cycle])
    message = str(info.value)
    assert message.startswith("sgdr_schedule: cosine_kwargs[2] would start at step "
                              "2147483648, past 2**31 - 1 = 2147483647"), message
    assert "int32" in message and "\n" not in message
    last = dict(cycle, decay_steps=2**31 - 1)
    sched = S.sgdr_schedule([cycle, dict(cycle, decay_steps=2**30 - 1), last])
    restart = jnp.asarray(2**31 - 1, jnp.int32)  # the last cycle starts at the last step
    assert float(sched(restart - 1)) == pytest.approx(0.0, abs=1e-6)
    assert float(sched(restart)) == pytest.approx(0.1)
    with jax.enable_x64(False):
        assert float(jax.jit(sched)(restart)) == pytest.approx(0.1)


def test_registry_aliases_and_normalisation():
    assert S.get_factory("cosine") is S.cosine_decay_schedule
    assert S.get_factory("Warmup-Cosine") is S.warmup_cosine_decay_schedule
    assert S.get_factory("cyclic") is S.cyclic_schedule
    assert S.get_factory("constant") is S.constant_schedule
    assert float(S.get("cosine", init_value=0.1, decay_steps=100)(50)) == pytest.approx(0.05)


def test_registry_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match="unknown schedule 'cosin'") as info:
        S.get("cosin")
    assert "'cosine'" in str(info.value)
    # each names the function called (get_factory said "schedules.get")
    with pytest.raises(ValueError, match=r"^schedules\.get_factory: unknown schedule"):
        S.get_factory("no_such_schedule")
    with pytest.raises(ValueError, match=r"^schedules\.get_factory: name must be a string, got 3"):
        S.get_factory(3)
    with pytest.raises(ValueError, match=r"^schedules\.get: unknown schedule 'cosin'"):
        S.get("cosin")


def test_registry_bad_and_missing_kwargs():
    with pytest.raises(ValueError) as info:
        S.get("cosine", init_value=0.1, decay_step=100)
    message = str(info.value)
    assert "'decay_step'" in message and "decay_steps" in message
    assert "init_value, decay_steps, alpha, exponent" in message
    with pytest.raises(ValueError, match="missing required argument.*decay_steps"):
        S.get("cosine", init_value=0.1)
    with pytest.raises(ValueError, match="step_size"):
        S.get("cyclic", base_lr=0.1, max_lr=1.0, step_size=0)


def test_public_api_and_docstring_examples():
    for name in S.__all__:
        assert hasattr(S, name), name
    for name in MINIMAL_KWARGS:
        doc = getattr(S, name).__doc__
        assert "Args:" in doc and "Returns:" in doc and ">>>" in doc, name
    result = doctest.testmod(S, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 20 and result.failed == 0


# Integer step types narrower than int32 (an int16 step counter, a uint8 epoch index):
# each schedule must read the step's value, not wrap boundaries and lengths around in the
# step's own dtype (int8(300) is 44, uint8(1000 - 100) wraps, ...).
NARROW_STEP_SCHEDULES = [
    ("piecewise_constant", S.piecewise_constant_schedule(1.0, {300: 0.5, 70_000: 0.1})),
    ("exponential_begin", S.exponential_decay(1.0, 1000, 0.5, transition_begin=50)),
    ("warmup_cosine", S.warmup_cosine_decay_schedule(0.0, 1.0, 50, 1000)),
    ("linear_onecycle", S.linear_onecycle_schedule(1000, 1.0)),
    ("cyclic", S.cyclic_schedule(0.1, 1.0, 300)),
    ("warm_restarts", S.cosine_warm_restarts(1.0, 30, 2.0)),
    ("polynomial", S.polynomial_schedule(1.0, 0.1, 2.0, 40_000, transition_begin=200)),
]


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16"])
@pytest.mark.parametrize("name,schedule", NARROW_STEP_SCHEDULES,
                         ids=[n for n, _ in NARROW_STEP_SCHEDULES])
def test_narrow_integer_steps_give_the_int32_values(name, schedule, dtype):
    steps = np.asarray([0, 1, 77, 100, 127], dtype)
    expected = np.asarray(schedule(jnp.asarray(steps, jnp.int32)))
    got = schedule(jnp.asarray(steps))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, err_msg=name)
    traced = jax.jit(schedule)(jnp.asarray(steps))
    np.testing.assert_allclose(np.asarray(traced), expected, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("name,schedule", NARROW_STEP_SCHEDULES,
                         ids=[n for n, _ in NARROW_STEP_SCHEDULES])
def test_uint32_steps_past_int32_saturate_without_x64(name, schedule):
    # Without x64 a uint32 step was cast to int32 and wrapped around: 3e9 read as a
    # negative step, i.e. step 0. It saturates at 2**31 - 1, as optax's counters do.
    with jax.enable_x64(False):
        expected = np.asarray(schedule(jnp.asarray(2**31 - 1, jnp.int32)))
        steps = jnp.asarray([2**31, 3_000_000_000, 2**32 - 1], jnp.uint32)
        got = np.asarray(jax.jit(schedule)(steps))
        eager = np.asarray(schedule(np.uint32(3_000_000_000)))
    np.testing.assert_allclose(got, np.broadcast_to(expected, (3,)), rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(eager, expected, rtol=1e-6, err_msg=name)


# Shape arguments given as concrete 0-d arrays (``jnp.float32(0.5)``, a value read back
# from a checkpoint): optax takes them, and so must we, with the same values as the
# Python numbers.
CONCRETE_ARRAY_ARGS = [
    (S.exponential_decay, dict(init_value=1.0, transition_steps=jnp.asarray(10),
                               decay_rate=jnp.float32(0.5), transition_begin=np.int64(3))),
    (S.cosine_decay_schedule, dict(init_value=1.0, decay_steps=jnp.asarray(50, jnp.int32),
                                   alpha=jnp.float32(0.1), exponent=jnp.asarray(2.0))),
    (S.piecewise_constant_schedule, dict(init_value=1.0,
                                         boundaries_and_scales={10: jnp.asarray(0.5)})),
    (S.warmup_cosine_decay_schedule, dict(init_value=0.0, peak_value=1.0,
                                          warmup_steps=jnp.asarray(5),
                                          decay_steps=jnp.asarray(40))),
    (S.cosine_onecycle_schedule, dict(transition_steps=jnp.asarray(40), peak_value=1.0,
                                      pct_start=jnp.float32(0.25))),
    (S.cyclic_schedule, dict(base_lr=0.1, max_lr=1.0, step_size=jnp.asarray(7),
                             mode="exp_range", gamma=jnp.float32(0.99))),
    (S.cosine_warm_restarts, dict(init_value=1.0, first_period=jnp.asarray(5),
                                  period_mult=jnp.asarray(2.0), alpha=jnp.float32(0.1))),
    (S.step_decay, dict(init_value=1.0, decay_rate=jnp.asarray(0.5),
                        step_size=jnp.asarray(10), staircase=jnp.asarray(True))),
]


def _as_python(value):
    if isinstance(value, dict):
        return {k: _as_python(v) for k, v in value.items()}
    if isinstance(value, jax.Array | np.ndarray | np.generic):
        return value.item()
    return value


@pytest.mark.parametrize("factory,kwargs", CONCRETE_ARRAY_ARGS,
                         ids=[f.__name__ for f, _ in CONCRETE_ARRAY_ARGS])
def test_shape_arguments_may_be_concrete_arrays(factory, kwargs):
    expected = _eval(factory(**_as_python(kwargs)), 60)
    np.testing.assert_array_equal(_eval(factory(**kwargs), 60), expected)


def test_traced_shape_argument_is_a_clear_error():
    def build(rate):
        return S.exponential_decay(1.0, 10, rate)(5)

    with pytest.raises(ValueError) as info:
        jax.jit(build)(0.5)
    message = str(info.value)
    assert "exponential_decay" in message and "decay_rate" in message
    assert "concrete" in message


def test_non_scalar_array_shape_argument_is_rejected():
    with pytest.raises(ValueError, match="decay_steps"):
        S.cosine_decay_schedule(1.0, jnp.asarray([10, 20]))
