"""nn.utils (gradient clipping, equal to torch.nn.utils on the same gradients) and
nn.summary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minigrad import Tensor, models, nn
from minigrad.nn.utils import clip_grad_norm_, clip_grad_value_

SHAPES = [(3, 4), (5,), (2, 3, 2)]


def _params(scale, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    params = [nn.Parameter(np.zeros(s), dtype=dtype) for s in SHAPES]
    for p in params:
        p.grad = (scale * rng.standard_normal(p.shape)).astype(dtype)
    return params


def _torch_params(params):
    torch = pytest.importorskip("torch")
    out = []
    for p in params:
        t = torch.zeros(p.shape, dtype=getattr(torch, str(p.dtype)), requires_grad=True)
        t.grad = torch.from_numpy(p.grad.copy())
        out.append(t)
    return out


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, math.inf, "inf"])
@pytest.mark.parametrize("scale, max_norm", [(1.0, 0.5), (0.01, 10.0), (5.0, 1.0)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_clip_grad_norm_equals_torch(norm_type, scale, max_norm, dtype):
    torch = pytest.importorskip("torch")
    params = _params(scale, dtype)
    theirs = _torch_params(params)
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert isinstance(total, float)
    np.testing.assert_allclose(total, expected.item(), rtol=tol)
    for p, t in zip(params, theirs):
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=tol, atol=1e-30)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_clipped_gradients_have_the_max_norm(norm_type):
    params = _params(10.0)
    before = [p.grad for p in params]
    total = clip_grad_norm_(iter(params), 1.0, norm_type)
    flat = np.concatenate([p.grad.ravel() for p in params])
    assert total > 1.0
    np.testing.assert_allclose(np.linalg.norm(flat, norm_type), 1.0, rtol=1e-5)
    flat_before = np.concatenate([g.ravel() for g in before])
    np.testing.assert_allclose(flat * total, flat_before, rtol=1e-5)  # the direction is kept
    assert all(p.grad is not g for p, g in zip(params, before))  # new arrays


def test_small_gradients_are_left_alone_and_missing_ones_skipped():
    params = _params(1e-3)
    params.append(nn.Parameter(np.zeros(2)))  # no grad
    before = [p.grad.copy() for p in params[:3]]
    total = clip_grad_norm_(params, 1.0)
    np.testing.assert_allclose(total, np.linalg.norm(np.concatenate([g.ravel() for g in before])))
    for p, g in zip(params, before):
        np.testing.assert_allclose(p.grad, g, rtol=1e-5)
    assert params[3].grad is None
    assert clip_grad_norm_([nn.Parameter(np.zeros(2))], 1.0) == 0.0


def test_shared_gradient_arrays_are_scaled_once():
    a, b = nn.Parameter(np.zeros(2), dtype=np.float64), nn.Parameter(np.zeros(2),
                                                                     dtype=np.float64)
    a.grad = b.grad = np.array([3.0, 4.0])
    clip_grad_norm_([a, b], 1.0)
    np.testing.assert_allclose(a.grad, b.grad)
    np.testing.assert_allclose(np.linalg.norm(np.concatenate([a.grad, b.grad])), 1.0, rtol=1e-5)


def test_nonfinite_norms():
    torch = pytest.importorskip("torch")
    params = _params(1.0)
    params[1].grad[2] = np.inf
    theirs = _torch_params(params)
    with pytest.raises(RuntimeError, match=r"clip_grad_norm_: the total norm of order 2.0 .* "
                                           r"is inf"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    total = clip_grad_norm_(params, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert total == expected.item() == math.inf
    for p, t in zip(params, theirs):
        np.testing.assert_array_equal(np.isnan(p.grad), np.isnan(t.grad.numpy()))


@pytest.mark.parametrize("clip_value", [0.1, 1.0, 5.0])
def test_clip_grad_value_equals_torch(clip_value):
    torch = pytest.importorskip("torch")
    params = _params(2.0)
    theirs = _torch_params(params)
    assert clip_grad_value_(params, clip_value) is None
    torch.nn.utils.clip_grad_value_(theirs, clip_value)
    for p, t in zip(params, theirs):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())
        assert np.abs(p.grad).max() <= clip_value


@pytest.mark.parametrize("call, error, message", [
    (lambda: clip_grad_norm_([], 0.0), ValueError, "clip_grad_norm_: max_norm must be positive"),
    (lambda: clip_grad_norm_([], 1.0, norm_type=-1), ValueError, "norm_type must be positive"),
    (lambda: clip_grad_norm_([np.zeros(2)], 1.0), TypeError,
     r"parameters\[0\] is a ndarray, expected a Parameter"),
    (lambda: clip_grad_value_([], "1"), TypeError, "clip_grad_value_: clip_value must be a "
                                                   "number"),
])
def test_clipping_mistakes_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_clipping_in_a_training_step():
    nn.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    (net(Tensor(np.ones((3, 4)) * 100)) ** 2).sum().backward()
    total = nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    after = math.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum())
                          for p in net.parameters()))
    assert total > 1.0 and after == pytest.approx(1.0, rel=1e-5)


# ----------------------------------------------------------------------------------------------
# summary


def test_summary_of_simple_conv_net(capsys):
    nn.manual_seed(0)
    net = models.SimpleConvNet()
    info = nn.summary(net, (2, 1, 28, 28))
    printed = capsys.readouterr().out
    assert printed.strip() == str(info).strip()
    rows = [(r.name, r.type, r.output_shape, r.num_params, r.depth) for r in info.rows]
    assert rows == [
        ("", "SimpleConvNet", (2, 10), 0, 0),
        ("conv1", "Conv2d", (2, 30, 24, 24), 30 * 25 + 30, 1),
        ("relu1", "ReLU", (2, 30, 24, 24), 0, 1),
        ("pool1", "MaxPool2d", (2, 30, 12, 12), 0, 1),
        ("flatten", "Flatten", (2, 4320), 0, 1),
        ("affine1", "Linear", (2, 100), 4320 * 100 + 100, 1),
        ("relu2", "ReLU", (2, 100), 0, 1),
        ("affine2", "Linear", (2, 10), 100 * 10 + 10, 1),
    ]
    assert sum(r.num_params for r in info.rows) == info.total_params == net.num_parameters()
    assert info.trainable_params == net.num_parameters() and info.non_trainable_params == 0
    assert "Total params: 433,890" in printed and "affine1 (Linear)" in printed


def test_summary_of_a_batchnorm_cnn():
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    running = net[1].running_mean.copy()
    info = nn.summary(net, (3, 1, 28, 28), verbose=False)
    rows = [(r.name, r.type, r.output_shape, r.num_params) for r in info.rows[1:]]
    assert rows == [
        ("0", "Conv2d", (3, 8, 28, 28), 8 * 9 + 8), ("1", "BatchNorm2d", (3, 8, 28, 28), 16),
        ("2", "ReLU", (3, 8, 28, 28), 0), ("3", "MaxPool2d", (3, 8, 14, 14), 0),
        ("4", "Conv2d", (3, 16, 14, 14), 16 * 8 * 9 + 16),
        ("5", "BatchNorm2d", (3, 16, 14, 14), 32),
        ("6", "ReLU", (3, 16, 14, 14), 0), ("7", "MaxPool2d", (3, 16, 7, 7), 0),
        ("8", "Flatten", (3, 784), 0), ("9", "Linear", (3, 32), 784 * 32 + 32),
        ("10", "BatchNorm1d", (3, 32), 64), ("11", "ReLU", (3, 32), 0),
        ("12", "Linear", (3, 10), 32 * 10 + 10)]
    assert info.total_params == net.num_parameters() == sum(r[3] for r in rows)
    # running mean and variance of each BatchNorm, and its num_batches_tracked
    assert info.total_buffers == 2 * (8 + 16 + 32) + 3
    np.testing.assert_array_equal(net[1].running_mean, running)  # eval: statistics untouched
    assert int(net[1].num_batches_tracked) == 0


def test_summary_counts_frozen_parameters_and_buffers_and_restores_the_model():
    class WithBuffer(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)
            self.drop = nn.Dropout(0.5)
            self.register_buffer("stats", np.zeros(7))
            self.seen_training = []

        def forward(self, x):
            self.seen_training.append(self.drop.training)
            return self.drop(self.fc(x))

    net = WithBuffer()
    net.fc.requires_grad_(False)
    hooks_before = dict(net.fc._forward_hooks)
    info = nn.summary(net, (4, 3), dtype=np.float64, verbose=False)
    assert net.seen_training == [False]  # the pass ran in eval mode
    assert net.training and net.drop.training  # and the mode came back
    assert net.fc._forward_hooks == hooks_before and net._forward_pre_hooks == {}
    assert info.total_params == 8 and info.trainable_params == 0
    assert info.non_trainable_params == 8 and info.total_buffers == 7
    assert "(8)" in str(info)  # frozen counts in parentheses
    assert all(p.grad is None for p in net.parameters())


def test_summary_lists_a_module_called_twice_and_nested_depths():
    block = nn.Linear(4, 4)
    net = nn.Sequential(block, nn.Sequential(nn.ReLU(), block))
    info = nn.summary(net, (1, 4), verbose=False)
    assert [(r.name, r.depth) for r in info.rows] == [("", 0), ("0", 1), ("1", 1),
                                                      ("1.0", 2), ("0", 1)]
    assert info.total_params == 20


def test_summary_removes_hooks_when_forward_fails():
    net = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="input has 5 features"):
        nn.summary(net, (1, 5), verbose=False)
    assert net[0]._forward_hooks == {} and net[0]._forward_pre_hooks == {}


@pytest.mark.parametrize("model, shape, error, message", [
    (nn.ReLU(), (0, 3), ValueError, "input_shape must be a tuple of positive sizes"),
    (nn.ReLU(), 3, ValueError, "input_shape must be a tuple"),
    (lambda x: x, (1, 3), TypeError, "summary: expected a Module, got function"),
])
def test_summary_mistakes_are_named(model, shape, error, message):
    with pytest.raises(error, match=message):
        nn.summary(model, shape, verbose=False)
