"""leaky_relu, elu, softplus and the losses with reductions (mse, l1, binary cross-entropy with
and without logits, nll, softmax cross-entropy with PyTorch's options): references, gradcheck,
kinks on both sides, stability, bad input, label dtypes, and PyTorch."""

import re
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minigrad.functional as F
from minigrad import Tensor
from minigrad.ops import SoftmaxCrossEntropy
from minigrad.testing import arrays, check_op, gradcheck, shapes

REDUCE = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}

# name: (minigrad call, NumPy reference, keyword arguments of arrays())
ACTIVATIONS = {
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.1), lambda a: np.where(a > 0, a, 0.1 * a),
                   {"avoid": (0.0,), "margin": 0.01}),
    "elu": (lambda t: F.elu(t, 1.5), lambda a: np.where(a > 0, a, 1.5 * (np.exp(a) - 1)),
            {"avoid": (0.0,), "margin": 0.01}),
    "softplus": (F.softplus, lambda a: np.log1p(np.exp(a)), {"low": -30.0, "high": 19.0}),
    "softplus_beta": (lambda t: F.softplus(t, beta=2.0, threshold=5.0),
                      lambda a: np.where(2 * a > 5, a, np.log1p(np.exp(2 * a)) / 2),
                      {"avoid": (2.5,), "margin": 0.01}),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
@given(data=st.data())
def test_activation_matches_numpy_and_gradcheck(name, data):
    op, reference, kw = ACTIVATIONS[name]
    x = data.draw(arrays(shapes(max_dims=3, max_side=4), **kw), label="x")
    assert check_op(op, reference, x, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", ["leaky_relu", "elu", "softplus"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_is_finite_at_huge_inputs(name, dtype):
    x = Tensor(np.array([-1e4, 0.0, 1e4], dtype), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = getattr(F, name)(x)
        y.backward(np.ones(3, dtype))
    assert y.dtype == x.grad.dtype == dtype
    assert np.all(np.isfinite(y.data)) and np.all(np.isfinite(x.grad))


def _torch_activation(torch, name):
    f = torch.nn.functional
    return {"leaky_relu": (lambda t: F.leaky_relu(t, 0.2), lambda p: f.leaky_relu(p, 0.2)),
            "elu": (lambda t: F.elu(t, 0.7), lambda p: f.elu(p, 0.7)),
            "softplus": (F.softplus, f.softplus),
            "softplus_beta": (lambda t: F.softplus(t, 3.0, 4.0),
                              lambda p: f.softplus(p, 3.0, 4.0))}[name]


@pytest.mark.parametrize("name", ["leaky_relu", "elu", "softplus", "softplus_beta"])
@given(x=arrays(shapes(min_dims=1, max_dims=3), low=-25.0, high=25.0))
def test_activation_matches_torch(name, x):
    torch = pytest.importorskip("torch")
    x = np.concatenate([x.ravel(), [0.0, 4 / 3, 20.0, -20.0]])   # kinks and thresholds too
    ours, theirs = _torch_activation(torch, name)
    tx, px = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, py = ours(tx), theirs(px)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, py.detach().numpy(), rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(tx.grad, px.grad.numpy(), rtol=1e-9, atol=1e-300)


# ---------------------------------------------------------------- regression and binary losses
def _bce(p, t):
    with np.errstate(divide="ignore"):
        return -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log(1 - p), -100))


# name: (loss, elementwise NumPy reference, arrays() keywords of the input and of the target)
LOSSES = {
    "mse_loss": (F.mse_loss, lambda y, t: (y - t) ** 2, {}, {}),
    "l1_loss": (F.l1_loss, lambda y, t: np.abs(y - t), {}, {}),
    "binary_cross_entropy": (F.binary_cross_entropy, _bce, {"low": 0.05, "high": 0.95},
                             {"low": 0.01, "high": 0.99}),   # the check steps t by 1e-6
    "binary_cross_entropy_with_logits": (
        F.binary_cross_entropy_with_logits,
        lambda z, t: t * np.log1p(np.exp(-z)) + (1 - t) * np.log1p(np.exp(z)), {},
        {"low": 0.0, "high": 1.0}),
}


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", REDUCE)
@given(data=st.data())
def test_loss_matches_reference_and_gradchecks_both_inputs(name, reduction, data):
    loss, reference, y_kw, t_kw = LOSSES[name]
    shape = data.draw(shapes(max_dims=3, max_side=4), label="shape")
    y, t = data.draw(arrays(shape, **y_kw), label="y"), data.draw(arrays(shape, **t_kw), label="t")
    if name == "l1_loss":
        assume(np.all(np.abs(y - t) > 1e-3))   # the kink at y = t: tested below
    assert check_op(lambda a, b: loss(a, b, reduction=reduction),
                    lambda a, b: REDUCE[reduction](reference(a, b)), y, t, rtol=1e-12)


def test_l1_loss_gradient_at_the_kink_is_zero():
    y = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    F.l1_loss(y, np.array([0.0, 2.0, 4.0]), reduction="sum").backward()
    np.testing.assert_array_equal(y.grad, [1.0, 0.0, -1.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_with_logits_is_finite_and_exact_at_huge_logits(dtype):
    z = Tensor(np.array([1e4, -1e4, 1e4, -1e4], dtype), requires_grad=True)
    t = np.array([1.0, 0.0, 0.0, 1.0], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.binary_cross_entropy_with_logits(z, t, reduction="none")
        loss.backward(np.ones(4, dtype))
    np.testing.assert_array_equal(loss.data, [0.0, 0.0, 1e4, 1e4])
    np.testing.assert_array_equal(z.grad, [0.0, 0.0, 1.0, -1.0])
    assert loss.dtype == z.grad.dtype == dtype


@given(z=arrays(shapes(max_dims=2), low=-15.0, high=15.0), data=st.data())
def test_fused_logits_loss_equals_the_composed_one(z, data):
    """The oracle: binary_cross_entropy(sigmoid(z), t) where nothing is clamped."""
    t = data.draw(arrays(z.shape, low=0.0, high=1.0))
    fused_z, composed_z = Tensor(z, requires_grad=True), Tensor(z, requires_grad=True)
    fused = F.binary_cross_entropy_with_logits(fused_z, t, reduction="sum")
    composed = F.binary_cross_entropy(F.sigmoid(composed_z), t, reduction="sum")
    fused.backward()
    composed.backward()
    # the oracle's log(1 − sigmoid(z)) loses ~1e-16 absolute per element where 1 − p rounds, so
    # a sum of tiny losses (z near −15, t near 0) is only that accurate in absolute terms
    np.testing.assert_allclose(fused.data, composed.data, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(fused_z.grad, composed_z.grad, rtol=1e-7, atol=1e-12)


def test_binary_cross_entropy_clamps_the_log_at_minus_100():
    p = Tensor(np.array([0.0, 1.0, 0.0, 1.0]), requires_grad=True)
    loss = F.binary_cross_entropy(p, np.array([1.0, 0.0, 0.0, 1.0]), reduction="none")
    np.testing.assert_array_equal(loss.data, [100.0, 100.0, 0.0, 0.0])
    loss.backward(np.ones(4))
    assert np.all(np.isfinite(p.grad))


@pytest.mark.parametrize("call, pattern", [
    (lambda: F.binary_cross_entropy(np.array([0.5, 1.5]), np.array([0.0, 1.0])),
     "binary_cross_entropy: every input value must be a probability in [0, 1]; got 1 outside "
     "(e.g. 1.5) in input.shape=(2,); for scores use "
     "binary_cross_entropy_with_logits"),
    (lambda: F.binary_cross_entropy(np.array([np.nan]), np.array([0.0])),
     "every input value must be a probability in [0, 1]"),
    (lambda: F.binary_cross_entropy(np.array([0.5]), np.array([-0.5])),
     "binary_cross_entropy: every target value must be a probability in [0, 1]"),
    (lambda: F.mse_loss(np.zeros((2, 3)), np.zeros(3)),
     "mse_loss: input and target must have the same shape; input.shape=(2, 3), "
     "target.shape=(3,)"),
    (lambda: F.l1_loss(np.zeros(2), np.zeros(2), reduction="avg"),
     "l1_loss: reduction must be 'mean', 'sum' or 'none', got 'avg'"),
    (lambda: F.mse_loss(np.array(["a"]), np.array(["b"])),
     "MSELoss: input 0 must be numbers (bool, int or float), got dtype <U1"),
    (lambda: F.nll_loss(np.zeros((2, 3)), np.array([0, 3])),
     "nll_loss: class indices must lie in [0, C)=[0, 3) for input.shape=(2, 3); got labels "
     "from 0 to 3"),
    (lambda: F.nll_loss(np.zeros((2, 3)), np.zeros((2, 3))),
     "nll_loss: labels must be class indices (2,); got t.shape=(2, 3)"),
    (lambda: F.softmax_cross_entropy(np.zeros((2, 3, 4)), np.zeros((2, 5), np.int64),
                                     reduction="sum"),
     "softmax_cross_entropy: labels must be class indices (2, 4) or soft labels like the input "
     "(2, 3, 4); got t.shape=(2, 5)"),
    (lambda: F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), weight=np.ones(2)),
     "softmax_cross_entropy: weight must be C=3 real numbers, one per class; got "
     "weight.shape=(2,)"),
    (lambda: F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5),
     "softmax_cross_entropy: label_smoothing must lie in [0, 1], got 1.5"),
    (lambda: F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, -1]), ignore_index=-100),
     "softmax_cross_entropy: class indices must lie in [0, C)=[0, 3) (or ignore_index=-100)"),
    (lambda: F.softmax_cross_entropy(np.zeros((2, 3)), np.eye(3)[:2], ignore_index=0),
     "softmax_cross_entropy: ignore_index applies to class-index labels"),
    (lambda: F.softmax_cross_entropy(np.zeros((2, 3), complex), np.array([0, 1])),
     "softmax_cross_entropy: logits must be real numbers, got dtype complex128"),
])
def test_bad_input_names_the_op_and_the_values(call, pattern):
    with pytest.raises((ValueError, TypeError), match=re.escape(pattern)):
        call()


# ---------------------------------------------------------------- class losses with options
@st.composite
def class_problem(draw, soft_allowed=True):
    """Logits (N, C, d…), labels, and the options of softmax_cross_entropy / nll_loss."""
    n, c = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    extra = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    z = draw(arrays((n, c, *extra), low=-4.0, high=4.0))
    soft = soft_allowed and draw(st.booleans())
    ignore = None if soft else draw(st.sampled_from([None, -100, 1]))
    if soft:
        t = draw(arrays(z.shape, low=0.0, high=1.0))
    else:
        size = int(np.prod((n, *extra)))
        t = np.asarray(draw(st.lists(st.integers(0, c - 1), min_size=size, max_size=size)))
        t = t.reshape((n, *extra))
        if ignore == -100:
            t = np.where(np.arange(t.size).reshape(t.shape) % 3 == 1, -100, t)
        assume(ignore is None or np.any(t != ignore))   # some label counted
    weight = draw(st.one_of(st.none(), arrays((c,), low=0.2, high=2.0)))
    return z, t, {"reduction": draw(st.sampled_from(list(REDUCE))), "ignore_index": ignore,
                  "weight": weight}


def _cross_entropy_reference(z, t, reduction, ignore_index, weight, label_smoothing=0.0,
                             log_probs=False):
    """PyTorch's formulas written out, one label at a time."""
    N, C = z.shape[:2]
    rows = np.moveaxis(z, 1, -1).reshape(-1, C)
    w = np.ones(C) if weight is None else weight
    soft = t.shape == z.shape
    labels = np.moveaxis(t, 1, -1).reshape(-1, C) if soft else t.reshape(-1)
    losses, total_weight = [], 0.0
    for i, row in enumerate(rows):
        logp = row if log_probs else row - row.max() - np.log(np.exp(row - row.max()).sum())
        if soft:
            q = labels[i] * (1 - label_smoothing) + label_smoothing / C
            losses.append(-(w * q * logp).sum())
            total_weight += 1
        elif ignore_index is not None and labels[i] == ignore_index:
            losses.append(0.0)
        else:
            k = labels[i]
            losses.append(-(1 - label_smoothing) * w[k] * logp[k]
                          - label_smoothing / C * (w * logp).sum())
            total_weight += w[k]
    losses = np.asarray(losses).reshape((N, *z.shape[2:]))
    if reduction == "none":
        return losses
    return losses.sum() / (total_weight if reduction == "mean" else 1.0)


@given(drawn=class_problem(), smoothing=st.sampled_from([0.0, 0.3]))
def test_softmax_cross_entropy_options_match_reference_and_gradcheck(drawn, smoothing):
    z, t, options = drawn
    assert check_op(lambda a: F.softmax_cross_entropy(a, t, label_smoothing=smoothing,
                                                      **options),
                    lambda a: _cross_entropy_reference(a, t, label_smoothing=smoothing,
                                                       **options), z, rtol=1e-11, atol=1e-14)


@given(drawn=class_problem(soft_allowed=False))
def test_nll_loss_matches_reference_and_gradchecks(drawn):
    z, t, options = drawn
    assert check_op(lambda a: F.nll_loss(a, t, **options),
                    lambda a: _cross_entropy_reference(a, t, log_probs=True, **options), z,
                    rtol=1e-11, atol=1e-14)


@given(drawn=class_problem(), smoothing=st.sampled_from([0.0, 0.25]))
def test_softmax_cross_entropy_and_nll_loss_match_torch(drawn, smoothing):
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    z, t, options = drawn
    torch_options = dict(options, ignore_index=-100 if options["ignore_index"] is None
                         else options["ignore_index"])
    if options["weight"] is not None:
        torch_options["weight"] = torch.tensor(options["weight"])
    soft = t.shape == z.shape
    calls = [(lambda a: F.softmax_cross_entropy(a, t, label_smoothing=smoothing, **options),
              lambda p: f.cross_entropy(p, torch.tensor(t), label_smoothing=smoothing,
                                        **torch_options))]
    if not soft:
        calls.append((lambda a: F.nll_loss(F.log_softmax(a, axis=1), t, **options),
                      lambda p: f.nll_loss(f.log_softmax(p, dim=1), torch.tensor(t),
                                           **torch_options)))
    for ours, theirs in calls:
        tz, pz = Tensor(z, requires_grad=True), torch.tensor(z, requires_grad=True)
        y, py = ours(tz), theirs(pz)
        dy = np.random.default_rng(2).standard_normal(y.shape)
        y.backward(dy)
        py.backward(torch.tensor(dy))
        np.testing.assert_allclose(y.data, py.detach().numpy(), rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(tz.grad, pz.grad.numpy(), rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "binary_cross_entropy",
                                  "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("reduction", REDUCE)
@given(data=st.data())
def test_losses_match_torch(name, reduction, data):
    torch = pytest.importorskip("torch")
    _, _, y_kw, t_kw = LOSSES[name]
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4))
    y, t = data.draw(arrays(shape, **y_kw)), data.draw(arrays(shape, **t_kw))
    ty, tt = Tensor(y, requires_grad=True), Tensor(t, requires_grad=True)
    py, pt = torch.tensor(y, requires_grad=True), torch.tensor(t, requires_grad=True)
    out = getattr(F, name)(ty, tt, reduction=reduction)
    pout = getattr(torch.nn.functional, name)(py, pt, reduction=reduction)
    dy = np.random.default_rng(4).standard_normal(out.shape)
    out.backward(dy)
    pout.backward(torch.tensor(dy))
    np.testing.assert_allclose(out.data, pout.detach().numpy(), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(ty.grad, py.grad.numpy(), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(tt.grad, pt.grad.numpy(), rtol=1e-9, atol=1e-14)


def test_binary_cross_entropy_at_zero_and_one_matches_torch():
    torch = pytest.importorskip("torch")
    p, t = np.array([0.0, 1.0, 0.0, 1.0, 0.5]), np.array([1.0, 0.0, 0.0, 1.0, 0.3])
    tp, pp = Tensor(p, requires_grad=True), torch.tensor(p, requires_grad=True)
    loss = F.binary_cross_entropy(tp, t, reduction="sum")
    ploss = torch.nn.functional.binary_cross_entropy(pp, torch.tensor(t), reduction="sum")
    loss.backward()
    ploss.backward()
    np.testing.assert_allclose(loss.data, ploss.item(), rtol=1e-12)
    np.testing.assert_allclose(tp.grad, pp.grad.numpy(), rtol=1e-12)


def test_default_softmax_cross_entropy_keeps_its_fused_fast_op():
    z = Tensor(np.zeros((4, 3)), requires_grad=True)
    assert type(F.softmax_cross_entropy(z, np.array([0, 1, 2, 0])).creator) is SoftmaxCrossEntropy
    options = F.softmax_cross_entropy(z, np.array([0, 1, 2, 0]), reduction="sum")
    assert type(options.creator) is not SoftmaxCrossEntropy


def test_every_label_ignored_gives_nan_like_torch():
    loss = F.softmax_cross_entropy(np.zeros((2, 3)), np.array([-100, -100]), ignore_index=-100)
    assert np.isnan(loss.data)


# ---------------------------------------------------------------- label and logit dtypes
INTEGER_DTYPES = ["i1", "<i2", ">i2", "<i4", ">i4", "<i8", ">i8", "u1", "<u2", ">u4", ">u8"]


@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
@pytest.mark.parametrize("C", [4, 300])
def test_negative_and_too_large_labels_are_rejected_in_every_integer_dtype(dtype, C):
    z = np.zeros((3, C))
    top = min(C - 1, np.iinfo(dtype).max)
    np.testing.assert_allclose(
        F.softmax_cross_entropy(z, np.array([0, top, 1], dtype)).data, np.log(C))
    if np.iinfo(dtype).max >= C:
        with pytest.raises(ValueError, match=re.escape(f"got labels from 0 to {C}")):
            F.softmax_cross_entropy(z, np.array([0, C, 1], dtype))
    if np.dtype(dtype).kind == "i":
        for bad in (-1, np.iinfo(dtype).min):
            for options in ({}, {"reduction": "sum"}):
                with pytest.raises(ValueError, match=re.escape(f"got labels from {bad} to 1")):
                    F.softmax_cross_entropy(z, np.array([0, bad, 1], dtype), **options)


def test_int8_minus_one_is_not_class_299():
    with pytest.raises(ValueError, match=re.escape("got labels from -1 to 3")):
        F.softmax_cross_entropy(np.zeros((2, 300)), np.array([3, -1], np.int8))


@pytest.mark.parametrize("dtype", ["<i2", ">i2"])
def test_int16_negative_labels_with_more_than_65535_classes(dtype):
    with pytest.raises(ValueError, match=re.escape("got labels from -1 to 3")):
        F.softmax_cross_entropy(np.zeros((2, 65537), np.float32), np.array([3, -1], dtype))


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint8, np.bool_])
@pytest.mark.parametrize("C", [3, 100])
def test_integer_logits_are_promoted_to_float(dtype, C):
    rng = np.random.default_rng(0)
    z = rng.integers(0, 2, (4, C)).astype(dtype)
    t = np.array([0, 1, 2, 1])
    expected = _cross_entropy_reference(z.astype(np.float64), t, "mean", None, None)
    # The dtype policy: bools and 8-bit integers as float32, 64-bit integers as float64.
    dtype_expected = np.float64 if np.dtype(dtype).itemsize == 8 else np.float32
    for options in ({}, {"reduction": "sum"}):
        loss = F.softmax_cross_entropy(z, t, **options)
        assert loss.dtype == dtype_expected
        scale = 4.0 if options else 1.0
        rtol = 1e-12 if dtype_expected == np.float64 else 1e-6
        np.testing.assert_allclose(loss.data, expected * scale, rtol=rtol)


def test_losses_keep_float32():
    y = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    for loss in (F.mse_loss(y, np.zeros((2, 3))), F.l1_loss(y, np.zeros((2, 3))),
                 F.binary_cross_entropy_with_logits(y, np.zeros((2, 3))),
                 F.softmax_cross_entropy(y, np.array([0, 2]), label_smoothing=0.1),
                 F.nll_loss(y, np.array([0, 2]), reduction="sum")):
        y.grad = None
        loss.backward()
        assert loss.dtype == y.grad.dtype == np.float32


def test_gradcheck_of_label_smoothing_with_weights_on_soft_labels():
    rng = np.random.default_rng(5)
    z, t, w = rng.standard_normal((3, 4, 2)), rng.random((3, 4, 2)), rng.random(4) + 0.5
    assert gradcheck(lambda a: F.softmax_cross_entropy(a, t, label_smoothing=0.2, weight=w,
                                                       reduction="none"), z)


@pytest.mark.parametrize("name, expected", [
    ("leaky_relu", [-0.03, 2.0]), ("elu", [np.expm1(-3.0), 2.0]),
    ("softplus", [np.log1p(np.exp(-3.0)), np.log1p(np.exp(2.0))]),
])
@pytest.mark.parametrize("dtype", [np.int8, np.int64])
def test_integer_inputs_are_promoted_not_truncated(name, expected, dtype):
    y = getattr(F, name)(np.array([-3, 2], dtype))
    assert y.dtype.kind == "f"
    np.testing.assert_allclose(y.data, expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("C", [3, 100])
def test_softmax_of_integers_is_promoted_to_float(name, C):
    x = np.arange(2 * C, dtype=np.int8).reshape(2, C) % 7
    y = getattr(F, name)(x, axis=1)
    assert y.dtype == np.float32   # the dtype policy: 8-bit integers as float32
    np.testing.assert_allclose(y.data, getattr(F, name)(x.astype(np.float64), axis=1).data,
                               rtol=1e-6)


@st.composite
def weighted_binary_problem(draw):
    """(z or p, t, weight or None, pos_weight or None) with weights that broadcast over (N, C)."""
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    t = draw(arrays((n, c), low=0.01, high=0.99))
    weight = draw(st.one_of(st.none(), arrays((c,), low=0.1, high=2.0),
                            arrays((n, c), low=0.1, high=2.0)))
    pos_weight = draw(st.one_of(st.none(), arrays((c,), low=0.1, high=3.0)))
    return t, weight, pos_weight


@pytest.mark.parametrize("name", ["binary_cross_entropy", "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("reduction", REDUCE)
@given(drawn=weighted_binary_problem(), data=st.data())
def test_weighted_binary_losses_gradcheck_and_match_torch(name, reduction, drawn, data):
    t, weight, pos_weight = drawn
    logits = name.endswith("logits")
    x = data.draw(arrays(t.shape, low=-4.0, high=4.0) if logits
                  else arrays(t.shape, low=0.05, high=0.95))
    options = {"weight": weight, "reduction": reduction}
    if logits:
        options["pos_weight"] = pos_weight
    loss = getattr(F, name)
    assert gradcheck(lambda a, b: loss(a, b, **options), x, t)
    torch = pytest.importorskip("torch")
    torch_options = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v)
                     for k, v in options.items()}
    tx, tt = Tensor(x, requires_grad=True), Tensor(t, requires_grad=True)
    px, pt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
    out = loss(tx, tt, **options)
    pout = getattr(torch.nn.functional, name)(px, pt, **torch_options)
    dy = np.random.default_rng(8).standard_normal(out.shape)
    out.backward(dy)
    pout.backward(torch.tensor(dy))
    np.testing.assert_allclose(out.data, pout.detach().numpy(), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(tx.grad, px.grad.numpy(), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(tt.grad, pt.grad.numpy(), rtol=1e-9, atol=1e-14)


def test_pos_weight_is_finite_and_exact_at_huge_logits():
    z = Tensor(np.array([[1e4, -1e4]]), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(z, np.array([[0.0, 1.0]]), reduction="none",
                                              pos_weight=np.array([2.0, 3.0]))
    loss.backward(np.ones((1, 2)))
    np.testing.assert_array_equal(loss.data, [[1e4, 3e4]])
    np.testing.assert_array_equal(z.grad, [[1.0, -3.0]])


def test_weight_that_does_not_broadcast_is_refused():
    with pytest.raises(ValueError, match=re.escape(
            "binary_cross_entropy_with_logits: pos_weight of shape (3,) does not broadcast to "
            "the input's shape (2, 2)")):
        F.binary_cross_entropy_with_logits(np.zeros((2, 2)), np.zeros((2, 2)),
                                           pos_weight=np.ones(3))


# ------------------------------------------- fast formulations against their plain twins
def _bce_with_logits_plain(z, t):
    """Per-element loss and dL/dz by the plain formulation (np.log1p, np.logaddexp)."""
    with np.errstate(all="ignore"):
        sp = np.maximum(-z, 0) + np.log1p(np.exp(-np.abs(z)))
        sigma = np.exp(-np.logaddexp(z.dtype.type(0), -z))
        return (1 - t) * z + sp, sigma - t, sp


@pytest.mark.parametrize("width", [32, 64])
@given(data=st.data())
def test_binary_cross_entropy_with_logits_is_its_plain_formulation_to_a_few_ulp(width, data):
    # softplus(−z) without log1p and σ(z) without logaddexp: within 6 ulp (float32) or 3 ulp
    # (float64) of the plain terms, measured on the terms' magnitudes; NaN and ±inf alike.
    from hypothesis.extra import numpy as hnp

    dtype = np.float32 if width == 32 else np.float64
    n = data.draw(st.integers(1, 3000))
    z = data.draw(hnp.arrays(dtype, n, elements=st.floats(width=width)
                             | st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, 88.0])))
    t = data.draw(hnp.arrays(dtype, n, elements=st.sampled_from([0.0, 1.0, 0.25])))
    tz = Tensor(z, requires_grad=True)
    with np.errstate(all="ignore"):         # inf − inf at infinite logits, as ever
        loss = F.binary_cross_entropy_with_logits(tz, t, reduction="none")
        loss.backward(np.ones(n, dtype))
    want, want_dz, sp = _bce_with_logits_plain(z, t)
    ulps = 6 if width == 32 else 3
    eps = np.finfo(dtype).eps
    with np.errstate(all="ignore"):
        terms = np.abs((1 - t) * z) + sp
    for got, plain, scale in ((loss.data, want, terms), (tz.grad, want_dz, 1 + np.abs(t))):
        assert got.dtype == dtype
        np.testing.assert_array_equal(np.isnan(got), np.isnan(plain))
        np.testing.assert_array_equal(got[np.isinf(plain)], plain[np.isinf(plain)])
        finite = np.isfinite(plain)
        with np.errstate(all="ignore"):
            assert np.all(np.abs(got - plain)[finite] <= ulps * eps * scale[finite]
                          + np.finfo(dtype).smallest_subnormal)


def _softmax_plain(x, axis, dy):
    y = np.exp(x - x.max(axis=axis, keepdims=True))
    y = y / y.sum(axis=axis, keepdims=True)
    return y, y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def _log_softmax_plain(x, axis, dy):
    s = x - x.max(axis=axis, keepdims=True)
    y = s - np.log(np.exp(s).sum(axis=axis, keepdims=True))
    return y, dy - np.exp(y) * dy.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_softmax_and_log_softmax_give_the_bits_of_the_plain_formulation(name, dtype, data):
    # Fewer arrays, worked on in place: the same operations in the same order, so the same
    # bits (long rows; rows of at most 64 take the transposed path tested elsewhere); but
    # log_softmax's gradient takes softmax as e / Σ e, not eʸ: within 4 ulp of the exact
    # dy − softmax · Σ dy (of x − m as rounded in x's dtype).
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    shape = (data.draw(st.integers(1, 9)), data.draw(st.integers(65, 300)))
    axis = data.draw(st.sampled_from([-1, 1]))
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    tx = Tensor(x, requires_grad=True)
    y = getattr(F, name)(tx, axis=axis)
    y.backward(dy)
    plain = {"softmax": _softmax_plain, "log_softmax": _log_softmax_plain}[name]
    want, want_dx = plain(x, axis, dy)
    np.testing.assert_array_equal(y.data, want)
    if name == "softmax":
        np.testing.assert_array_equal(tx.grad, want_dx)
        return
    el = np.exp((x - x.max(axis=axis, keepdims=True)).astype(np.longdouble))
    p = el / el.sum(axis=axis, keepdims=True)
    total = dy.astype(np.longdouble).sum(axis=axis, keepdims=True)
    exact = dy - p * total
    scale = np.abs(dy) + p * np.abs(dy).sum(axis=axis, keepdims=True)
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(tx.grad - exact) <= 4 * eps * scale)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_nll_loss_gives_the_bits_of_the_dense_formulation(reduction, dtype, data):
    # Forward picks the M labelled log-probabilities; the plain formulation sums q ⊙ x over
    # all M·C places (zero but at the labels): the same bits, with ignored labels, class
    # weights, −inf and −0 in x, and a spatial axis.
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    N, C = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 7))
    spatial = data.draw(st.sampled_from([(), (3,)]))
    x = rng.standard_normal((N, C, *spatial)).astype(dtype)
    x.reshape(-1)[::5] = -np.inf
    x.reshape(-1)[1::7] = -0.0
    t = rng.integers(0, C, (N, *spatial))
    ignore = data.draw(st.sampled_from([None, 0]))
    weight = data.draw(st.sampled_from([None, rng.random(C) + 0.5]))
    tx = Tensor(x, requires_grad=True)
    with np.errstate(all="ignore"):          # every label ignored: 0/0, as PyTorch
        loss = F.nll_loss(tx, t, reduction=reduction, ignore_index=ignore, weight=weight)
        dy = np.asarray(rng.standard_normal(loss.shape), dtype)
        loss.backward(dy)
    rows = np.moveaxis(x, 1, -1).reshape(-1, C)
    w = np.ones(C, dtype) if weight is None else weight.astype(dtype)
    tf = t.reshape(-1)
    valid = np.ones(tf.size, bool) if ignore is None else tf != ignore
    a = w[np.where(valid, tf, 0)] * valid
    q = np.zeros(rows.shape, dtype)
    q[np.arange(tf.size), np.where(valid, tf, 0)] = a
    with np.errstate(invalid="ignore"):
        losses = -np.where(q != 0, q * rows, dtype(0)).sum(axis=1).reshape(t.shape)
    count = float(a.sum())
    want = {"none": losses, "sum": np.asarray(losses.sum(), dtype)}.get(reduction)
    if want is None:
        with np.errstate(invalid="ignore", divide="ignore"):
            want = np.asarray(losses.sum() / count, dtype)
    np.testing.assert_array_equal(loss.data, want)
    assert np.array_equal(np.signbit(loss.data), np.signbit(want))
    with np.errstate(all="ignore"):
        g = dy / dtype(count) if reduction == "mean" else dy
        g = g.reshape(-1, 1) if reduction == "none" else g
        want_dx = np.moveaxis((-q * g).reshape(N, *spatial, C), -1, 1)
    np.testing.assert_array_equal(tx.grad, want_dx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
def test_cross_entropy_with_options_on_long_rows_keeps_the_loss_bits_and_the_softmax(dtype,
                                                                                      data):
    # Rows of more than 64 classes keep exp(z − m) and Σ for backward: the loss has the bits
    # of the plain formulation, the gradient (softmax · Σ q − q) · g within 8 ulp of it with
    # the exact softmax of z − m (as rounded in z's dtype) and exact Σ q and g (the op rounds
    # both; 5.8 ulp the largest measured).
    from minigrad.ops.loss import _class_weights

    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    N, C = data.draw(st.integers(1, 6)), data.draw(st.integers(65, 200))
    z = (rng.standard_normal((N, C)) * 4).astype(dtype)
    t = rng.integers(0, C, N)
    options = data.draw(st.sampled_from([{"label_smoothing": 0.1},
                                         {"weight": rng.random(C) + 0.5},
                                         {"ignore_index": int(t[0]), "reduction": "sum"}]))
    tz = Tensor(z, requires_grad=True)
    loss = F.softmax_cross_entropy(tz, t, **options)
    loss.backward(np.asarray(2.0, dtype))
    q, count = _class_weights("t", C, t, options.get("weight"), options.get("ignore_index"),
                              options.get("label_smoothing", 0.0), np.dtype(dtype), True, z.shape)
    s = z - z.max(axis=1, keepdims=True)
    logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    losses = (q * -logp).sum(axis=1)
    want = losses.sum() if options.get("reduction") == "sum" else losses.sum() / count
    np.testing.assert_array_equal(loss.data, np.asarray(want, dtype))
    g = 2.0 if options.get("reduction") == "sum" else 2.0 / count
    el = np.exp(s.astype(np.longdouble))
    p = el / el.sum(axis=1, keepdims=True)
    ql = q.astype(np.longdouble)
    expected = (p * ql.sum(axis=1, keepdims=True) - ql) * g
    scale = (p * ql.sum(axis=1, keepdims=True) + ql) * abs(g)
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(tz.grad - expected) <= 8 * eps * scale + np.finfo(dtype).tiny)
