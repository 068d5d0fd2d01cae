"""SimpleConvNet: the textbook's layers and names, shapes, gradients, predict and accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from minigrad import Tensor, nn
from minigrad import functional as F
from minigrad.models import SimpleConvNet
from minigrad.testing import numerical_grad


def test_layers_and_parameter_names_follow_the_textbook():
    net = SimpleConvNet()
    assert [name for name, _ in net.named_children()] == [
        "conv1", "relu1", "pool1", "flatten", "affine1", "relu2", "affine2"]
    assert {name: p.shape for name, p in net.named_parameters()} == {
        "conv1.weight": (30, 1, 5, 5), "conv1.bias": (30,),
        "affine1.weight": (4320, 100), "affine1.bias": (100,),
        "affine2.weight": (100, 10), "affine2.bias": (10,)}
    assert all(p.dtype == np.float32 for p in net.parameters())
    assert net.num_parameters() == 433_890


@pytest.mark.parametrize("kwargs, affine_in", [
    ({}, 30 * 12 * 12),
    ({"padding": 2}, 30 * 14 * 14),
    ({"stride": 2, "filter_num": 8}, 8 * 6 * 6),  # 28 → 12 → 6
    ({"input_dim": (3, 16, 16), "filter_size": 3, "hidden_size": 20, "output_size": 4},
     30 * 7 * 7),
])
def test_settings_size_the_affine_layer(kwargs, affine_in):
    net = SimpleConvNet(**kwargs)
    assert net.affine1.in_features == affine_in
    C, H, W = net.input_dim
    y = net(np.zeros((2, C, H, W), np.float32))
    assert y.shape == (2, kwargs.get("output_size", 10)) and y.dtype == np.float32


def test_forward_is_the_layers_in_order():
    nn.manual_seed(0)
    net = SimpleConvNet()
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    h = F.relu(F.conv2d(x, net.conv1.weight, net.conv1.bias))
    h = F.max_pool2d(h, 2, stride=2)
    h = F.relu(F.affine(F.flatten(h), net.affine1.weight, net.affine1.bias))
    expected = F.affine(h, net.affine2.weight, net.affine2.bias)
    np.testing.assert_array_equal(net(x).data, expected.data)
    t = np.array([1, 2, 3])
    np.testing.assert_array_equal(net.loss(x, t).data,
                                  F.softmax_cross_entropy(expected, t).data)


def test_parameter_gradients_match_finite_differences():
    nn.manual_seed(1)
    net = SimpleConvNet(input_dim=(2, 7, 7), filter_num=3, filter_size=3, padding=1,
                        hidden_size=5, output_size=4).to(np.float64)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 2, 7, 7))
    t = np.array([0, 3, 1])
    net.loss(x, t).backward()
    for name, p in net.named_parameters():
        numeric = numerical_grad(lambda _: float(net.loss(x, t).data), p.data)
        np.testing.assert_allclose(p.grad, numeric, rtol=1e-5, atol=1e-8, err_msg=name)


def test_predict_and_accuracy_work_in_batches_without_a_graph():
    nn.manual_seed(2)
    net = SimpleConvNet(input_dim=(1, 12, 12), filter_num=4, hidden_size=8)
    x = np.random.default_rng(3).random((25, 1, 12, 12), dtype=np.float32)
    logits = net.predict(x, batch_size=7)
    assert isinstance(logits, np.ndarray) and logits.shape == (25, 10)
    np.testing.assert_allclose(logits, net(x).data, rtol=1e-5, atol=1e-6)
    assert net(Tensor(x)).requires_grad
    t = logits.argmax(axis=1).copy()
    t[:5] = (t[:5] + 1) % 10  # five of 25 wrong
    assert net.accuracy(x, t, batch_size=4) == pytest.approx(0.8)
    assert net.accuracy(x, np.eye(10, dtype=np.float32)[t]) == pytest.approx(0.8)


@pytest.mark.parametrize("call, message", [
    (lambda net: net(np.zeros((2, 1, 27, 28), np.float32)),
     r"SimpleConvNet: expected images \(N, 1, 28, 28\), got x.shape=\(2, 1, 27, 28\)"),
    (lambda net: net(np.zeros((2, 784), np.float32)), r"got x.shape=\(2, 784\)"),
    (lambda net: net.accuracy(np.zeros((3, 1, 28, 28), np.float32), np.zeros(2, int)),
     "3 images but 2 labels"),
])
def test_bad_inputs_are_explained(call, message):
    with pytest.raises(ValueError, match=message):
        call(SimpleConvNet(hidden_size=4))


def test_an_input_too_small_for_the_network_is_refused():
    with pytest.raises(ValueError, match=r"leaves 1×1 pixels of a 5×5 input"):
        SimpleConvNet(input_dim=(1, 5, 5))
