"""nn as a package, buffers and forward hooks."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import minigrad
from minigrad import Tensor, nn

# ----------------------------------------------------------------------------------------------
# the package


PUBLIC = ["Parameter", "Module", "Sequential", "ModuleList", "StateDictError",
          "IncompatibleKeys", "RemovableHandle", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d",
          "ReLU", "Sigmoid", "Tanh", "Flatten", "Dropout", "manual_seed", "default_rng",
          "init_std"]


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_is_reached_from_the_package(name):
    obj = getattr(nn, name)
    assert name in nn.__all__
    assert getattr(importlib.import_module("minigrad.nn"), name) is obj
    namespace: dict = {}
    exec(f"from minigrad.nn import {name}", namespace)
    assert namespace[name] is obj


@pytest.mark.parametrize("submodule, names", [
    ("module", ["Parameter", "Module", "ModuleList", "Sequential"]),
    ("layers", ["Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "Dropout"]),
    ("activation", ["ReLU", "Sigmoid", "Tanh"]),
    ("init", ["manual_seed", "default_rng", "init_std"]),
])
def test_submodules_hold_the_names(submodule, names):
    module = importlib.import_module(f"minigrad.nn.{submodule}")
    for name in names:
        assert getattr(module, name) is getattr(nn, name)


def test_manual_seed_reaches_the_layers_in_another_file():
    nn.manual_seed(3)
    a = nn.Conv2d(2, 3, 3).weight.data
    nn.manual_seed(3)
    b = nn.Conv2d(2, 3, 3).weight.data
    assert np.array_equal(a, b)
    assert nn.default_rng() is nn.init.default_rng()


# ----------------------------------------------------------------------------------------------
# buffers


class Counter(nn.Module):
    """A layer with a learned weight, a persistent float buffer, an int buffer and a transient
    buffer."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(np.ones(3))
        self.register_buffer("running_mean", np.zeros(3, np.float32))
        self.register_buffer("count", np.zeros((), np.int64))
        self.register_buffer("scratch", np.ones(2, np.float32), persistent=False)

    def forward(self, x):
        self.running_mean[...] = 0.9 * self.running_mean + 0.1 * x.data.mean(axis=0)
        self.count += 1
        return x * self.weight


class Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Counter()
        self.fc = nn.Linear(3, 3)


def test_buffers_are_attributes_in_the_state_dict_but_not_parameters():
    net = Holder()
    assert isinstance(net.inner.running_mean, np.ndarray)
    assert [name for name, _ in net.named_parameters()] == ["inner.weight", "fc.weight",
                                                            "fc.bias"]
    assert [name for name, _ in net.named_buffers()] == ["inner.running_mean", "inner.count",
                                                         "inner.scratch"]
    assert all(b is net.inner._buffers[n.split(".")[1]]
               for n, b in net.named_buffers())
    assert list(net.state_dict()) == ["inner.weight", "inner.running_mean", "inner.count",
                                      "fc.weight", "fc.bias"]
    assert [name for name, _ in net.named_buffers(recurse=False)] == []
    assert len(list(net.inner.buffers())) == 3


def test_buffers_round_trip_through_the_state_dict_and_io(tmp_path):
    net = Holder()
    for _ in range(3):
        net.inner(Tensor(np.random.default_rng(0).standard_normal((4, 3))))
    state = net.state_dict()
    assert state["inner.count"] == 3 and state["inner.count"].dtype == np.int64
    minigrad.save(state, tmp_path / "net.npz")
    other = Holder()
    other.load_state_dict(minigrad.load(tmp_path / "net.npz"))
    assert np.array_equal(other.inner.running_mean, net.inner.running_mean)
    assert other.inner.count == 3 and other.inner.count.dtype == np.int64
    assert other.inner.running_mean.dtype == np.float32


def test_state_dict_copies_buffers():
    net = Counter()
    state = net.state_dict()
    state["running_mean"][...] = 5
    assert not net.running_mean.any()


def test_load_state_dict_checks_buffers_like_parameters_and_loads_all_or_nothing():
    net = Holder()
    state = net.state_dict()
    del state["inner.running_mean"]
    with pytest.raises(nn.StateDictError, match=r"missing key 'inner.running_mean' "
                                                r"\(buffer shape \(3,\)\)"):
        net.load_state_dict(state)
    state = net.state_dict()
    state["inner.scratch"] = np.zeros(2)  # not persistent: not part of the state
    with pytest.raises(nn.StateDictError, match="unexpected key 'inner.scratch'"):
        net.load_state_dict(state)
    state = net.state_dict()
    state["fc.weight"] = state["fc.weight"] + 1
    state["inner.running_mean"] = np.zeros(4)
    before = net.fc.weight.data.copy()
    with pytest.raises(ValueError, match=r"'inner.running_mean' has shape \(3,\) in the model "
                                         r"but \(4,\)"):
        net.load_state_dict(state)
    assert np.array_equal(net.fc.weight.data, before)  # nothing was changed
    missing, unexpected = net.load_state_dict({"inner.count": np.array(7)}, strict=False)
    assert net.inner.count == 7 and "inner.running_mean" in missing and unexpected == []


def test_assigning_to_a_buffer_replaces_it_and_keeps_it_registered():
    net = Counter()
    net.running_mean = np.full(3, 2.0, np.float32)
    assert net.state_dict()["running_mean"].tolist() == [2.0, 2.0, 2.0]
    net.running_mean = None
    assert "running_mean" not in net.state_dict()
    assert "running_mean" in net._buffers
    with pytest.raises(TypeError, match="buffer 'count' must be a NumPy array"):
        net.count = 3
    net.count = nn.Parameter(np.zeros(1))  # a parameter now, no longer a buffer
    assert "count" not in net._buffers
    assert [n for n, _ in net.named_parameters()] == ["weight", "count"]
    del net.scratch
    assert [n for n, _ in net.named_buffers()] == []


@pytest.mark.parametrize("name, value, error, message", [
    ("a.b", np.zeros(1), KeyError, "contain no '.'"),
    ("", np.zeros(1), KeyError, "non-empty"),
    (3, np.zeros(1), TypeError, "must be a str"),
    ("weight", np.zeros(1), KeyError, "already a parameter"),
    ("forward", np.zeros(1), KeyError, "already an attribute"),
    ("x", [1.0, 2.0], TypeError, "must be a NumPy array or None, got list"),
    ("x", Tensor([1.0]), TypeError, "give its .data"),
])
def test_register_buffer_mistakes_are_explained(name, value, error, message):
    with pytest.raises(error, match=message):
        Counter().register_buffer(name, value)


def test_to_converts_floating_buffers_only():
    net = Holder().to(np.float64)
    assert net.inner.running_mean.dtype == np.float64
    assert net.inner.scratch.dtype == np.float64
    assert net.inner.count.dtype == np.int64
    assert net.inner._buffers["running_mean"] is net.inner.running_mean
    net.inner(Tensor(np.ones((2, 3))))
    assert net.state_dict()["inner.running_mean"].dtype == np.float64


def test_a_buffer_updated_in_forward_is_saved():
    net = Counter()
    net(Tensor(np.full((2, 3), 10.0)))
    np.testing.assert_allclose(net.state_dict()["running_mean"], np.full(3, 1.0))
    assert net.state_dict()["count"] == 1


# ----------------------------------------------------------------------------------------------
# forward hooks


def test_forward_hook_sees_module_inputs_and_output_and_may_replace_it():
    layer = nn.Linear(3, 2)
    seen = []

    def record(module, inputs, output):
        seen.append((module, inputs, output))

    h1 = layer.register_forward_hook(record)
    h2 = layer.register_forward_hook(lambda m, inputs, y: y * 2)
    h3 = layer.register_forward_hook(record)  # sees the replacement
    x = Tensor(np.ones((4, 3)))
    y = layer(x)
    (m1, in1, out1), (m3, in3, out3) = seen
    assert m1 is layer and in1 == (x,) and in3 == (x,)
    np.testing.assert_allclose(y.data, 2 * out1.data)
    assert out3 is y
    for h in (h1, h2, h3):
        h.remove()
    h1.remove()  # twice is harmless
    seen.clear()
    np.testing.assert_allclose(layer(x).data, out1.data)
    assert seen == []


def test_replaced_output_carries_gradients():
    layer = nn.Linear(3, 2, dtype=np.float64)
    layer.register_forward_hook(lambda m, inputs, y: y * 3.0)
    x = Tensor(np.ones((1, 3)))
    layer(x).sum().backward()
    np.testing.assert_allclose(layer.bias.grad, [3.0, 3.0])


def test_forward_pre_hook_may_replace_the_inputs():
    net = nn.Sequential(nn.ReLU())
    seen = []
    net[0].register_forward_pre_hook(lambda m, inputs: seen.append(inputs))
    handle = net[0].register_forward_pre_hook(lambda m, inputs: -inputs[0])
    net[0].register_forward_pre_hook(lambda m, inputs: seen.append(inputs))
    x = Tensor([1.0, -2.0])
    np.testing.assert_array_equal(net(x).data, [0.0, 2.0])
    assert seen[0] == (x,)
    assert isinstance(seen[1], tuple) and len(seen[1]) == 1
    np.testing.assert_array_equal(seen[1][0].data, [-1.0, 2.0])
    handle.remove()
    np.testing.assert_array_equal(net(x).data, [1.0, 0.0])


def test_pre_hook_returning_a_tuple_replaces_all_arguments():
    class Add(nn.Module):
        def forward(self, a, b):
            return a + b

    add = Add()
    add.register_forward_pre_hook(lambda m, inputs: (inputs[0], inputs[1] * 10))
    assert add(Tensor([1.0]), Tensor([2.0])).item() == 21.0


def test_hook_handle_is_a_context_manager_and_hooks_run_inside_the_scope():
    layer = nn.Tanh()
    layer.name = "act"
    scopes = []
    from minigrad.function import _module_scope
    with layer.register_forward_hook(lambda m, i, y: scopes.append(_module_scope.stack[-1])):
        layer(Tensor([0.5]))
    layer(Tensor([0.5]))
    assert scopes == [layer]
    assert layer._forward_hooks == {}


def test_hooks_on_submodules_see_every_layer_in_order():
    nn.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    shapes = []
    handles = [m.register_forward_hook(lambda m, i, y: shapes.append((m.name, y.shape)))
               for m in net.modules()]
    net(Tensor(np.ones((5, 4))))
    assert shapes == [("0", (5, 3)), ("1", (5, 3)), ("2", (5, 2)), ("", (5, 2))]
    for h in handles:
        h.remove()


def test_hook_must_be_callable():
    with pytest.raises(TypeError, match="register_forward_hook: the hook must be callable"):
        nn.ReLU().register_forward_hook(3)
    with pytest.raises(TypeError, match="register_forward_pre_hook: the hook must be callable"):
        nn.ReLU().register_forward_pre_hook(None)


# ----------------------------------------------------------------------------------------------
# apply, freezing, zero_grad


def test_apply_visits_children_first_then_self_and_returns_self():
    net = nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 1))
    order = []
    assert net.apply(lambda m: order.append(m.name)) is net
    assert order == ["0.0", "0.1", "0", "1", ""]


def _frozen_net():
    nn.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert net[0].requires_grad_(False) is net[0]
    return net


@pytest.mark.parametrize("make_optimizer", [
    lambda ps: minigrad.optim.SGD(ps, lr=0.1, weight_decay=0.1),
    lambda ps: minigrad.optim.Momentum(ps, lr=0.1),
    lambda ps: minigrad.optim.Adam(ps, lr=0.1),
    lambda ps: minigrad.optim.AdamW(ps, lr=0.1, weight_decay=0.5),
])
def test_frozen_parameters_get_no_grad_and_optimisers_leave_them(make_optimizer):
    net = _frozen_net()
    frozen = [p.data.copy() for p in net[0].parameters()]
    trained = [p.data.copy() for p in net[2].parameters()]
    opt = make_optimizer(net.parameters())
    for _ in range(2):
        opt.zero_grad()
        (net(Tensor(np.ones((5, 3)))) ** 2).sum().backward()
        opt.step()
    assert all(p.grad is None for p in net[0].parameters())
    assert all(p.grad is not None for p in net[2].parameters())
    assert all(np.array_equal(p.data, a) for p, a in zip(net[0].parameters(), frozen))
    assert not any(np.array_equal(p.data, a) for p, a in zip(net[2].parameters(), trained))


def test_unfreezing_brings_gradients_back():
    net = _frozen_net().requires_grad_()
    net(Tensor(np.ones((1, 3)))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    assert nn.Parameter([1.0], requires_grad=False).requires_grad is False


@pytest.mark.parametrize("owner", ["module", "optimizer"])
def test_zero_grad_sets_to_none_or_to_zeros(owner):
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    net[1].requires_grad_(False)
    net(Tensor(np.ones((1, 3)))).sum().backward()
    target = net if owner == "module" else minigrad.optim.SGD(net.parameters(), lr=0.1)
    target.zero_grad(set_to_none=False)
    assert all(p.grad is not None and p.grad.shape == p.shape and not p.grad.any()
               for p in net[0].parameters())
    assert all(p.grad is None for p in net[1].parameters())  # none stays none
    target.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_load_state_dict_counts_as_an_in_place_change():
    layer = nn.Linear(2, 2, dtype=np.float64)
    y = layer(Tensor(np.ones((1, 2)))).sum()
    layer.load_state_dict(layer.state_dict())
    with pytest.raises(RuntimeError):
        y.backward()


def test_optimisers_accept_frozen_parameters_but_not_constants_or_results():
    frozen = nn.Parameter(np.ones(2), requires_grad=False)
    minigrad.optim.SGD([frozen], lr=0.1)
    with pytest.raises(ValueError, match=r"SGD: params\[0\] \(shape \(2,\)\) does not require "
                                         r"grad"):
        minigrad.optim.SGD([Tensor(np.ones(2))], lr=0.1)
    w = nn.Parameter(np.ones(2))
    with pytest.raises(ValueError, match=r"params\[0\] \(shape \(2,\)\) is the result of an op"):
        minigrad.optim.SGD([w * 2], lr=0.1)


# ----------------------------------------------------------------------------------------------
# ModuleDict, add_module, register_parameter, get_submodule / get_parameter / get_buffer


def test_module_dict_registers_by_key_and_keeps_order():
    heads = nn.ModuleDict([("cls", nn.Linear(4, 3)), ("box", nn.Linear(4, 2))])
    net = nn.Sequential()
    net.add_module("heads", heads)
    assert [n for n, _ in net.named_parameters()] == [
        "heads.cls.weight", "heads.cls.bias", "heads.box.weight", "heads.box.bias"]
    assert heads["box"].weight.name == "heads.box.weight"
    heads.update({"extra": nn.ReLU()})
    assert heads.keys() == ["cls", "box", "extra"] and len(heads) == 3
    assert isinstance(heads.pop("extra"), nn.ReLU) and "extra" not in heads
    assert [k for k in heads] == ["cls", "box"]
    assert [type(m).__name__ for m in heads.values()] == ["Linear", "Linear"]
    heads.clear()
    assert len(heads) == 0 and list(net.parameters()) == []


@pytest.mark.parametrize("action, error, message", [
    (lambda d: d["missing"], KeyError, r"no module 'missing'; the keys are \['a'\]"),
    (lambda d: d.__setitem__("keys", nn.ReLU()), KeyError, "would hide ModuleDict.keys"),
    (lambda d: d.__setitem__("a.b", nn.ReLU()), KeyError, "contain no '.'"),
    (lambda d: d.__setitem__(3, nn.ReLU()), TypeError, "keys must be str"),
    (lambda d: d.__setitem__("b", 3), TypeError, "values must be Modules, got int for 'b'"),
    (lambda d: d(1), NotImplementedError, "ModuleDict has no forward"),
])
def test_module_dict_mistakes_are_explained(action, error, message):
    with pytest.raises(error, match=message):
        action(nn.ModuleDict({"a": nn.ReLU()}))


def test_add_module_and_register_parameter_make_names_at_run_time():
    m = nn.Module()
    for i in range(2):
        m.add_module(f"layer{i}", nn.Linear(2, 2))
    m.register_module("act", nn.ReLU())
    m.register_parameter("scale", nn.Parameter(np.ones(2)))
    m.register_parameter("shift", None)
    assert [n for n, _ in m.named_children()] == ["layer0", "layer1", "act"]
    assert [n for n, _ in m.named_parameters()] == ["scale", "layer0.weight", "layer0.bias",
                                                    "layer1.weight", "layer1.bias"]
    assert m.shift is None
    with pytest.raises(TypeError, match="register_parameter: 'w' must be a Parameter or None, "
                                        "got ndarray"):
        m.register_parameter("w", np.ones(2))
    with pytest.raises(TypeError, match="add_module: 'x' must be a Module or None, got int"):
        m.add_module("x", 3)
    with pytest.raises(KeyError, match="'forward' is already an attribute"):
        m.add_module("forward", nn.ReLU())


def test_get_submodule_parameter_and_buffer_by_dotted_path():
    net = nn.Sequential(Holder(), nn.Sequential(nn.Linear(3, 2)))
    assert net.get_submodule("") is net
    assert net.get_submodule("1.0") is net[1][0]
    assert net.get_parameter("1.0.bias") is net[1][0].bias
    assert net.get_parameter("0.inner.weight") is net[0].inner.weight
    assert net.get_buffer("0.inner.running_mean") is net[0].inner.running_mean
    with pytest.raises(AttributeError, match=r"get_submodule: 1 has no sub-module '2' \(looking "
                                             r"for '1.2'\)"):
        net.get_parameter("1.2.weight")
    with pytest.raises(AttributeError, match=r"'1.0' has no parameter 'scale'; it has "
                                             r"\['weight', 'bias'\]"):
        net.get_parameter("1.0.scale")
    with pytest.raises(AttributeError, match="has no buffer 'weight'"):
        net.get_buffer("0.inner.weight")


def test_loading_a_buffer_that_a_live_graph_holds_replaces_it():
    class Shift(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("shift", np.ones(2))

        def forward(self, x):
            return x * self.shift

    m = Shift()
    x = Tensor(np.full(2, 3.0), requires_grad=True)
    y = m(x).sum()   # the op holds m.shift read-only while y's graph lives
    old = m.shift
    assert not old.flags.writeable
    m.load_state_dict({"shift": np.array([5.0, 7.0])})
    assert m.shift is not old and m.shift.tolist() == [5.0, 7.0]
    assert m.state_dict()["shift"].tolist() == [5.0, 7.0]
    y.backward()
    assert x.grad.tolist() == [1.0, 1.0]   # the recorded graph kept the values it saw
    m.load_state_dict({"shift": np.array([1.0, 2.0])})   # nothing holds it now: in place
    assert m.shift.tolist() == [1.0, 2.0]
