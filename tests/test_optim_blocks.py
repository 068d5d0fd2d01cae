"""Adam's blocked update (parameters larger than one cache block) against the whole-array one."""

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
