"""Tests of minigrad.profiler: per-op timings, counts and output sizes."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

import minigrad
from minigrad import function
from minigrad.function import Function
from minigrad.profiler import profile


class Sleep(Function):
    """y = x, sleeping ``forward_s`` in forward and ``backward_s`` in backward."""

    def __init__(self, forward_s=0.0, backward_s=0.0):
        self.forward_s, self.backward_s = forward_s, backward_s

    def forward(self, x):
        time.sleep(self.forward_s)
        return x.copy()

    def backward(self, dy):
        time.sleep(self.backward_s)
        return dy


def step(x, w):
    return ((x @ w).relu() * 2.0).sum()


def make(seed=0, n=64):
    rng = np.random.default_rng(seed)
    x = minigrad.Tensor(rng.normal(size=(n, n)).astype(np.float32))
    w = minigrad.Tensor(rng.normal(size=(n, n)).astype(np.float32), requires_grad=True)
    return x, w


def test_counts_calls_and_output_bytes_per_op():
    x, w = make()
    with profile() as prof:
        for _ in range(3):
            step(x, w).backward()
    stats = {s.name: s for s in prof.stats()}
    assert sorted(stats) == ["MatMul", "Mul", "ReLU", "Sum"]
    assert all(s.calls == 3 and s.backward_calls == 3 for s in stats.values())
    assert stats["MatMul"].output_bytes == 3 * 64 * 64 * 4
    assert stats["Sum"].output_bytes == 3 * 4
    assert function._observers == []


def test_totals_match_the_rows_and_fit_in_the_wall_time():
    x, w = make()
    start = time.perf_counter()
    with profile() as prof:
        for _ in range(5):
            step(x, w).backward()
    wall_ms = (time.perf_counter() - start) * 1e3
    rows = prof.stats()
    assert prof.total_forward_ms == pytest.approx(sum(s.forward_s for s in rows) * 1e3)
    assert prof.total_backward_ms == pytest.approx(sum(s.backward_s for s in rows) * 1e3)
    assert 0 < prof.total_forward_ms and 0 < prof.total_backward_ms
    assert prof.total_ms <= prof.wall_ms <= wall_ms
    total_line = next(line for line in prof.table().splitlines() if line.startswith("total"))
    numbers = [float(v) for v in total_line.split()[1:]]
    assert numbers[0] == 20
    assert numbers[1] == pytest.approx(prof.total_forward_ms, abs=1e-3)
    assert numbers[2] == pytest.approx(prof.total_backward_ms, abs=1e-3)
    assert numbers[4] == pytest.approx(100.0)


def test_times_are_attributed_to_the_right_op_and_phase():
    x = minigrad.Tensor(np.ones(3), requires_grad=True)
    with profile() as prof:
        y = Sleep(forward_s=0.03)(x)
        z = Sleep(backward_s=0.05)(y * 2.0)
        z.sum().backward()
    sleep = {s.name: s for s in prof.stats()}["Sleep"]
    assert sleep.calls == 2
    assert 30 <= sleep.forward_s * 1e3 < 30 + 25
    assert 50 <= sleep.backward_s * 1e3 < 50 + 25
    assert prof.op_ms(y.creator)[0] >= 30 and prof.op_ms(y.creator)[1] < 25
    assert prof.op_ms(z.creator)[1] >= 50
    assert prof.stats()[0].name == "Sleep"  # sorted by total time
    assert prof.op_ms((x * 3.0).creator) is None


def test_table_layout_sorting_and_limit():
    x = minigrad.Tensor(np.ones(3), requires_grad=True)
    with profile() as prof:
        Sleep(forward_s=0.02)(x).sum().backward()
        (x * 2.0).sum().backward()
    table = prof.table()
    header = table.splitlines()[0].split()
    assert header == ["op", "calls", "forward", "ms", "backward", "ms", "total", "ms", "%",
                      "output", "MB"]
    rows = [line.split()[0] for line in table.splitlines()[2:-3]]
    assert rows[0] == "Sleep" and sorted(rows) == ["Mul", "Sleep", "Sum"]
    assert [line.split()[0] for line in prof.table(sort_by="name").splitlines()[2:-3]] == \
        ["Mul", "Sleep", "Sum"]
    assert [line.split()[0] for line in prof.table(sort_by="calls").splitlines()[2:-3]][0] \
        == "Sum"
    limited = prof.table(limit=1)
    assert "... 2 more" in limited and "Mul " not in limited
    assert limited.splitlines()[-2].startswith("total")
    assert re.search(r"wall time of the profiled block\(s\): [\d.]+ ms", table)
    assert str(prof) == prof.table()
    percent = [float(line.split()[5]) for line in table.splitlines()[2:-3]]
    assert sum(percent) == pytest.approx(100.0, abs=0.2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(sort_by="speed"), "sort_by must be one of"),
    (dict(group_by="layer"), "group_by must be one of"),
    (dict(limit=-1), "limit must be a non-negative int"),
])
def test_table_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        profile().table(**kwargs)


def test_group_by_module_uses_the_running_module():
    class Fake:
        def __init__(self, name):
            self.name = name

    x = minigrad.Tensor(np.ones(3), requires_grad=True)
    with profile() as prof:
        function._module_scope[:] = [Fake(""), Fake("fc1")]
        try:
            y = x * 2.0
        finally:
            function._module_scope[:] = []
        (y * 3.0).sum().backward()
    names = sorted(s.name for s in prof.stats(group_by="module"))
    assert names == ["-/Mul", "-/Sum", "fc1/Mul"]
    fc1 = next(s for s in prof.stats(group_by="module") if s.name == "fc1/Mul")
    assert fc1.calls == 1 and fc1.backward_calls == 1


def test_nested_profiles_each_record_what_runs_inside():
    x = minigrad.Tensor(np.ones(3), requires_grad=True)
    with profile() as outer:
        _ = (x * 2.0).sum()
        with profile() as inner:
            _ = (x * 2.0).sum()
        assert function._observers == [outer]
    assert {s.name: s.calls for s in outer.stats()} == {"Mul": 2, "Sum": 2}
    assert {s.name: s.calls for s in inner.stats()} == {"Mul": 1, "Sum": 1}
    assert function._observers == []


def test_one_profile_cannot_be_entered_twice_at_once_but_can_resume():
    x = minigrad.Tensor(np.ones(3))
    prof = profile()
    with prof:
        with pytest.raises(RuntimeError, match="already active"):
            prof.__enter__()
        _ = x * 2.0
    with prof:
        _ = x * 2.0
    assert prof.stats()[0].calls == 2


def test_observer_is_removed_when_the_block_raises():
    with pytest.raises(ValueError, match="boom"):
        with profile():
            raise ValueError("boom")
    assert function._observers == []


def test_ops_outside_the_block_are_not_recorded_and_no_grad_ops_are():
    x = minigrad.Tensor(np.ones(3), requires_grad=True)
    _ = x * 2.0
    with profile() as prof:
        with minigrad.no_grad():
            _ = x * 2.0
    _ = x * 2.0
    assert [(s.name, s.calls, s.backward_calls) for s in prof.stats()] == [("Mul", 1, 0)]


def test_cnn_step_by_op_and_by_module():
    models = pytest.importorskip("minigrad.models")
    nn = pytest.importorskip("minigrad.nn")
    nn.manual_seed(0)
    model = models.SimpleConvNet()
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    with profile() as prof:
        model.loss(x, np.array([1, 2])).backward()
    calls = {s.name: s.calls for s in prof.stats()}
    assert calls["Conv2d"] == 1 and calls["MaxPool2d"] == 1 and calls["Affine"] == 2
    by_module = {s.name for s in prof.stats(group_by="module")}
    assert {"conv1/Conv2d", "pool1/MaxPool2d", "affine1/Affine", "affine2/Affine"} <= by_module
    conv = next(s for s in prof.stats() if s.name == "Conv2d")
    assert conv.output_bytes == 2 * 30 * 24 * 24 * 4
    assert conv.backward_calls == 1 and conv.backward_s > 0
