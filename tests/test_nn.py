"""nn: registration and names, scopes, modes, state dicts, layers, initialisation, errors."""

from __future__ import annotations

import numpy as np
import pytest

import minigrad
from minigrad import Tensor, nn
from minigrad import functional as F
from minigrad.function import _module_scope
from minigrad.testing import numerical_grad


class Block(nn.Module):
    def __init__(self, d_in=3, d_out=4):
        super().__init__()
        self.fc = nn.Linear(d_in, d_out)
        self.act = nn.Tanh()

    def forward(self, x):
        return self.act(self.fc(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = Block(3, 4)
        self.layers = nn.ModuleList([Block(4, 4), Block(4, 2)])
        self.scale = nn.Parameter(np.ones(2))

    def forward(self, x):
        x = self.first(x)
        for layer in self.layers:
            x = layer(x)
        return x * self.scale


def check_names(root):
    """Every module's and parameter's .name is its dotted path from ``root``."""
    for name, m in root.named_modules():
        assert m.name == name, (m.name, name)
    for name, p in root.named_parameters():
        assert p.name == name, (p.name, name)


# --------------------------------------------------------------------------- parameters

def test_parameter_is_float32_and_requires_grad():
    p = nn.Parameter(np.arange(6.0).reshape(2, 3))
    assert isinstance(p, Tensor) and p.requires_grad and p.dtype == np.float32
    assert nn.Parameter([1.0], dtype=np.float64).dtype == np.float64
    source = np.zeros(2, np.float32)
    assert nn.Parameter(source).data is not source  # a copy
    assert repr(nn.Parameter([1.0, 2.0], name="w")) == \
        "Parameter([1., 2.], requires_grad=True, name='w')"


# --------------------------------------------------------------------------- registration, names

def test_named_parameters_are_dotted_and_in_order():
    net = Net()
    assert [name for name, _ in net.named_parameters()] == [
        "scale", "first.fc.weight", "first.fc.bias", "layers.0.fc.weight", "layers.0.fc.bias",
        "layers.1.fc.weight", "layers.1.fc.bias"]
    assert [name for name, _ in net.named_modules()] == [
        "", "first", "first.fc", "first.act", "layers", "layers.0", "layers.0.fc",
        "layers.0.act", "layers.1", "layers.1.fc", "layers.1.act"]
    assert list(net.parameters()) == [p for _, p in net.named_parameters()]
    assert [name for name, _ in net.named_children()] == ["first", "layers"]
    check_names(net)


def test_attaching_a_built_subtree_renames_it():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), Block(3, 2))
    assert seq[2].fc.weight.name == "2.fc.weight"
    parent = nn.Module()
    parent.features = seq
    assert seq.name == "features" and seq[2].fc.weight.name == "features.2.fc.weight"
    root = nn.Module()
    root.body = parent
    assert seq[0].bias.name == "body.features.0.bias"
    check_names(root)
    # Re-attaching elsewhere renames again; the last attachment gives the name.
    other = nn.Module()
    other.encoder = seq
    assert seq[2].fc.name == "encoder.2.fc"


def test_module_list_append_insert_setitem_keep_names():
    layers = nn.ModuleList()
    holder = nn.Module()
    holder.layers = layers
    layers.append(nn.Linear(1, 2))
    layers.append(nn.Linear(2, 3))
    layers.insert(0, nn.Linear(5, 1))
    assert [m.in_features for m in layers] == [5, 1, 2]
    assert [name for name, _ in holder.named_parameters()][::2] == [
        "layers.0.weight", "layers.1.weight", "layers.2.weight"]
    layers[1] = nn.Linear(7, 2)
    del layers[0]
    assert len(layers) == 2 and layers[0].in_features == 7 and layers[-1].in_features == 2
    assert not hasattr(layers, "2")
    check_names(holder)
    with pytest.raises(TypeError, match="ModuleList: items must be Modules, got int"):
        layers.append(3)
    with pytest.raises(IndexError, match="index 5 is out of range for 2 modules"):
        layers[5]


def test_sequential_indexing_and_dict_names():
    seq = nn.Sequential({"conv": nn.Conv2d(1, 2, 3), "act": nn.ReLU(), "flat": nn.Flatten()})
    assert len(seq) == 3 and isinstance(seq["act"], nn.ReLU) and seq[0] is seq["conv"]
    assert [type(m).__name__ for m in seq] == ["Conv2d", "ReLU", "Flatten"]
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and list(head._modules) == ["conv", "act"]
    assert seq.conv.weight.name == "conv.weight"
    x = Tensor(np.ones((1, 1, 5, 5), np.float32))
    np.testing.assert_array_equal(head(x).data, seq.act(seq.conv(x)).data)


def test_slices_leave_the_names_alone():
    net = Net()
    net.body = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    rest, tail = net.layers[1:], net.body[1:]
    assert isinstance(rest, nn.ModuleList) and len(rest) == 1 and rest[0] is net.layers[1]
    assert isinstance(tail, nn.Sequential) and tail[1] is net.body[2]
    check_names(net)
    assert net.body[2].weight.name == "body.2.weight"


def test_reassigning_replaces_the_registration():
    m = nn.Module()
    m.w = nn.Parameter([1.0])
    m.w = 3  # no longer a parameter
    assert list(m.named_parameters()) == []
    m.sub = nn.Linear(1, 1)
    del m.sub
    assert list(m.modules()) == [m]


def test_shared_parameters_are_given_once():
    a = nn.Linear(2, 2)
    m = nn.Module()
    m.a, m.b = a, nn.Linear(2, 2)
    m.b.weight = a.weight
    assert len(list(m.parameters())) == 3
    assert "b.weight" in m.state_dict()  # the state dict names every place


def test_registration_mistakes_are_explained():
    class Forgot(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\) first in Forgot"):
        Forgot()

    m = nn.Module()
    with pytest.raises(TypeError, match=r"'layers' is a list of modules.*nn.ModuleList"):
        m.layers = [nn.Linear(1, 1)]
    with pytest.raises(NotImplementedError, match="Module.forward is not written"):
        m(1)


# --------------------------------------------------------------------------- scopes for graphs

def test_ops_record_the_modules_running_them():
    net = Net()
    y = net(Tensor(np.ones((2, 3), np.float32)))
    assert _module_scope == []
    assert y.creator.scope == (net,)  # x * scale, in Net.forward itself
    tanh = y.creator.inputs[0].creator  # the last block's Tanh
    assert tanh.scope == (net, net.layers[1], net.layers[1].act)
    first_op = tanh
    while first_op.inputs[0].creator is not None:
        first_op = first_op.inputs[0].creator
    assert first_op.scope[:3] == (net, net.first, net.first.fc)


def test_scope_is_popped_when_forward_raises():
    with pytest.raises(ValueError):
        nn.Linear(3, 2)(Tensor(np.ones((1, 4), np.float32)))
    assert _module_scope == []


# --------------------------------------------------------------------------- modes and grads

def test_train_eval_propagate_and_steer_dropout():
    net = nn.Sequential(nn.Linear(50, 50), Block(50, 50), nn.Dropout(0.5))
    assert all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    x = Tensor(np.ones((20, 50), np.float32))
    np.testing.assert_array_equal(net(x).data, net(x).data)  # deterministic in eval
    net.train()
    assert all(m.training for m in net.modules())
    drop = nn.Dropout(0.25)
    y = drop(Tensor(np.ones((200, 200), np.float32))).data
    zeros = (y == 0).mean()
    assert 0.2 < zeros < 0.3
    np.testing.assert_allclose(y[y != 0], 1 / 0.75, rtol=1e-6)


def test_zero_grad_clears_every_parameter():
    net = Net()
    (net(Tensor(np.ones((2, 3), np.float32))) ** 2).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


# --------------------------------------------------------------------------- state dicts

def test_state_dict_round_trip_gives_identical_outputs():
    nn.manual_seed(0)
    a = Net()
    nn.manual_seed(1)
    b = Net()
    x = Tensor(np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32))
    assert not np.array_equal(a(x).data, b(x).data)
    state = a.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    b.load_state_dict(state)
    np.testing.assert_array_equal(a(x).data, b(x).data)
    state["first.fc.weight"][...] = 0  # a copy: the model is untouched
    assert a.first.fc.weight.data.any()


def test_load_state_dict_casts_to_the_parameter_dtype(tmp_path):
    lin = nn.Linear(3, 2)
    state = {k: v.astype(np.float64) + 1 for k, v in lin.state_dict().items()}
    weight = lin.weight.data
    lin.load_state_dict(state)
    assert lin.weight.data is weight and weight.dtype == np.float32
    np.testing.assert_allclose(lin.bias.data, 1.0)
    minigrad.io.save(lin.state_dict(), tmp_path / "lin.npz")
    other = nn.Linear(3, 2)
    other.load_state_dict(minigrad.io.load(tmp_path / "lin.npz"))
    np.testing.assert_array_equal(other.weight.data, lin.weight.data)


def test_load_state_dict_errors_name_keys_and_shapes():
    net = Net()
    state = net.state_dict()
    before = net.first.fc.weight.data.copy()
    state["first.fc.weight"] = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"'first.fc.weight' has shape \(3, 4\) in the model "
                                         r"but \(4, 3\) in the state dict"):
        net.load_state_dict(state)
    np.testing.assert_array_equal(net.first.fc.weight.data, before)

    state = net.state_dict()
    del state["scale"]
    state["extra.weight"] = np.zeros(5)
    with pytest.raises(KeyError) as info:
        net.load_state_dict(state)
    assert str(info.value).startswith("Net.load_state_dict: the state dict does not match the "
                                      "model\n  missing key")
    assert "missing key 'scale' (parameter shape (2,))" in str(info.value)
    assert "unexpected key 'extra.weight' (shape (5,))" in str(info.value)
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert missing == ["scale"] and unexpected == ["extra.weight"]


def test_to_float64_for_checks():
    lin = nn.Linear(2, 2).to(np.float64)
    assert all(p.dtype == np.float64 for p in lin.parameters())
    with pytest.raises(TypeError, match="must be floating point, got int64"):
        lin.to(np.int64)


# --------------------------------------------------------------------------- repr

def test_repr_shows_the_tree_and_parameter_shapes():
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Dropout(0.3), nn.Linear(8 * 14 * 14, 10, bias=False))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Conv2d(1, 8, kernel_size=3, stride=1, padding=1)  [weight (8, 1, 3, 3)  "
        "bias (8,)]\n"
        "  (1): ReLU()\n"
        "  (2): MaxPool2d(kernel_size=2, stride=2)\n"
        "  (3): Flatten()\n"
        "  (4): Dropout(p=0.3)\n"
        "  (5): Linear(in_features=1568, out_features=10, bias=False)  [weight (1568, 10)]\n"
        ")")
    text = repr(Net())
    assert "  (layers): ModuleList(\n    (0): Block(\n      (fc): Linear(" in text
    assert text.endswith("  [scale (2,)]\n)")


# --------------------------------------------------------------------------- layers

def test_linear_computes_x_w_plus_b_on_flattened_inputs():
    lin = nn.Linear(12, 5)
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32)
    y = lin(Tensor(x))
    assert y.dtype == np.float32 and y.shape == (4, 5)
    np.testing.assert_allclose(y.data, x.reshape(4, 12) @ lin.weight.data + lin.bias.data,
                               rtol=1e-5, atol=1e-6)


def test_layers_agree_with_functional():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 3, 9, 9)).astype(np.float32))
    conv = nn.Conv2d(3, 4, (3, 2), stride=2, padding=(1, 0))
    np.testing.assert_array_equal(
        conv(x).data, F.conv2d(x, conv.weight, conv.bias, stride=2, padding=(1, 0)).data)
    np.testing.assert_array_equal(nn.MaxPool2d(3, stride=2)(x).data,
                                  F.max_pool2d(x, 3, stride=2).data)
    np.testing.assert_array_equal(nn.AvgPool2d(2)(x).data, F.avg_pool2d(x, 2).data)
    for layer, fn in [(nn.ReLU(), F.relu), (nn.Sigmoid(), F.sigmoid), (nn.Tanh(), F.tanh),
                      (nn.Flatten(), F.flatten)]:
        np.testing.assert_array_equal(layer(x).data, fn(x).data)


def test_parameter_gradients_of_a_small_network_match_finite_differences():
    nn.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.Tanh(),
                        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(3 * 2 * 2, 4), nn.Sigmoid(),
                        nn.Linear(4, 3)).to(np.float64)
    x = np.random.default_rng(4).standard_normal((2, 2, 8, 8))
    r = np.random.default_rng(5).standard_normal((2, 3))

    def loss():
        return (net(Tensor(x)) * r).sum()

    loss().backward()
    for name, p in net.named_parameters():
        numeric = numerical_grad(lambda _: float(loss().data), p.data)
        np.testing.assert_allclose(p.grad, numeric, rtol=1e-5, atol=1e-8, err_msg=name)


# --------------------------------------------------------------------------- initialisation

@pytest.mark.parametrize("init, std", [("he", np.sqrt(2 / 800)), ("xavier", np.sqrt(1 / 800)),
                                       (0.01, 0.01)])
def test_initial_weights_have_the_documented_spread(init, std):
    lin = nn.Linear(800, 500, init=init)
    w = lin.weight.data
    assert w.dtype == np.float32 and lin.bias.data.dtype == np.float32
    assert abs(w.std() / std - 1) < 0.02 and abs(w.mean()) < 0.05 * std
    assert not lin.bias.data.any()
    conv = nn.Conv2d(32, 64, 5, init=init)  # fan_in = 32·5·5 = 800
    assert abs(conv.weight.data.std() / std - 1) < 0.02


def test_initialisation_is_reproducible():
    a = nn.Linear(5, 5, rng=np.random.default_rng(7)).weight.data
    b = nn.Linear(5, 5, rng=np.random.default_rng(7)).weight.data
    np.testing.assert_array_equal(a, b)
    nn.manual_seed(11)
    c = nn.Conv2d(1, 2, 3).weight.data
    nn.manual_seed(11)
    np.testing.assert_array_equal(c, nn.Conv2d(1, 2, 3).weight.data)
    assert not np.array_equal(c, nn.Conv2d(1, 2, 3).weight.data)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("layer, shape, message", [
    (lambda: nn.Linear(4320, 100), (100, 784),
     r"Linear\(4320, 100\): input has 784 features, expected 4320; x.shape=\(100, 784\)"),
    (lambda: nn.Linear(4, 2), (4,), r"Linear\(4, 2\): input has 1 dimension\(s\)"),
    (lambda: nn.Conv2d(1, 8, 3), (2, 3, 28, 28),
     r"Conv2d\(1, 8, kernel_size=3\): input has 3 channels, expected 1; "
     r"x.shape=\(2, 3, 28, 28\)"),
    (lambda: nn.Conv2d(1, 8, 3), (28, 28), r"Conv2d\(1, 8, kernel_size=3\): expected input "
                                           r"\(N, C, H, W\), got 2 dimension"),
    (lambda: nn.Conv2d(1, 8, 5), (1, 1, 3, 3), r"the padded input \(3, 3\) is smaller than "
                                               r"the kernel \(5, 5\)"),
    (lambda: nn.MaxPool2d(2), (4, 4), r"MaxPool2d\(kernel_size=2\): expected input"),
])
def test_bad_inputs_name_the_layer_and_shapes(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer()(Tensor(np.zeros(shape, np.float32)))


@pytest.mark.parametrize("make, error, message", [
    (lambda: nn.Linear(0, 3), ValueError, "Linear: in_features must be a positive int, got 0"),
    (lambda: nn.Linear(2.5, 3), TypeError, "Linear: in_features must be a positive int"),
    (lambda: nn.Conv2d(1, 2, (3, 3, 3)), TypeError, "Conv2d: kernel_size must be an int or a "
                                                    "pair"),
    (lambda: nn.Conv2d(1, 2, 3, stride=0), ValueError, "Conv2d: stride must be at least 1"),
    (lambda: nn.Conv2d(1, 2, 3, padding=-1), ValueError, "Conv2d: padding must be at least 0"),
    (lambda: nn.Dropout(1.0), ValueError, r"Dropout: p must be a probability in \[0, 1\)"),
    (lambda: nn.Linear(2, 2, init="lecun"), ValueError, "init: expected 'he', 'xavier'"),
    (lambda: nn.Linear(2, 2, init=-1.0), ValueError, "init: a standard deviation must be "
                                                     "positive"),
])
def test_bad_settings_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_manual_seed_also_repeats_dropout_masks():
    x = Tensor(np.ones((10, 10), np.float32))
    nn.manual_seed(5)
    a = nn.Dropout(0.5)(x).data
    nn.manual_seed(5)
    b = nn.Dropout(0.5)(x).data
    np.testing.assert_array_equal(a, b)
    c = nn.Dropout(0.5, rng=np.random.default_rng(1))(x).data
    d = nn.Dropout(0.5, rng=np.random.default_rng(1))(x).data
    np.testing.assert_array_equal(c, d)
    assert not np.array_equal(a, c)
