"""Gradients of gradients of the elementwise, join, statistics and loss ops: gradgradcheck on
drawn shapes and options, both formulations of each gradient equal, Hessian-vector products
equal to PyTorch's, and the choices at kinks, ties and constant rows.

``MORE_OPS`` joins the table ``OPS`` of tests/test_higher_order.py, which then runs its
property tests (PyTorch's double backward included) on these ops too.
"""

import contextlib
import math
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad
import minigrad.functional as F
from minigrad import Function, Tensor, ops
from minigrad.ops import elementwise, grad_ops, join, loss, statistics
from minigrad.testing import (
    arrays,
    broadcastable_shapes,
    distinct_arrays,
    gradgradcheck,
    shapes,
)

REDUCTIONS = ["mean", "sum", "none"]

# ------------------------------------------------------------------------------ the op table
# name: (draw(data) -> (inputs, settings), minigrad fn(*tensors, **settings),
#        torch fn(torch, *tensors, **settings)), as OPS in tests/test_higher_order.py.


def _unary(**kw):
    def draw(data):
        return [data.draw(arrays(shapes(max_dims=3, max_side=3), **kw), label="x")], {}
    return draw


def _draw_clip(data):
    low, high = data.draw(st.sampled_from([(-1.0, 1.0), (None, 0.5), (-0.5, None)]))
    avoid = tuple(b for b in (low, high) if b is not None)
    x = data.draw(arrays(shapes(max_dims=3, max_side=3), avoid=avoid, margin=0.1), label="x")
    return [x], {"low": low, "high": high}


def _draw_no_ties(data):
    """x and y broadcastable, never within 0.1 of each other: y sits on half-integers, x off
    them."""
    xs, ys = data.draw(broadcastable_shapes(max_dims=3, max_side=3), label="shapes")
    y = np.floor(data.draw(arrays(ys), label="y")) + 0.5
    halves = tuple(k + 0.5 for k in range(-4, 4))
    x = data.draw(arrays(xs, avoid=halves, margin=0.1), label="x")
    return [x, y], {}


def _draw_where(data):
    cs, xs, ys = data.draw(broadcastable_shapes(3, max_dims=3, max_side=3), label="shapes")
    size = math.prod(cs)
    condition = np.asarray(data.draw(st.lists(st.booleans(), min_size=size, max_size=size)),
                           bool).reshape(cs)
    return [data.draw(arrays(xs)), data.draw(arrays(ys))], {"condition": condition}


def _draw_activation(name):
    def draw(data):
        if name == "softplus":
            beta = data.draw(st.sampled_from([0.5, 1.0, 2.0]), label="beta")
            threshold = data.draw(st.sampled_from([20.0, 1.5]), label="threshold")
            x = data.draw(arrays(shapes(max_dims=3, max_side=3), avoid=(threshold / beta,),
                                 margin=0.1), label="x")
            return [x], {"beta": beta, "threshold": threshold}
        x = data.draw(arrays(shapes(max_dims=3, max_side=3), avoid=(0.0,), margin=0.1))
        setting = data.draw(st.sampled_from([0.01, 0.3, 1.0, 1.7]), label="setting")
        return [x], {"negative_slope" if name == "leaky_relu" else "alpha": setting}
    return draw


def _draw_concatenate(data):
    base = list(data.draw(shapes(min_dims=1, max_dims=3, max_side=3), label="shape"))
    axis = data.draw(st.integers(-len(base), len(base) - 1), label="axis")
    xs = []
    for _ in range(data.draw(st.integers(1, 3), label="pieces")):
        base[axis] = data.draw(st.integers(1, 3))
        xs.append(data.draw(arrays(tuple(base))))
    return xs, {"axis": axis}


def _draw_stack(data):
    shape = data.draw(shapes(max_dims=2, max_side=3), label="shape")
    xs = [data.draw(arrays(shape)) for _ in range(data.draw(st.integers(1, 3), label="pieces"))]
    return xs, {"axis": data.draw(st.integers(-len(shape) - 1, len(shape)), label="axis")}


def _draw_pad(data):
    x = data.draw(arrays(shapes(min_dims=1, max_dims=3, max_side=3)), label="x")
    pairs = tuple(data.draw(st.tuples(st.integers(0, 2), st.integers(0, 2))) for _ in x.shape)
    return [x], {"pad_width": pairs, "value": data.draw(st.sampled_from([0.0, -1.5]))}


def _torch_pad(torch, x, pad_width, value):
    flat = [n for pair in reversed(pad_width) for n in pair]
    return torch.nn.functional.pad(x, flat, value=value)


def _draw_broadcast(data):
    small, other = data.draw(broadcastable_shapes(max_dims=3, max_side=3), label="shapes")
    big = np.broadcast_shapes(small, other)
    return [data.draw(arrays(small), label="x")], {"shape": big}


def _draw_sum_to(data):
    small, other = data.draw(broadcastable_shapes(max_dims=3, max_side=3), label="shapes")
    big = np.broadcast_shapes(small, other)
    return [data.draw(arrays(big), label="x")], {"shape": small}


def _draw_split(data):
    x = data.draw(arrays(shapes(min_dims=1, max_dims=3, max_side=4)), label="x")
    axis = data.draw(st.integers(0, x.ndim - 1), label="axis")
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, x.shape[axis] - 1)), max_size=2)))
    return [x], {"cuts": [c for c in cuts if c < x.shape[axis]], "axis": axis}


def _split_weighted(pieces, concatenate, axis):
    """The pieces, each times its number, joined again: every piece gets its own gradient."""
    return concatenate([p * (i + 1) for i, p in enumerate(pieces)], axis)


def _draw_squeeze(data):
    x = data.draw(arrays(shapes(max_dims=4, min_side=1, max_side=2)), label="x")
    return [x], {}


def _draw_expand_dims(data):
    x = data.draw(arrays(shapes(max_dims=3, max_side=3)), label="x")
    return [x], {"axis": data.draw(st.integers(-x.ndim - 1, x.ndim), label="axis")}


def _reduction(distinct=False, ddof=False):
    def draw(data):
        shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3), label="shape")
        x = data.draw(distinct_arrays(shape, min_gap=0.05) if distinct else arrays(shape))
        axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                                   st.sets(st.integers(0, len(shape) - 1), min_size=1)
                                   .map(tuple)), label="axis")
        settings = {"axis": axis, "keepdims": data.draw(st.booleans(), label="keepdims")}
        if ddof:
            dims = range(len(shape)) if axis is None else np.atleast_1d(axis)
            n = math.prod(shape[a] for a in dims)
            settings["ddof"] = data.draw(st.integers(0, min(1, n - 1)), label="ddof")
        return [x], settings
    return draw


def _draw_spread(data):
    """std's input: every reduced row holds at least two distinct values (std > 0, smooth)."""
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3).filter(
        lambda s: max(s) >= 2), label="shape")
    long_axes = [i for i, n in enumerate(shape) if n >= 2]
    axis = data.draw(st.one_of(st.none(), st.sampled_from(long_axes)), label="axis")
    return [data.draw(distinct_arrays(shape, min_gap=0.05))], {
        "axis": axis, "keepdims": data.draw(st.booleans(), label="keepdims"),
        "ddof": data.draw(st.integers(0, 1), label="ddof")}


def _dims(x, axis):
    return tuple(range(x.ndim)) if axis is None else axis


def _draw_pair(kind):
    """(input, target) of one shape for the elementwise losses, and a reduction."""
    def draw(data):
        shape = data.draw(shapes(max_dims=3, max_side=3), label="shape")
        settings = {"reduction": data.draw(st.sampled_from(REDUCTIONS), label="reduction")}
        if kind == "l1":     # y − t kept off the kink at 0
            y = data.draw(arrays(shape))
            return [y, y - data.draw(arrays(shape, avoid=(0.0,), margin=0.1))], settings
        if kind == "mse":
            return [data.draw(arrays(shape)), data.draw(arrays(shape))], settings
        first = (data.draw(arrays(shape, low=0.05, high=0.95)) if kind == "bce"
                 else data.draw(arrays(shape)))
        t = data.draw(arrays(shape, low=0.05, high=0.95), label="t")  # room for eps
        if len(shape) and data.draw(st.booleans(), label="weight"):
            settings["weight"] = data.draw(arrays(shape[-1:], low=0.5, high=2.0))
        if kind == "bce_logits" and len(shape) and data.draw(st.booleans(), label="pos_weight"):
            settings["pos_weight"] = data.draw(arrays(shape[-1:], low=0.5, high=2.0))
        return [first, t], settings
    return draw


def _torch_weights(torch, settings):
    return {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v
            for k, v in settings.items()}


def _draw_classes(nll):
    """Logits (or log-probabilities) (N, C) or (N, C, d), labels with PyTorch's options."""
    def draw(data):
        n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
        extra = data.draw(st.sampled_from([(), (2,)]), label="extra")
        z = data.draw(arrays((n, c) + extra), label="z")
        settings = {"reduction": data.draw(st.sampled_from(REDUCTIONS), label="reduction")}
        if data.draw(st.booleans(), label="weight"):
            settings["weight"] = data.draw(arrays((c,), low=0.5, high=2.0))
        if not nll:
            settings["label_smoothing"] = data.draw(st.sampled_from([0.0, 0.2]))
        if not nll and data.draw(st.booleans(), label="soft"):
            settings["t"] = data.draw(arrays((n, c) + extra, low=0.0, high=1.0))
            return [z], settings
        size = n * math.prod(extra)
        t = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=size,
                                          max_size=size))).reshape((n,) + extra)
        if data.draw(st.booleans(), label="ignore"):
            ignored = np.asarray(data.draw(st.lists(st.booleans(), min_size=size,
                                                    max_size=size))).reshape(t.shape)
            ignored.flat[0] = False                # the mean counts at least one label
            t = np.where(ignored, -1, t)
            settings["ignore_index"] = -1
        settings["t"] = t
        return [z], settings
    return draw


def _torch_cross_entropy(torch, z, t, **s):
    s = _torch_weights(torch, s)
    s.setdefault("ignore_index", -100)
    return torch.nn.functional.cross_entropy(z, torch.as_tensor(t), **s)


def _torch_nll(torch, x, t, **s):
    s = _torch_weights(torch, s)
    s.setdefault("ignore_index", -100)
    return torch.nn.functional.nll_loss(x, torch.as_tensor(t), **s)


MORE_OPS = {
    "abs": (_unary(avoid=(0.0,), margin=0.1), lambda x: x.abs(), lambda torch, x: x.abs()),
    "clip": (_draw_clip, lambda x, low, high: x.clip(low, high),
             lambda torch, x, low, high: x.clamp(low, high)),
    "sin": (_unary(), lambda x: x.sin(), lambda torch, x: x.sin()),
    "cos": (_unary(), lambda x: x.cos(), lambda torch, x: x.cos()),
    "maximum": (_draw_no_ties, minigrad.maximum, lambda torch, x, y: torch.maximum(x, y)),
    "minimum": (_draw_no_ties, minigrad.minimum, lambda torch, x, y: torch.minimum(x, y)),
    "where": (_draw_where, lambda x, y, condition: minigrad.where(condition, x, y),
              lambda torch, x, y, condition: torch.where(torch.as_tensor(condition), x, y)),
    "leaky_relu": (_draw_activation("leaky_relu"), F.leaky_relu,
                   lambda torch, x, **s: torch.nn.functional.leaky_relu(x, **s)),
    "elu": (_draw_activation("elu"), F.elu,
            lambda torch, x, **s: torch.nn.functional.elu(x, **s)),
    "softplus": (_draw_activation("softplus"), F.softplus,
                 lambda torch, x, **s: torch.nn.functional.softplus(x, **s)),
    "concatenate": (_draw_concatenate, lambda *xs, axis: minigrad.concatenate(list(xs), axis),
                    lambda torch, *xs, axis: torch.cat(xs, dim=axis)),
    "stack": (_draw_stack, lambda *xs, axis: minigrad.stack(list(xs), axis),
              lambda torch, *xs, axis: torch.stack(xs, dim=axis)),
    "pad": (_draw_pad, minigrad.pad, _torch_pad),
    "broadcast_to": (_draw_broadcast, lambda x, shape: x.broadcast_to(shape),
                     lambda torch, x, shape: x.broadcast_to(shape)),
    "sum_to": (_draw_sum_to, lambda x, shape: x.sum_to(shape),
               lambda torch, x, shape: x.sum_to_size(shape) if shape else x.sum()),
    "split": (_draw_split,
              lambda x, cuts, axis: _split_weighted(minigrad.split(x, cuts, axis),
                                                    minigrad.concatenate, axis),
              lambda torch, x, cuts, axis: _split_weighted(torch.tensor_split(x, cuts, axis),
                                                           torch.cat, axis)),
    "squeeze": (_draw_squeeze, lambda x: x.squeeze(), lambda torch, x: x.squeeze()),
    "expand_dims": (_draw_expand_dims, lambda x, axis: x.expand_dims(axis),
                    lambda torch, x, axis: x.unsqueeze(axis)),
    "min": (_reduction(distinct=True), lambda x, axis, keepdims: x.min(axis, keepdims),
            lambda torch, x, axis, keepdims: torch.amin(x, _dims(x, axis), keepdim=keepdims)),
    "var": (_reduction(ddof=True), lambda x, **s: x.var(**s),
            lambda torch, x, axis, keepdims, ddof: torch.var(x, _dims(x, axis), keepdim=keepdims,
                                                             correction=ddof)),
    "std": (_draw_spread, lambda x, **s: x.std(**s),
            lambda torch, x, axis, keepdims, ddof: torch.std(x, _dims(x, axis), keepdim=keepdims,
                                                             correction=ddof)),
    "logsumexp": (_reduction(), lambda x, axis, keepdims: x.logsumexp(axis, keepdims),
                  lambda torch, x, axis, keepdims: torch.logsumexp(x, _dims(x, axis),
                                                                   keepdim=keepdims)),
    "mse_loss": (_draw_pair("mse"), F.mse_loss,
                 lambda torch, y, t, **s: torch.nn.functional.mse_loss(y, t, **s)),
    "l1_loss": (_draw_pair("l1"), F.l1_loss,
                lambda torch, y, t, **s: torch.nn.functional.l1_loss(y, t, **s)),
    "binary_cross_entropy": (
        _draw_pair("bce"), F.binary_cross_entropy,
        lambda torch, p, t, **s: torch.nn.functional.binary_cross_entropy(
            p, t, **_torch_weights(torch, s))),
    "binary_cross_entropy_with_logits": (
        _draw_pair("bce_logits"), F.binary_cross_entropy_with_logits,
        lambda torch, z, t, **s: torch.nn.functional.binary_cross_entropy_with_logits(
            z, t, **_torch_weights(torch, s))),
    "cross_entropy": (_draw_classes(nll=False), lambda z, t, **s: F.softmax_cross_entropy(
        z, t, **s), _torch_cross_entropy),
    "nll_loss": (_draw_classes(nll=True), lambda x, t, **s: F.nll_loss(x, t, **s), _torch_nll),
}


def _settings_fn(fn, kwargs):
    return lambda *xs: fn(*xs, **kwargs)


def _first(fn, xs, u, create_graph):
    ts = [Tensor(x, requires_grad=True) for x in xs]
    grads = minigrad.grad(fn(*ts), ts, u, create_graph=create_graph, allow_unused=True)
    return [np.zeros_like(x) if g is None else g.data for g, x in zip(grads, xs)]


@pytest.mark.parametrize("name", MORE_OPS)
@given(data=st.data())
def test_gradgradcheck(name, data):
    """Second derivatives against central differences of the first, and the recorded
    gradient (backward_graph) equal to the array one (backward) to rounding."""
    draw, fn = MORE_OPS[name][:2]
    inputs, kwargs = draw(data)
    fn = _settings_fn(fn, kwargs)
    assert gradgradcheck(fn, *inputs)
    u = np.random.default_rng(2).standard_normal(fn(*(Tensor(x) for x in inputs)).shape)
    plain, recorded = (_first(fn, inputs, u, create_graph) for create_graph in (False, True))
    for a, b in zip(plain, recorded):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


# Smooth ops whose gradient is differentiated once more: gradgradcheck of the gradient checks
# the third derivative.
SMOOTH = ["sin", "cos", "elu", "softplus", "var", "std", "logsumexp", "mse_loss",
          "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy"]


@pytest.mark.parametrize("name", SMOOTH)
@given(data=st.data())
def test_third_derivatives(name, data):
    draw, fn = MORE_OPS[name][:2]
    inputs, kwargs = draw(data)
    u = np.random.default_rng(3).standard_normal(
        fn(*(Tensor(x) for x in inputs), **kwargs).shape)

    def gradient(*ts):
        if not ts[0].requires_grad:       # gradgradcheck's probe for the output's shape
            return Tensor(np.zeros(ts[0].shape))
        (g,) = minigrad.grad(fn(*ts, **kwargs), ts[0], u, create_graph=True)
        return g

    assert gradgradcheck(gradient, *inputs)


# ---------------------------------------------------------------------- against PyTorch
@pytest.mark.parametrize("name", MORE_OPS)
@given(data=st.data())
def test_hessian_vector_products_match_torch(name, data):
    """H·v of ⟨f(x), u⟩ with respect to every input, against torch.autograd.grad with
    create_graph=True, in float64 to 1e-9."""
    torch = pytest.importorskip("torch")
    draw, fn, torch_fn = MORE_OPS[name]
    xs, kwargs = draw(data)
    with minigrad.no_grad():
        out = fn(*(Tensor(x) for x in xs), **kwargs)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16), label="seed"))
    u = rng.standard_normal(out.shape)
    vs = [rng.standard_normal(x.shape) for x in xs]

    ts = [Tensor(x.copy(), requires_grad=True) for x in xs]
    first = minigrad.grad(fn(*ts, **kwargs), ts, u, create_graph=True, allow_unused=True)
    mine = [np.zeros_like(x) for x in xs]
    terms = [(g * v).sum() for g, v in zip(first, vs) if g is not None and g.requires_grad]
    if terms:
        hv = minigrad.grad(sum(terms[1:], terms[0]), ts, allow_unused=True)
        mine = [np.zeros_like(x) if h is None else h.data for h, x in zip(hv, xs)]

    txs = [torch.tensor(x, requires_grad=True) for x in xs]
    tfirst = torch.autograd.grad(torch_fn(torch, *txs, **kwargs), txs, torch.as_tensor(u),
                                 create_graph=True, allow_unused=True)
    total = sum((g * torch.as_tensor(v)).sum() for g, v in zip(tfirst, vs) if g is not None)
    theirs = [np.zeros_like(x) for x in xs]
    if torch.is_tensor(total) and total.requires_grad:
        thv = torch.autograd.grad(total, txs, allow_unused=True)
        theirs = [np.zeros_like(x) if h is None else h.detach().numpy(force=True)
                  for h, x in zip(thv, xs)]
    for g, tg in zip(first, tfirst):
        np.testing.assert_allclose(g.data, tg.detach().numpy(force=True), rtol=1e-9, atol=1e-12)
    for m, t in zip(mine, theirs):
        np.testing.assert_allclose(m, t, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------- kinks, ties, rows
@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_ties_split_the_second_derivative_like_the_first(name):
    """At x = y each side gets half of dL/dz, at every order: the Hessian of Σ max(x, y)² is
    ½ in each block (2 · ½ · ½ per pair), as PyTorch's double backward gives."""
    op = getattr(minigrad, name)
    x, y = np.array([1.0, -2.0, 0.5]), np.array([1.0, -2.0, 0.5])
    h = minigrad.autograd.hessian(lambda a, b: (op(a, b) ** 2).sum(), (x, y))
    for i in range(2):
        for j in range(2):
            np.testing.assert_array_equal(h[i][j].data, 0.5 * np.eye(3))
    torch = pytest.importorskip("torch")
    top = getattr(torch, name)
    th = torch.autograd.functional.hessian(lambda a, b: (top(a, b) ** 2).sum(),
                                           (torch.tensor(x), torch.tensor(y)))
    for i in range(2):
        for j in range(2):
            np.testing.assert_array_equal(h[i][j].data, th[i][j].numpy())


@pytest.mark.parametrize("name, fn", [
    ("abs", lambda a: a.abs()), ("clip", lambda a: a.clip(-0.5, 0.5)),
    ("leaky_relu", lambda a: F.leaky_relu(a, 0.2)), ("min", lambda a: a.min(axis=0)),
    ("l1_loss", lambda a: F.l1_loss(a, np.zeros(a.shape), reduction="sum")),
])
def test_piecewise_linear_ops_have_zero_curvature_through_their_mask(name, fn):
    """Off the kinks the Hessian of Σ op(x)² is 2·m², m the first derivative (0, ±1, a)."""
    x = np.array([-1.5, -0.25, 0.75, 2.0])
    h = minigrad.autograd.hessian(lambda a: (fn(a) ** 2).sum(), x).data
    jac = minigrad.autograd.jacobian(fn, x).data.reshape(-1, x.size)
    np.testing.assert_array_equal(h, 2 * jac.T @ jac)
    assert not minigrad.autograd.hessian(lambda a: fn(a).sum(), x).data.any()


@given(data=st.data())
def test_var_and_std_values_equal_numpy_and_constant_rows_have_no_spread(data):
    """Deviations from a reference element: NumPy's values within 1e-12 in float64, and a row
    of equal values gives exactly 0 (NumPy's x − mean(x) may leave ~1e-34)."""
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4), label="shape")
    value = data.draw(st.floats(-5, 5, allow_nan=False, allow_subnormal=False), label="value")
    x = data.draw(st.one_of(arrays(shape, low=-5, high=5),
                            st.just(np.full(shape, value))), label="x")
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    n = x.size if axis is None else shape[axis]
    ddof = data.draw(st.integers(0, min(1, n - 1)))
    for name in ("var", "std"):
        ours = getattr(Tensor(x), name)(axis=axis, ddof=ddof).data
        np.testing.assert_allclose(ours, getattr(np, name)(x, axis=axis, ddof=ddof),
                                   rtol=1e-12, atol=1e-12)
    constant = np.full(shape, value)
    assert not Tensor(constant).var(axis=axis).data.any()


@pytest.mark.parametrize("value", [0.1, 1 / 3, -7.3, 1e8 + 0.1])
def test_std_at_a_constant_row_has_zero_first_and_second_derivatives(value):
    """The kink of sqrt at zero spread: gradient 0 (PyTorch's choice) and, since the spread is
    exactly 0, the second derivative 0 too, not the 1/std³ of a rounding error."""
    x = Tensor(np.full((2, 3), value), requires_grad=True)
    (g,) = minigrad.grad(x.std(axis=1).sum(), x, create_graph=True)
    (h,) = minigrad.grad((g * np.arange(6.0).reshape(2, 3)).sum(), x)
    np.testing.assert_array_equal(g.data, 0.0)
    np.testing.assert_array_equal(h.data, 0.0)


def test_std_second_derivative_is_the_closed_form():
    """d²σ/dx_i dx_j = ((δ_ij − 1/n) − d_i d_j / (n σ²)) / (n σ) for ddof = 0."""
    x = np.array([0.3, -1.2, 2.0, 0.7])
    n, d = x.size, x - x.mean()
    sigma = x.std()
    expected = ((np.eye(n) - 1 / n) - np.outer(d, d) / (n * sigma ** 2)) / (n * sigma)
    h = minigrad.autograd.hessian(lambda a: a.std(), x).data
    np.testing.assert_allclose(h, expected, rtol=1e-12, atol=1e-15)


def test_logsumexp_row_of_minus_infinity_has_zero_recorded_gradient():
    x = Tensor(np.array([[-np.inf, -np.inf], [0.5, -np.inf]]), requires_grad=True)
    (g,) = minigrad.grad(x.logsumexp(axis=1).sum(), x, create_graph=True)
    np.testing.assert_array_equal(g.data, [[0.0, 0.0], [1.0, 0.0]])


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_binary_cross_entropy_at_a_clamped_log_stays_finite(p):
    """At p = 0 or 1 a log is clamped at −100 (a constant): every derivative finite, the
    recorded gradients equal to backward's."""
    probs = np.array([p, 0.4])
    target = np.array([0.3, 0.6])
    fn = lambda p, t: F.binary_cross_entropy(p, t)              # noqa: E731
    plain = _first(fn, [probs, target], np.array(1.0), create_graph=False)
    ps, ts = Tensor(probs, requires_grad=True), Tensor(target, requires_grad=True)
    first = minigrad.grad(fn(ps, ts), [ps, ts], create_graph=True)
    for g, a in zip(first, plain):
        np.testing.assert_array_equal(g.data, a)
    second = minigrad.grad(first[0].sum() + first[1].sum(), [ps, ts])
    assert all(np.isfinite(h.data).all() for h in second)


# ---------------------------------------------------------------------- structure
def test_broadcast_to_and_sum_to_are_one_class_each():
    assert grad_ops.BroadcastTo is join.BroadcastTo is ops.BroadcastTo
    assert grad_ops.SumTo is join.SumTo is ops.SumTo
    assert grad_ops.broadcast_to is join.broadcast_to
    assert grad_ops.sum_to is join.sum_to
    x = Tensor(np.arange(3.0), requires_grad=True)
    y = x.broadcast_to((2, 3))
    assert y.data.flags.writeable and not np.shares_memory(y.data, x.data)
    (g,) = minigrad.grad(x.sum() ** 2, x, create_graph=True)
    assert type(g.creator) is ops.BroadcastTo


def _op_classes():
    modules = [ops.activation, ops.arithmetic, ops.conv, ops.dropout, elementwise, grad_ops,
               join, ops.linear, loss, ops.pooling, ops.reduction, ops.shape, statistics]
    found = {cls for m in modules for cls in vars(m).values()
             if isinstance(cls, type) and issubclass(cls, Function) and cls is not Function}
    return sorted(found, key=lambda cls: cls.__name__)


@pytest.mark.parametrize("cls", _op_classes(), ids=lambda cls: cls.__name__)
def test_every_op_has_backward_graph(cls):
    """Every built-in op is differentiable any number of times; only the marker for users'
    ops without it (OnceDifferentiable) has none."""
    if cls is grad_ops.OnceDifferentiable:
        assert cls.backward_graph is Function.backward_graph
    else:
        assert cls.backward_graph is not Function.backward_graph


@pytest.mark.parametrize("name", MORE_OPS)
@given(data=st.data())
def test_first_order_never_runs_backward_graph(name, data):
    """backward() and grad() without create_graph stay on the array path."""
    def refuse(self, dy):
        raise AssertionError(f"{type(self).__name__}.backward_graph ran on the first-order path")

    draw, fn = MORE_OPS[name][:2]
    inputs, kwargs = draw(data)
    with contextlib.ExitStack() as patches:
        for cls in _op_classes():
            patches.enter_context(mock.patch.object(cls, "backward_graph", refuse))
        ts = [Tensor(x, requires_grad=True) for x in inputs]
        out = fn(*ts, **kwargs)
        out.backward(np.ones(out.shape))
        assert all(t.grad is not None for t in ts)
        ts = [Tensor(x, requires_grad=True) for x in inputs]
        assert all(g is not None for g in minigrad.grad(fn(*ts, **kwargs), ts,
                                                        np.ones(out.shape)))
