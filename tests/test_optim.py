"""Optimisers: hand-computed updates, agreement with torch.optim (every option, parameter groups),
resuming, validation of arguments and of state dicts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigrad import Tensor, io, optim
from minigrad.nn import Parameter
from minigrad.optim import SGD, AdaDelta, Adadelta, AdaGrad, Adam, AdamW, Momentum, RMSprop

# Three steps of gradients for one parameter of shape (2, 3), seen by every optimiser below.
W0 = np.array([[0.5, -1.0, 2.0], [0.0, 1.5, -0.25]])
GRADS = [np.array([[0.1, -0.2, 0.3], [-0.4, 0.5, 0.0]]),
         np.array([[-0.3, 0.1, 0.2], [0.6, -0.1, 0.05]]),
         np.array([[0.2, 0.2, -0.5], [0.1, 0.3, -0.2]])]


# --------------------------------------------------------------------------- reference updates
# Written from the textbook's formulas (its Momentum: v ← αv − ηg, w ← w + v; its AdaGrad;
# Adam with bias-corrected moments), independently of minigrad.optim.

def reference(kind: str, settings: dict, steps: int) -> list[np.ndarray]:
    w = W0.copy()
    lr = settings.get("lr")
    wd = settings.get("weight_decay", 0.0)
    v = np.zeros_like(w)
    h = np.zeros_like(w)
    m = np.zeros_like(w)
    out = []
    for t, g in enumerate(GRADS[:steps], start=1):
        g = g + wd * w
        if kind == "sgd":
            mu = settings.get("momentum", 0.0)
            v = mu * v - lr * g
            w = w + v
        elif kind == "adagrad":
            h = h + g * g
            w = w - lr * g / (np.sqrt(h) + settings["eps"])
        elif kind == "adam":
            b1, b2 = settings["betas"]
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
            w = w - lr * m_hat / (np.sqrt(v_hat) + settings["eps"])
        out.append(w)
    return out


CASES = [
    ("sgd", SGD, {"lr": 0.1}),
    ("sgd", SGD, {"lr": 0.1, "weight_decay": 0.01}),
    ("sgd", SGD, {"lr": 0.05, "momentum": 0.9}),
    ("sgd", SGD, {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1}),
    ("sgd", Momentum, {"lr": 0.05, "momentum": 0.9}),
    ("adagrad", AdaGrad, {"lr": 0.1, "eps": 1e-8}),
    ("adam", Adam, {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8}),
    ("adam", Adam, {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05}),
]
IDS = [f"{cls.__name__}-{'-'.join(f'{k}={v}' for k, v in s.items())}" for _, cls, s in CASES]


def run(cls, settings: dict, steps: int, dtype=np.float64) -> list[np.ndarray]:
    p = Parameter(W0, dtype=dtype)
    opt = cls([p], **settings)
    out = []
    for g in GRADS[:steps]:
        p.grad = g.astype(dtype)
        opt.step()
        out.append(p.data.copy())
    return out


@pytest.mark.parametrize("kind, cls, settings", CASES, ids=IDS)
def test_three_steps_match_the_formulas(kind, cls, settings):
    for got, expected in zip(run(cls, settings, 3), reference(kind, settings, 3)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_first_steps_by_hand():
    # SGD: w − ηg.
    (w1,) = run(SGD, {"lr": 0.1}, 1)
    np.testing.assert_allclose(w1[0], [0.49, -0.98, 1.97])
    # Momentum, second step: v = 0.9·g1 + g2; w2 = w1 − η·v.
    _, w2 = run(SGD, {"lr": 0.1, "momentum": 0.9}, 2)
    np.testing.assert_allclose(w2[0, 0], 0.5 - 0.1 * 0.1 - 0.1 * (0.9 * 0.1 - 0.3))
    # AdaGrad's first step moves every element with g ≠ 0 by η (g/|g|), whatever |g| is.
    (w1,) = run(AdaGrad, {"lr": 0.1, "eps": 1e-12}, 1)
    moved = W0 - w1
    np.testing.assert_allclose(moved[GRADS[0] != 0], 0.1 * np.sign(GRADS[0][GRADS[0] != 0]))
    # So does Adam's (m̂ = g, v̂ = g²), for a negligible ε.
    (w1,) = run(Adam, {"lr": 0.01, "eps": 1e-12}, 1)
    moved = W0 - w1
    np.testing.assert_allclose(moved[GRADS[0] != 0], 0.01 * np.sign(GRADS[0][GRADS[0] != 0]))


TORCH_CLASSES = {"SGD": "SGD", "Momentum": "SGD", "AdaGrad": "Adagrad", "Adam": "Adam"}


@pytest.mark.parametrize("kind, cls, settings", CASES, ids=IDS)
def test_three_steps_match_torch(kind, cls, settings):
    torch = pytest.importorskip("torch")
    w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    torch_settings = dict(settings)
    if cls is Momentum:
        torch_settings.setdefault("momentum", 0.9)
    opt = getattr(torch.optim, TORCH_CLASSES[cls.__name__])([w], **torch_settings)
    expected = []
    for g in GRADS:
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        expected.append(w.detach().numpy().copy())
    for got, want in zip(run(cls, settings, 3), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- in place, float32

@pytest.mark.parametrize("kind, cls, settings", CASES, ids=IDS)
def test_float32_stays_float32_in_place(kind, cls, settings):
    p = Parameter(W0)
    data = p.data
    opt = cls([p], **settings)
    for g in GRADS:
        p.grad = g.astype(np.float32)
        opt.step()
    assert p.data is data and p.data.dtype == np.float32
    for value in opt.state[0].values():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32
    np.testing.assert_allclose(p.data, reference(kind, settings, 3)[-1], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- 0-d parameters

ZERO_D_CASES = [(SGD, {"lr": 0.1}), (SGD, {"lr": 0.1, "weight_decay": 0.1}),
                (Momentum, {"lr": 0.1}), (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
                (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}), (AdaGrad, {"lr": 1.5}),
                (Adam, {"lr": 0.3}), (AdamW, {"lr": 0.3}),
                (RMSprop, {"lr": 0.01, "momentum": 0.5, "centered": True}), (Adadelta, {})]


@pytest.mark.parametrize("cls, settings", ZERO_D_CASES,
                         ids=[f"{c.__name__}-{s}" for c, s in ZERO_D_CASES])
def test_zero_d_parameters_step_as_one_element_ones(cls, settings):
    # f(x, y) = x²/20 + y² (the textbook's optimiser example) on 0-d parameters, whose
    # gradients backward may return as NumPy scalars, and on shape-(1,) ones: the same path.
    def trajectory(shape):
        x, y = Parameter(np.full(shape, -7.0)), Parameter(np.full(shape, 2.0))
        opt = cls([x, y], **settings)
        out = []
        for _ in range(4):
            opt.zero_grad()
            (x * x / 20 + y * y).sum().backward()
            opt.step()
            out.append((x.data.copy(), y.data.copy()))
        return out, x

    scalar, x = trajectory(())
    vector, _ = trajectory((1,))
    assert x.data.shape == ()
    np.testing.assert_array_equal(np.array(scalar).reshape(-1), np.array(vector).reshape(-1))


def test_zero_d_momentum_accumulates():
    # v = 0.9·g1 + g2 on the second step, by hand, for a 0-d parameter with scalar gradients.
    w = Parameter(np.float32(1.0))
    opt = Momentum([w], lr=0.1, momentum=0.9)
    for g in (np.float32(1.0), np.float32(2.0)):
        w.grad = g
        opt.step()
    np.testing.assert_allclose(w.data, 1.0 - 0.1 * 1.0 - 0.1 * (0.9 * 1.0 + 2.0), rtol=1e-6)
    assert isinstance(opt.state[0]["v"], np.ndarray)


def test_parameters_without_grad_are_skipped():
    a, b = Parameter(W0), Parameter(W0)
    opt = Adam([a, b], lr=0.1)
    a.grad = GRADS[0].astype(np.float32)
    opt.step()
    np.testing.assert_array_equal(b.data, W0.astype(np.float32))
    assert opt.state[1] == {} and opt.state[0]["step"] == 1
    assert not np.array_equal(a.data, W0.astype(np.float32))


def test_zero_grad():
    p = Parameter(W0)
    opt = SGD([p])
    p.grad = np.ones_like(p.data)
    opt.zero_grad()
    assert p.grad is None


# --------------------------------------------------------------------------- resuming

@pytest.mark.parametrize("kind, cls, settings", CASES, ids=IDS)
@pytest.mark.parametrize("through_file", [False, True])
def test_state_dict_round_trip_continues_identically(kind, cls, settings, through_file, tmp_path):
    p = Parameter(W0)
    opt = cls([p], **settings)
    for g in GRADS[:2]:
        p.grad = g.astype(np.float32)
        opt.step()
    state = opt.state_dict()
    if through_file:
        io.save(state, tmp_path / "opt.npz")
        state = io.load(tmp_path / "opt.npz")  # flat, dotted names, 0-d arrays for numbers
    q = Parameter(p.data)
    other = cls([q], lr=123.0)  # hyperparameters come from the state dict
    other.load_state_dict(state)
    assert other.lr == opt.lr
    for g in (GRADS[2], GRADS[0], GRADS[1]):
        p.grad = g.astype(np.float32)
        q.grad = g.astype(np.float32)
        opt.step()
        other.step()
        np.testing.assert_array_equal(q.data, p.data)


def test_state_dict_is_a_copy():
    p = Parameter(W0)
    opt = Adam([p])
    p.grad = GRADS[0].astype(np.float32)
    opt.step()
    state = opt.state_dict()
    state["state"]["0"]["m"][...] = 99
    assert not (opt.state[0]["m"] == 99).any()


def test_load_state_dict_errors():
    p = Parameter(W0)
    opt = Adam([p])
    p.grad = GRADS[0].astype(np.float32)
    opt.step()
    state = opt.state_dict()
    wrong_shape = Adam([Parameter(np.zeros(4))])
    with pytest.raises(ValueError, match=r"state '0.m' has shape \(2, 3\) but parameter 0 has "
                                         r"shape \(4,\)"):
        wrong_shape.load_state_dict(state)
    fewer = Adam([Parameter(W0)])
    state["state"]["1"] = state["state"]["0"]
    with pytest.raises(KeyError, match="state entry '1' names no parameter"):
        fewer.load_state_dict(state)
    with pytest.raises(KeyError, match=r"hyperparameters \['momentum'\] are missing"):
        SGD([Parameter(W0)]).load_state_dict({"hyperparameters": {"lr": 0.1, "weight_decay": 0},
                                              "state": {}})


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("make, error, message", [
    (lambda: SGD([]), ValueError, "SGD: params is empty"),
    (lambda: Adam(iter([])), ValueError, "Adam: params is empty"),
    (lambda: SGD([Tensor([1.0])]), ValueError, r"params\[0\] \(shape \(1,\)\) does not require"),
    (lambda: SGD([np.zeros(3)]), TypeError, r"params\[0\] is a ndarray"),
    (lambda: SGD(Parameter([1.0])), TypeError, "got a single Parameter"),
    (lambda: SGD(5), TypeError, "must be an iterable of Parameters, got int"),
    (lambda: SGD([Parameter([1.0])], lr=-0.1), ValueError, "SGD: lr must be ≥ 0.0, got -0.1"),
    (lambda: SGD([Parameter([1.0])], lr="fast"), TypeError, "SGD: lr must be a number"),
    (lambda: SGD([Parameter([1.0])], momentum=1.0), ValueError, "momentum must be ≥ 0.0 and < 1"),
    (lambda: Adam([Parameter([1.0])], betas=(0.9, 1.5)), ValueError, "betas.1. must be"),
    (lambda: Adam([Parameter([1.0])], betas=0.9), TypeError, "betas must be a pair"),
    (lambda: AdaGrad([Parameter([1.0])], eps=float("nan")), ValueError, "AdaGrad: eps must"),
])
def test_bad_arguments_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_the_same_parameter_twice_is_refused():
    p = Parameter([1.0])
    with pytest.raises(ValueError, match=r"params\[1\] \(shape \(1,\)\) appears twice"):
        SGD([p, p])


def test_a_module_is_refused_with_a_hint():
    from minigrad import nn

    with pytest.raises(TypeError, match=r"pass model.parameters\(\)"):
        SGD(nn.Linear(2, 2))


# --------------------------------------------------------------------------- against torch.optim
# Every option that changes the arithmetic, alone and combined, five steps of random gradients
# on two parameters (one of them skipped on one step), float64, against torch's trajectories.




TORCH_NAMES = {SGD: "SGD", Momentum: "SGD", AdaGrad: "Adagrad", Adam: "Adam", AdamW: "AdamW",
               RMSprop: "RMSprop", Adadelta: "Adadelta"}
SHAPES = [(2, 3), (4,)]


def _grid(**options):
    keys = list(options)
    return [dict(zip(keys, values)) for values in itertools.product(*options.values())]


TORCH_CASES = (
    [(SGD, s) for s in _grid(lr=[0.1], momentum=[0.0, 0.9], dampening=[0.0, 0.3],
                             nesterov=[False, True], weight_decay=[0.0, 0.05])
     if not (s["nesterov"] and (s["momentum"] == 0 or s["dampening"]))]
    + [(Momentum, {"lr": 0.05, "nesterov": True})]
    + [(AdaGrad, s) for s in _grid(lr=[0.1], eps=[1e-8, 1e-3], weight_decay=[0.0, 0.1])]
    + [(Adam, s) for s in _grid(lr=[0.01], betas=[(0.9, 0.999), (0.5, 0.9)],
                                weight_decay=[0.0, 0.1])]
    + [(AdamW, s) for s in _grid(lr=[0.01, 0.2], betas=[(0.9, 0.999), (0.5, 0.9)],
                                 weight_decay=[0.0, 0.01, 0.3])]
    + [(RMSprop, s) for s in _grid(lr=[0.01], alpha=[0.99, 0.5], momentum=[0.0, 0.7],
                                   centered=[False, True], weight_decay=[0.0, 0.1])]
    + [(Adadelta, s) for s in _grid(lr=[1.0, 0.3], rho=[0.9, 0.5], weight_decay=[0.0, 0.1])]
)
TORCH_IDS = [f"{cls.__name__}-" + "-".join(f"{k}={v}" for k, v in s.items())
             for cls, s in TORCH_CASES]


def _gradients(seed: int, steps: int) -> list[list[np.ndarray | None]]:
    rng = np.random.default_rng(seed)
    out = [[rng.standard_normal(shape) for shape in SHAPES] for _ in range(steps)]
    out[2][1] = None                   # the second parameter has no gradient on step 3
    return out


def _start(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed + 1000)
    return [rng.standard_normal(shape) for shape in SHAPES]


def _torch_run(cls, groups, seed, steps=5):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in _start(seed)]
    torch_groups = [{**settings, "params": [params[i] for i in members]}
                    for members, settings in groups["groups"]]
    defaults = dict(groups["defaults"])
    if cls is Momentum:
        defaults.setdefault("momentum", 0.9)
    if cls is AdaGrad:
        defaults.setdefault("eps", 1e-8)
    opt = getattr(torch.optim, TORCH_NAMES[cls])(torch_groups, **defaults)
    out = []
    for grads in _gradients(seed, steps):
        for p, g in zip(params, grads):
            p.grad = None if g is None else torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append([p.detach().numpy().copy() for p in params])
    return out


def _minigrad_run(cls, groups, seed, steps=5):
    params = [Parameter(w, dtype=np.float64) for w in _start(seed)]
    mg_groups = [{**settings, "params": [params[i] for i in members]}
                 for members, settings in groups["groups"]]
    opt = cls(mg_groups, **groups["defaults"])
    out = []
    for grads in _gradients(seed, steps):
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        out.append([p.data.copy() for p in params])
    return out


def _assert_same_trajectory(got, want):
    for step, (got_step, want_step) in enumerate(zip(got, want), start=1):
        for i, (a, b) in enumerate(zip(got_step, want_step)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14,
                                       err_msg=f"step {step}, parameter {i}")


@pytest.mark.parametrize("cls, settings", TORCH_CASES, ids=TORCH_IDS)
def test_trajectories_match_torch(cls, settings):
    groups = {"defaults": settings, "groups": [([0, 1], {})]}
    _assert_same_trajectory(_minigrad_run(cls, groups, 0), _torch_run(cls, groups, 0))


# Group 0 overrides some settings, group 1 takes the defaults: per-group hyperparameters.
GROUP_CASES = [
    (SGD, {"lr": 0.1, "momentum": 0.9}, {"weight_decay": 0.1, "nesterov": True}),
    (Adam, {"lr": 0.01}, {"weight_decay": 1e-2, "lr": 0.05, "betas": (0.8, 0.9)}),
    (AdamW, {"lr": 0.01}, {"weight_decay": 0.0}),
    (RMSprop, {"lr": 0.01, "centered": True}, {"momentum": 0.5, "alpha": 0.9}),
    (Adadelta, {"rho": 0.8}, {"lr": 0.5, "weight_decay": 0.2}),
    (AdaGrad, {"lr": 0.1}, {"lr": 0.02, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("cls, defaults, override", GROUP_CASES,
                         ids=[c.__name__ for c, _, _ in GROUP_CASES])
def test_parameter_groups_match_torch(cls, defaults, override):
    groups = {"defaults": defaults, "groups": [([0], override), ([1], {})]}
    _assert_same_trajectory(_minigrad_run(cls, groups, 1), _torch_run(cls, groups, 1))


_unit = st.floats(0.0, 0.95)


@st.composite
def _optimiser_settings(draw):
    cls = draw(st.sampled_from([SGD, AdaGrad, Adam, AdamW, RMSprop, Adadelta]))
    lr = draw(st.floats(1e-4, 0.5))
    wd = draw(st.sampled_from([0.0, draw(st.floats(1e-4, 0.5))]))
    if cls is SGD:
        momentum = draw(st.sampled_from([0.0, draw(_unit)]))
        nesterov = momentum > 0 and draw(st.booleans())
        dampening = 0.0 if nesterov else draw(st.sampled_from([0.0, draw(_unit)]))
        return cls, dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                         weight_decay=wd)
    if cls is AdaGrad:
        return cls, dict(lr=lr, eps=draw(st.floats(1e-10, 1e-2)), weight_decay=wd)
    if cls in (Adam, AdamW):
        return cls, dict(lr=lr, betas=(draw(_unit), draw(st.floats(0.5, 0.999))),
                         eps=draw(st.floats(1e-10, 1e-2)), weight_decay=wd)
    if cls is RMSprop:
        return cls, dict(lr=lr, alpha=draw(st.floats(0.5, 0.999)), weight_decay=wd,
                         momentum=draw(st.sampled_from([0.0, draw(_unit)])),
                         centered=draw(st.booleans()), eps=draw(st.floats(1e-8, 1e-2)))
    return cls, dict(lr=lr * 4, rho=draw(st.floats(0.1, 0.99)), weight_decay=wd,
                     eps=draw(st.floats(1e-8, 1e-3)))


@given(case=_optimiser_settings(), seed=st.integers(0, 2**16))
def test_drawn_settings_match_torch(case, seed):
    pytest.importorskip("torch")
    cls, settings = case
    groups = {"defaults": settings, "groups": [([0, 1], {})]}
    _assert_same_trajectory(_minigrad_run(cls, groups, seed), _torch_run(cls, groups, seed))


def test_adadelta_is_also_called_adadelta_the_dezero_way():
    assert AdaDelta is Adadelta and optim.AdaDelta is optim.Adadelta


def test_defaults_are_pytorchs_but_sgds_lr():
    # SGD keeps the textbook's lr = 0.01 (torch 2 changed its default to 0.001).
    torch = pytest.importorskip("torch")
    w = torch.zeros(1, requires_grad=True)
    for cls in (SGD, RMSprop, AdamW, Adadelta, Adam):
        ours = cls([Parameter([0.0])]).defaults
        theirs = getattr(torch.optim, TORCH_NAMES[cls])([w]).defaults
        differ = {k for k in ours if theirs[k] != ours[k]}
        assert differ == ({"lr"} if cls is SGD else set()), cls.__name__
    assert SGD([Parameter([0.0])]).defaults["lr"] == 0.01


# --------------------------------------------------------------------------- parameter groups

def test_param_groups_hold_each_groups_settings():
    weights, bias = Parameter(W0), Parameter(np.zeros(3))
    opt = Adam([{"params": [weights], "weight_decay": 1e-4}, {"params": bias}], lr=1e-3)
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-3]
    assert opt.param_groups[1]["params"] == [bias] and opt.params == [weights, bias]
    assert opt.lr == 1e-3
    with pytest.raises(AttributeError, match=r"Adam.weight_decay: the parameter groups differ"):
        getattr(opt, "weight_decay")  # noqa: B009
    opt.lr = 0.5                       # one value for every group, checked
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.5]
    with pytest.raises(ValueError, match=r"Adam.lr: lr must be ≥ 0.0, got -1.0"):
        opt.lr = -1
    assert opt.lr == 0.5


def test_a_changed_group_lr_is_used_at_the_next_step():
    p = Parameter(W0, dtype=np.float64)
    opt = SGD([p], lr=0.1)
    opt.param_groups[0]["lr"] = 0.5
    p.grad = GRADS[0]
    opt.step()
    np.testing.assert_allclose(p.data, W0 - 0.5 * GRADS[0])


def test_add_param_group_matches_torch():
    torch = pytest.importorskip("torch")
    a, b = _start(3)
    ta, tb = (torch.tensor(w, requires_grad=True) for w in (a, b))
    ma, mb = Parameter(a, dtype=np.float64), Parameter(b, dtype=np.float64)
    t_opt = torch.optim.SGD([ta], lr=0.1, momentum=0.9)
    m_opt = SGD([ma], lr=0.1, momentum=0.9)
    for step, grads in enumerate(_gradients(3, 4)):
        if step == 2:
            t_opt.add_param_group({"params": [tb], "lr": 0.01, "nesterov": True})
            m_opt.add_param_group({"params": [mb], "lr": 0.01, "nesterov": True})
        for tp, mp, g in zip((ta, tb), (ma, mb), grads):
            tp.grad = None if g is None else torch.tensor(g)
            mp.grad = g
        t_opt.step()
        m_opt.step()
    np.testing.assert_allclose(ma.data, ta.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(mb.data, tb.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("make, error, message", [
    (lambda p, q: Adam([{"params": [p]}, {"params": [p]}]), ValueError,
     r"param_groups\[1\]\['params'\]\[0\] \(shape \(2, 3\)\) is already in another"),
    (lambda p, q: Adam([{"params": [p], "weight_deacy": 0.1}]), ValueError,
     r"Adam: param_groups\[0\]: unknown key\(s\) \['weight_deacy'\]"),
    (lambda p, q: Adam([{"params": [p]}, {"params": [q], "lr": -1}]), ValueError,
     r"Adam: param_groups\[1\]: lr must be ≥ 0.0, got -1.0"),
    (lambda p, q: Adam([{"params": []}]), ValueError, r"param_groups\[0\]: the group's params"),
    (lambda p, q: Adam([{"lr": 0.1}]), KeyError, "needs a 'params' entry"),
    (lambda p, q: Adam([{"params": 3}]), TypeError,
     r"Adam: param_groups\[0\]: 'params' must be a Parameter or an iterable of them, got int"),
    (lambda p, q: Adam([{"params": [p]}, q]), TypeError, "mixes parameter groups"),
    (lambda p, q: SGD([{"params": [p], "nesterov": True}]), ValueError,
     "nesterov=True needs momentum > 0 and dampening = 0"),
    (lambda p, q: SGD([p], momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "SGD: nesterov=True needs momentum > 0 and dampening = 0, got momentum=0.9, "
     "dampening=0.1"),
    (lambda p, q: SGD([p], nesterov=1), TypeError, "SGD: nesterov must be True or False"),
    (lambda p, q: RMSprop([p], alpha=1.5), ValueError, r"RMSprop: alpha must be ≥ 0.0 and ≤ 1"),
    (lambda p, q: Adadelta([p], rho=-0.1), ValueError, "Adadelta: rho must be"),
    (lambda p, q: AdamW([p], betas=(1.0, 0.999)), ValueError, r"AdamW: betas\[0\] must be"),
    (lambda p, q: SGD([p]).add_param_group({"params": [p]}), ValueError,
     r"SGD.add_param_group: param_groups\[1\]\['params'\]\[0\] .* is already in another"),
])
def test_bad_groups_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make(Parameter(W0), Parameter(np.zeros(3)))


def test_every_in_place_update_goes_through_one_function(monkeypatch):
    seen = []
    through = optim._updated

    def record(p):
        seen.append(p)
        return through(p)

    monkeypatch.setattr(optim, "_updated", record)
    for cls in (SGD, Momentum, AdaGrad, Adam, AdamW, RMSprop, Adadelta):
        a, b, c = Parameter(W0), Parameter(W0), Parameter(W0)
        opt = cls([{"params": [a, b]}, {"params": [c]}])
        a.grad, c.grad = GRADS[0].astype(np.float32), GRADS[1].astype(np.float32)
        versions = [p._version for p in (a, b, c)]
        seen.clear()
        opt.step()
        assert seen == [a, c], cls.__name__
        assert [p._version for p in (a, b, c)] == [versions[0] + 1, versions[1],
                                                   versions[2] + 1]


# --------------------------------------------------------------------------- resuming, checked

def _trained(cls=Adam, **settings):
    weights, bias = Parameter(W0), Parameter(np.zeros(3))
    opt = cls([{"params": [weights], "weight_decay": 0.01}, {"params": [bias], "lr": 0.5}],
              **settings)
    for g in GRADS[:2]:
        weights.grad, bias.grad = g.astype(np.float32), g[0].astype(np.float32)
        opt.step()
    return opt


@pytest.mark.parametrize("cls", [SGD, Momentum, AdaGrad, Adam, AdamW, RMSprop, Adadelta])
@pytest.mark.parametrize("through_file", [False, True])
def test_groups_round_trip_and_continue_identically(cls, through_file, tmp_path):
    extra = {"momentum": 0.5, "centered": True} if cls is RMSprop else {}
    opt = _trained(cls, **extra)
    opt.param_groups[1]["initial_lr"] = 0.5           # a scheduler's entry travels along
    state = opt.state_dict()
    if through_file:
        io.save(state, tmp_path / "opt.npz")
        state = io.load(tmp_path / "opt.npz")
    params = [Parameter(p.data) for p in opt.params]
    other = cls([{"params": params[:1]}, {"params": params[1:]}], lr=123.0)
    other.load_state_dict(state)
    for mine, theirs in zip(other.param_groups, opt.param_groups):
        assert {k: v for k, v in mine.items() if k != "params"} == \
            {k: v for k, v in theirs.items() if k != "params"}
    for g in (GRADS[2], GRADS[0]):
        for p in (*opt.params, *params):
            p.grad = (g if p.shape == (2, 3) else g[0]).astype(np.float32)
        opt.step()
        other.step()
        for p, q in zip(opt.params, params):
            np.testing.assert_array_equal(q.data, p.data)


def _corrupt(path, value):
    def corrupt(state):
        node = state
        *parents, leaf = path
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[leaf]
        else:
            node[leaf] = value(node[leaf]) if callable(value) else value
    return corrupt


_DELETE = object()

BAD_STATES = [
    (("param_groups", "0", "lr"), -1.0, ValueError, r"param_groups\[0\]: lr must be ≥ 0.0"),
    (("param_groups", "1", "lr"), float("nan"), ValueError, r"param_groups\[1\]: lr must be"),
    (("param_groups", "0", "eps"), -1e-8, ValueError, r"param_groups\[0\]: eps must be ≥ 0.0"),
    (("param_groups", "0", "betas"), (1.0, 1.0), ValueError, r"betas\[0\] must be ≥ 0.0 and < 1"),
    (("param_groups", "0", "betas"), 0.9, TypeError, "betas must be a pair"),
    (("param_groups", "0", "betas"), "fast", TypeError, "betas must be a pair"),
    (("param_groups", "0", "weight_decay"), _DELETE, KeyError,
     r"hyperparameters \['weight_decay'\] are missing"),
    (("param_groups", "1", "params"), np.arange(1, 3), ValueError, "has 2 parameters but"),
    (("param_groups", "2"), {"lr": 0.1}, ValueError, "has parameter groups"),
    (("state", "0", "step"), -1, ValueError, r"state '0.step' must be a whole number ≥ 0"),
    (("state", "0", "step"), 1.5, ValueError, r"state '0.step' must be a whole number"),
    (("state", "0", "v"), _DELETE, KeyError, r"state '0' has no \['v'\]"),
    (("state", "1", "m"), _DELETE, KeyError, r"state '1' has no \['m'\]"),
    (("state", "0", "momentum"), np.zeros((2, 3)), KeyError, r"unexpected entries \['momentum'\]"),
    (("state", "0", "m"), np.zeros(4), ValueError, r"state '0.m' has shape \(4,\) but"),
    (("state", "0", "m"), np.array(["a"] * 6).reshape(2, 3), TypeError, r"'0.m' has dtype <U1"),
    (("state", "0", "m"), lambda m: m * np.nan, ValueError, "'0.m' holds NaN"),
    (("state", "0", "v"), lambda v: -v - 1, ValueError, r"'0.v' is an average of squares"),
    (("state", "7"), {"step": 1}, KeyError, "state entry '7' names no parameter"),
]


@pytest.mark.parametrize("path, value, error, message", BAD_STATES,
                         ids=[".".join(p) + f"={v if not callable(v) else 'f'}"
                              for p, v, _, _ in BAD_STATES])
@pytest.mark.parametrize("through_file", [False, True])
def test_bad_state_dicts_are_refused_and_change_nothing(path, value, error, message,
                                                        through_file, tmp_path):
    opt = _trained()
    state = opt.state_dict()
    _corrupt(path, value)(state)
    if through_file:
        io.save(state, tmp_path / "bad.npz")
        state = io.load(tmp_path / "bad.npz")
    params = [Parameter(p.data) for p in opt.params]
    other = Adam([{"params": params[:1]}, {"params": params[1:]}], lr=0.25, eps=1e-3)
    for p in params:
        p.grad = np.ones(p.shape, np.float32)
    other.step()
    before = other.state_dict()
    with pytest.raises(error, match=message):
        other.load_state_dict(state)
    after = other.state_dict()
    assert [{k: v for k, v in g.items() if k != "params"} for g in other.param_groups] == \
        [{"lr": 0.25, "betas": (0.9, 0.999), "eps": 1e-3, "weight_decay": 0.0}] * 2
    assert before["state"].keys() == after["state"].keys()
    for key, entry in before["state"].items():
        for name, v in entry.items():
            np.testing.assert_array_equal(after["state"][key][name], v)


def test_earlier_single_group_state_dicts_still_load():
    p = Parameter(W0)
    legacy = {"hyperparameters": {"lr": 0.2, "momentum": 0.9, "weight_decay": 0.0},
              "state": {"0": {"v": np.ones((2, 3))}}}
    opt = SGD([p])
    opt.load_state_dict(legacy)
    assert opt.param_groups[0]["lr"] == 0.2 and opt.param_groups[0]["nesterov"] is False
    np.testing.assert_array_equal(opt.state[0]["v"], np.ones((2, 3), np.float32))


@pytest.mark.parametrize("cls, settings", [
    (SGD, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    (SGD, {"momentum": 0.9, "dampening": 0.5}),
    (AdamW, {"lr": 0.01}),
    (RMSprop, {"momentum": 0.5, "centered": True, "weight_decay": 0.1}),
    (Adadelta, {"weight_decay": 0.1}),
], ids=["SGD-nesterov", "SGD-dampening", "AdamW", "RMSprop", "Adadelta"])
def test_new_optimisers_stay_float32_in_place(cls, settings):
    groups = {"defaults": settings, "groups": [([0, 1], {})]}
    expected = _minigrad_run(cls, groups, 5)[-1]
    params = [Parameter(w) for w in _start(5)]
    data = [p.data for p in params]
    opt = cls(params, **settings)
    for grads in _gradients(5, 5):
        for p, g in zip(params, grads):
            p.grad = None if g is None else g.astype(np.float32)
        opt.step()
    for p, d, want in zip(params, data, expected):
        assert p.data is d and p.data.dtype == np.float32
        np.testing.assert_allclose(p.data, want, rtol=1e-4, atol=1e-5)
    for state in opt.state:
        for value in state.values():
            assert not isinstance(value, np.ndarray) or value.dtype == np.float32


def test_repr_shows_each_group():
    a, b = Parameter(W0), Parameter(np.zeros(3))
    assert repr(SGD([a], lr=0.1)) == ("SGD(1 parameters, lr=0.1, momentum=0.0, dampening=0.0, "
                                      "nesterov=False, weight_decay=0.0)")
    assert repr(AdaGrad([{"params": [a]}, {"params": [b], "lr": 0.5}])) == (
        "AdaGrad(2 parameters in groups [1: lr=0.01, eps=1e-08, weight_decay=0.0]; "
        "[1: lr=0.5, eps=1e-08, weight_decay=0.0])")
