"""Adam's blocked update (parameters larger than one cache block) and its packed update (the
parameters of a group in one run of passes) against the one-parameter, whole-array update."""

from __future__ import annotations

import numpy as np
import pytest

from minigrad import nn, optim
from minigrad.optim import Adam


def _train(monkeypatch, block, shape, dtype, weight_decay, steps=3):
    monkeypatch.setattr(optim, "_BLOCK", block)
    rng = np.random.default_rng(0)
    p = nn.Parameter(rng.standard_normal(shape), dtype=dtype)
    opt = Adam([p], lr=0.01, weight_decay=weight_decay)
    for _ in range(steps):
        p.grad = rng.standard_normal(shape).astype(dtype)
        opt.step()
    return p.data, opt.state[0]


@pytest.mark.parametrize("shape", [(50, 7), (64,), (3, 5, 7)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_blocked_adam_is_identical(monkeypatch, shape, dtype, weight_decay):
    # Blocks of 16 elements (the last one shorter unless the size divides) against one block.
    blocked, state_b = _train(monkeypatch, 16, shape, dtype, weight_decay)
    whole, state_w = _train(monkeypatch, 1 << 30, shape, dtype, weight_decay)
    assert blocked.dtype == whole.dtype == dtype
    np.testing.assert_array_equal(blocked, whole)
    np.testing.assert_array_equal(state_b["m"], state_w["m"])
    np.testing.assert_array_equal(state_b["v"], state_w["v"])
    assert state_b["step"] == state_w["step"] == 3


def test_non_contiguous_arrays_take_the_whole_array_path(monkeypatch):
    # A transposed parameter or gradient cannot be cut into flat blocks (a flattened copy would
    # be updated instead of the parameter); the update must still land, as for contiguous ones.
    monkeypatch.setattr(optim, "_BLOCK", 4)
    rng = np.random.default_rng(1)
    g = rng.standard_normal((6, 5)).astype(np.float32).T
    a = nn.Parameter(np.ones((5, 6)))
    a.data = np.ones((6, 5), np.float32).T
    b = nn.Parameter(np.ones((5, 6)))
    opt_a, opt_b = Adam([a], lr=0.1), Adam([b], lr=0.1)
    a.grad, b.grad = g, np.ascontiguousarray(g)
    opt_a.step()
    opt_b.step()
    assert not a.data.flags.c_contiguous
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(b.data, np.ones((5, 6)))


# --------------------------------------------------------------------------- packed update

SHAPES = [(6, 5), (5,), (4, 4), (4,), (3, 2, 2), ()]


def _params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal(shape), dtype=dtype) for shape in SHAPES]


def _grads(dtype, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
            for _ in range(steps)]


def _trajectory(cls, packed, dtype, settings, steps=4, skip=None, between=None):
    """Parameters and states after each step; ``skip`` = (step, index) leaves one gradient
    out; ``between(opt, params, step)`` runs after each step."""
    params = _params(dtype)
    opt = cls(params, **settings)
    opt._packed = packed
    out = []
    for k, grads in enumerate(_grads(dtype, steps)):
        for i, (p, g) in enumerate(zip(params, grads)):
            p.grad = None if skip == (k, i) else g
        opt.step()
        if between is not None:
            between(opt, params, k)
        out.append(([p.data.copy() for p in params],
                    [{key: np.array(v, copy=True) for key, v in s.items()} for s in opt.state]))
    return out


def _assert_identical(a, b):
    for (pa, sa), (pb, sb) in zip(a, b, strict=True):
        for x, y in zip(pa, pb, strict=True):
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
        for x, y in zip(sa, sb, strict=True):
            assert sorted(x) == sorted(y)
            for key in x:
                np.testing.assert_array_equal(x[key], y[key])


ADAM_SETTINGS = [
    (Adam, {"lr": 0.01}),
    (Adam, {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05}),
    (optim.AdamW, {"lr": 0.05, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("cls, settings", ADAM_SETTINGS,
                         ids=["adam", "adam-l2", "adamw"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_adam_is_identical_to_one_parameter_at_a_time(cls, settings, dtype):
    packed = _trajectory(cls, True, dtype, settings)
    plain = _trajectory(cls, False, dtype, settings)
    _assert_identical(packed, plain)


@pytest.mark.parametrize("block", [7, 1 << 16])
def test_packed_adam_in_blocks_is_identical(monkeypatch, block):
    # Cache blocks that cut through parameters (7 elements), and one block for the whole pack.
    monkeypatch.setattr(optim, "_BLOCK", block)
    settings = {"lr": 0.01, "weight_decay": 0.01}
    _assert_identical(_trajectory(Adam, True, np.float32, settings),
                      _trajectory(Adam, False, np.float32, settings))


def test_packed_adam_with_a_skipped_parameter():
    # Parameter 2 has no gradient on step 1: from then on it has taken one step fewer than
    # the others and is updated with its own bias corrections, outside their pack.
    for skip in [(1, 2), (0, 0)]:
        _assert_identical(_trajectory(Adam, True, np.float64, {"lr": 0.1}, skip=skip),
                          _trajectory(Adam, False, np.float64, {"lr": 0.1}, skip=skip))


def test_packed_adam_state_views_and_state_dict_round_trip():
    def reload(opt, params, step):
        if step == 1:          # fresh states from a saved dict: the pack is rebuilt from them
            opt.load_state_dict(opt.state_dict())
        if step == 2:          # running values changed in place through the state's views
            opt.state[1]["m"][...] *= 0.5
            opt.state[3]["v"][...] += 1.0

    packed = _trajectory(Adam, True, np.float32, {"lr": 0.1}, between=reload)
    plain = _trajectory(Adam, False, np.float32, {"lr": 0.1}, between=reload)
    _assert_identical(packed, plain)
    params = _params(np.float32)
    opt = Adam(params, lr=0.1)
    for p, g in zip(params, _grads(np.float32, 1)[0]):
        p.grad = g
    opt.step()
    for p, s in zip(params, opt.state):
        assert s["m"].shape == s["v"].shape == p.shape and s["step"] == 1
    saved = opt.state_dict()["state"]["0"]["m"]
    assert saved.base is None          # a copy, not a view of the pack


def test_packed_adam_leaves_odd_parameters_to_the_plain_update():
    # A transposed parameter, a float64 gradient for a float32 parameter: updated on their own,
    # and everything still matches the one-at-a-time update.
    def odd(packed):
        rng = np.random.default_rng(3)
        a = nn.Parameter(np.ones((5, 6)))
        a.data = np.ones((6, 5), np.float32).T
        b, c, d = (nn.Parameter(rng.standard_normal(s).astype(np.float32))
                   for s in [(3,), (4, 2), (2,)])
        opt = Adam([a, b, c, d], lr=0.1)
        opt._packed = packed
        for _ in range(3):
            a.grad = rng.standard_normal((6, 5)).astype(np.float32).T
            b.grad = rng.standard_normal(3)              # float64
            c.grad = rng.standard_normal((4, 2)).astype(np.float32)
            d.grad = rng.standard_normal(2).astype(np.float32)
            opt.step()
        return [p.data.copy() for p in (a, b, c, d)]

    for x, y in zip(odd(True), odd(False), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("threads", [2, 3])
def test_packed_adam_on_threads_is_identical(monkeypatch, threads):
    # Blocks of at most 8 elements shared out among the threads (every split worth it).
    from minigrad import parallel

    monkeypatch.setattr(optim, "_BLOCK", 8)
    monkeypatch.setattr(parallel, "MIN_WORK", 1)
    old = parallel.get_num_threads()
    parallel.set_num_threads(threads)
    try:
        shared = _trajectory(optim.AdamW, True, np.float32, {"lr": 0.05})
    finally:
        parallel.set_num_threads(old)
    _assert_identical(shared, _trajectory(optim.AdamW, False, np.float32, {"lr": 0.05}))
