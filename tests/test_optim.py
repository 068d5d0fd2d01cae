"""Optimisers: hand-computed updates, agreement with torch.optim, resuming, validation."""

from __future__ import annotations

import numpy as np
import pytest

from minigrad import Tensor, io
from minigrad.nn import Parameter
from minigrad.optim import SGD, AdaGrad, Adam, Momentum

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
