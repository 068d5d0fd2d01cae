"""The second set of tensor ops: forward against NumPy, gradcheck in float64 on drawn shapes,
adjoint tests of the linear ops, ties and kinks, errors, and agreement with PyTorch."""

import re

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minigrad
from minigrad import Tensor
from minigrad.testing import arrays, broadcastable_shapes, check_op, gradcheck, shapes


@st.composite
def array_and_axes(draw, min_dims=1):
    """An array and an axis argument for it: None, an int or a tuple (negatives allowed)."""
    x = draw(arrays(shapes(min_dims=min_dims, max_dims=3, max_side=4)))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return x, None
    if kind == "int":
        return x, draw(st.integers(-x.ndim, x.ndim - 1))
    axes = draw(st.lists(st.integers(0, x.ndim - 1), min_size=1, max_size=x.ndim, unique=True))
    return x, tuple(axes)


# name: (minigrad op, NumPy reference, keyword arguments of arrays())
UNARY = {
    "abs": (lambda t: t.abs(), np.abs, {"avoid": (0.0,), "margin": 0.05}),
    "abs_builtin": (lambda t: abs(t), np.abs, {"avoid": (0.0,), "margin": 0.05}),
    "clip": (lambda t: t.clip(-1.0, 0.5), lambda a: np.clip(a, -1.0, 0.5),
             {"avoid": (-1.0, 0.5), "margin": 0.05}),
    "clip_min": (lambda t: t.clip(min=0.2), lambda a: np.maximum(a, 0.2),
                 {"avoid": (0.2,), "margin": 0.05}),
    "clip_max": (lambda t: t.clip(max=0.2), lambda a: np.minimum(a, 0.2),
                 {"avoid": (0.2,), "margin": 0.05}),
    "sin": (lambda t: t.sin(), np.sin, {}),
    "cos": (lambda t: t.cos(), np.cos, {}),
}


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data())
def test_unary_op(name, data):
    op, reference, kw = UNARY[name]
    x = data.draw(arrays(shapes(max_dims=3, max_side=4), **kw), label="x")
    assert check_op(op, reference, x)


@pytest.mark.parametrize("name, reference", [("maximum", np.maximum), ("minimum", np.minimum)])
@given(data=st.data())
def test_maximum_minimum_broadcast(name, reference, data):
    x_shape, y_shape = data.draw(broadcastable_shapes(max_dims=3, max_side=4), label="shapes")
    x = data.draw(arrays(x_shape), label="x")
    y = data.draw(arrays(y_shape), label="y")
    both = np.broadcast_arrays(x, y)
    assume(np.all(np.abs(both[0] - both[1]) >= 0.05))   # ties are tested below
    assert check_op(getattr(minigrad, name), reference, x, y)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_split_ties(name):
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = Tensor(np.array([1.0, 5.0, 0.0]), requires_grad=True)
    getattr(minigrad, name)(x, y).backward(np.array([2.0, 1.0, 1.0]))
    wins = np.array([0.0, 0.0, 1.0]) if name == "maximum" else np.array([0.0, 1.0, 0.0])
    np.testing.assert_array_equal(x.grad, [1.0, *wins[1:]])
    np.testing.assert_array_equal(y.grad, [1.0, *(1 - wins[1:])])


@given(data=st.data())
def test_where(data):
    c_shape, x_shape, y_shape = data.draw(broadcastable_shapes(3, max_dims=3, max_side=4))
    cond = data.draw(st.lists(st.booleans(), min_size=int(np.prod(c_shape)),
                              max_size=int(np.prod(c_shape)))).copy()
    cond = np.asarray(cond, bool).reshape(c_shape)
    x, y = data.draw(arrays(x_shape)), data.draw(arrays(y_shape))
    assert check_op(lambda a, b: minigrad.where(cond, a, b),
                    lambda a, b: np.where(cond, a, b), x, y)


# name: (Tensor method, NumPy reference, extra keywords)
REDUCTIONS = {
    "var": (lambda t, **k: t.var(**k), np.var, {}),
    "var_ddof1": (lambda t, **k: t.var(ddof=1, **k), lambda a, **k: np.var(a, ddof=1, **k), {}),
    "std": (lambda t, **k: t.std(**k), np.std, {}),
    "logsumexp": (lambda t, **k: t.logsumexp(**k),
                  lambda a, axis, keepdims: np.log(np.exp(a).sum(axis=axis, keepdims=keepdims)),
                  {}),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("keepdims", [False, True])
@given(drawn=array_and_axes())
def test_reduction(name, keepdims, drawn):
    x, axis = drawn
    op, reference, _ = REDUCTIONS[name]
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    if name != "logsumexp" and n < 2:
        return   # a variance of one element has no spread (ddof=1: an error, tested below)
    if name == "std":   # the kink of sqrt: zero spread has no gradient
        assume(np.all(np.var(x, axis=axis) > 1e-2))
    assert check_op(lambda t: op(t, axis=axis, keepdims=keepdims),
                    lambda a: reference(a, axis=axis, keepdims=keepdims), x, rtol=1e-10)


@pytest.mark.parametrize("keepdims", [False, True])
@given(drawn=array_and_axes())
def test_min_without_ties(keepdims, drawn):
    x, axis = drawn
    x = np.argsort(np.argsort(x, axis=None)).reshape(x.shape) * 0.1 + x * 1e-3  # distinct
    assert check_op(lambda t: t.min(axis=axis, keepdims=keepdims),
                    lambda a: np.min(a, axis=axis, keepdims=keepdims), x)


def test_min_splits_the_gradient_between_ties():
    x = Tensor(np.array([[1.0, 1.0, 3.0], [2.0, 0.0, 0.0]]), requires_grad=True)
    x.min(axis=1).backward(np.array([4.0, 6.0]))
    np.testing.assert_array_equal(x.grad, [[2.0, 2.0, 0.0], [0.0, 3.0, 3.0]])


def test_logsumexp_is_stable_and_handles_minus_infinity():
    x = Tensor(np.array([[1e4, 1e4], [-np.inf, -np.inf]]), requires_grad=True)
    y = x.logsumexp(axis=1)
    np.testing.assert_allclose(y.data, [1e4 + np.log(2), -np.inf])
    y[0].backward()
    np.testing.assert_allclose(x.grad, [[0.5, 0.5], [0.0, 0.0]])


# ---------------------------------------------------------------- shape and linear ops
@st.composite
def concat_inputs(draw):
    base = list(draw(shapes(min_dims=1, max_dims=3, max_side=3)))
    axis = draw(st.integers(-len(base), len(base) - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    xs = []
    for n in sizes:
        shape = list(base)
        shape[axis] = n
        xs.append(draw(arrays(tuple(shape))))
    return xs, axis


@st.composite
def stack_inputs(draw):
    shape = draw(shapes(max_dims=3, max_side=3))
    k = draw(st.integers(1, 3))
    return [draw(arrays(shape)) for _ in range(k)], draw(st.integers(-len(shape) - 1, len(shape)))


@st.composite
def pad_inputs(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3, max_side=3)))
    form = draw(st.sampled_from(["int", "pair", "per_axis"]))
    side = st.integers(0, 2)
    if form == "int":
        width = draw(side)
    elif form == "pair":
        width = (draw(side), draw(side))
    else:
        width = tuple((draw(side), draw(side)) for _ in range(x.ndim))
    return x, width, draw(st.floats(-2, 2))


@st.composite
def split_inputs(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3, max_side=5)))
    axis = draw(st.integers(-x.ndim, x.ndim - 1))
    n = x.shape[axis]
    if draw(st.booleans()):
        return x, draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0])), axis
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
    return x, cuts, axis


@st.composite
def broadcast_inputs(draw):
    small, big = draw(broadcastable_shapes(max_dims=3, max_side=4))
    target = np.broadcast_shapes(small, big)
    return draw(arrays(small)), target


@st.composite
def transpose_inputs(draw):
    x = draw(arrays(shapes(max_dims=4, max_side=3)))
    return x, tuple(draw(st.permutations(range(x.ndim))))


@st.composite
def getitem_inputs(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3, max_side=4)))
    kind = draw(st.sampled_from(["slice", "int_array", "bool"]))
    if kind == "slice":
        start = draw(st.integers(-x.shape[0], x.shape[0]))
        return x, (slice(start, None, draw(st.integers(1, 2))),)
    if kind == "int_array":   # repeated indices: the adjoint adds them up
        return x, np.asarray(draw(st.lists(st.integers(0, x.shape[0] - 1), min_size=1,
                                           max_size=6)))
    return x, np.asarray(draw(st.lists(st.booleans(), min_size=x.shape[0],
                                       max_size=x.shape[0])))


# name: (strategy of (x or xs, *settings), the op as a function of Tensors, NumPy reference,
#        whether the first drawn value is a list of inputs)
LINEAR = {
    "concatenate": (concat_inputs(), lambda xs, axis: minigrad.concatenate(xs, axis),
                    lambda xs, axis: np.concatenate(xs, axis), True),
    "stack": (stack_inputs(), lambda xs, axis: minigrad.stack(xs, axis),
              lambda xs, axis: np.stack(xs, axis), True),
    "split": (split_inputs(),
              lambda x, ios, axis: minigrad.concatenate(
                  [p.reshape(-1) for p in minigrad.split(x, ios, axis)] + [x.reshape(-1)[:0]]),
              lambda x, ios, axis: np.concatenate(
                  [p.reshape(-1) for p in np.split(x, ios, axis)]), False),
    "pad": (pad_inputs(), lambda x, w, v: minigrad.pad(x, w, v),
            lambda x, w, v: np.pad(x, w, constant_values=v), False),
    "broadcast_to": (broadcast_inputs(), lambda x, shape: x.broadcast_to(shape),
                     lambda x, shape: np.broadcast_to(x, shape), False),
    "transpose": (transpose_inputs(), lambda x, axes: x.transpose(axes),
                  lambda x, axes: np.transpose(x, axes), False),
    "getitem": (getitem_inputs(), lambda x, index: x[index], lambda x, index: x[index], False),
}


def _call(name, tensors, settings):
    _, op, _, is_list = LINEAR[name]
    return op(list(tensors), *settings) if is_list else op(tensors[0], *settings)


@pytest.mark.parametrize("name", LINEAR)
@given(data=st.data())
def test_linear_op_forward_and_gradcheck(name, data):
    strategy, op, reference, is_list = LINEAR[name]
    first, *settings = data.draw(strategy)
    xs = first if is_list else [first]
    expected = reference(xs, *settings) if is_list else reference(first, *settings)
    out = _call(name, [Tensor(x) for x in xs], settings)
    np.testing.assert_array_equal(out.data, expected)
    assert gradcheck(lambda *ts: _call(name, ts, settings), *xs)


@pytest.mark.parametrize("name", [*LINEAR, "sum_to"])
@given(data=st.data())
def test_linear_op_backward_is_the_adjoint(name, data):
    """⟨A x, v⟩ = ⟨x, Aᵀ v⟩ with Aᵀ v the backward of the op at the upstream gradient v."""
    if name == "sum_to":
        small, big = data.draw(broadcastable_shapes(max_dims=3, max_side=4))
        target = np.broadcast_shapes(small, big)
        xs, run = [data.draw(arrays(target))], lambda ts: ts[0].sum_to(small)
    else:
        first, *settings = data.draw(LINEAR[name][0])
        if name == "pad":
            settings[-1] = 0.0   # linear (not affine) only when padding with zeros
        xs = first if LINEAR[name][3] else [first]
        run = lambda ts: _call(name, ts, settings)  # noqa: E731
    tensors = [Tensor(x, requires_grad=True) for x in xs]
    y = run(tensors)
    v = data.draw(arrays(y.shape), label="v")
    y.backward(v)
    lhs = np.vdot(y.data, v)
    rhs = sum(np.vdot(x, t.grad) for x, t in zip(xs, tensors))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


@given(drawn=broadcast_inputs())
def test_sum_to_is_unbroadcast_and_gradchecks(drawn):
    x, target = drawn
    big = np.broadcast_to(x, target) * 1.5
    assert check_op(lambda t: t.sum_to(x.shape), lambda a: minigrad.unbroadcast(a, x.shape), big)


@given(x=arrays(shapes(max_dims=4, max_side=3)), data=st.data())
def test_squeeze_and_expand_dims(x, data):
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim))
    assert check_op(lambda t: t.expand_dims(axis), lambda a: np.expand_dims(a, axis), x)
    assert check_op(lambda t: t.unsqueeze(axis).squeeze(axis), lambda a: a, x)
    assert check_op(lambda t: t.squeeze(), np.squeeze, x)


def test_argmin_and_argmax_are_plain_arrays():
    t = Tensor([[3.0, 1.0], [0.0, 5.0]])
    np.testing.assert_array_equal(t.argmin(axis=1), [1, 0])
    assert type(t.argmax()) is np.int64 or isinstance(t.argmax(), np.integer)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("make, pattern", [
    (lambda: minigrad.concatenate([np.zeros((2, 3)), np.zeros((2, 4))]),
     "concatenate: input 1 has shape (2, 4) but input 0 has shape (2, 3); all shapes must "
     "match except along axis 0"),
    (lambda: minigrad.concatenate([np.zeros((2, 3)), np.zeros(3)], axis=1),
     "concatenate: input 1 has shape (3,) but input 0 has shape (2, 3)"),
    (lambda: minigrad.concatenate([]), "concatenate: need at least one tensor"),
    (lambda: minigrad.concatenate(Tensor([1.0])), "concatenate: expected a list or tuple"),
    (lambda: minigrad.stack([np.zeros(2), np.zeros(3)]),
     "stack: input 1 has shape (3,) but input 0 has shape (2,); all shapes must be equal"),
    (lambda: minigrad.stack([np.zeros(2)], axis=2),
     "stack: axis 2 is out of range for inputs of shapes (2,)"),
    (lambda: minigrad.where(np.array([True, False]), np.zeros(3), 1.0),
     "where: shapes (2,), (3,), () cannot be broadcast together"),
    (lambda: minigrad.where(np.array([1, 0]), np.zeros(2), 1.0),
     "where: condition must be a boolean array, got dtype int64"),
    (lambda: minigrad.maximum(np.zeros(2), np.zeros(3)),
     "maximum: shapes (2,), (3,) cannot be broadcast together"),
    (lambda: minigrad.pad(np.zeros((2, 2)), ((1, 1), (1, 1), (1, 1))), "pad: pad_width must be"),
    (lambda: minigrad.pad(np.zeros(2), -1), "pad: pad_width must be non-negative"),
    (lambda: minigrad.split(np.zeros(5), 2), "split: 2 sections do not divide axis 0 of size 5"),
    (lambda: Tensor(np.zeros((2, 3))).squeeze(1), "squeeze: axis 1 has size 3, not 1"),
    (lambda: Tensor(np.zeros(2)).expand_dims(3), "expand_dims: axis 3 is out of range"),
    (lambda: Tensor(np.zeros(3)).broadcast_to((2, 2)),
     "broadcast_to: a tensor of shape (3,) cannot be broadcast to (2, 2)"),
    (lambda: Tensor(np.zeros((2, 3))).sum_to((4,)),
     "sum_to: a tensor of shape (2, 3) cannot be summed to (4,)"),
    (lambda: Tensor(np.zeros(3)).var(ddof=3), "var: ddof=3 leaves no degrees of freedom for 3"),
    (lambda: Tensor(np.zeros(3)).clip(), "clip: give min, max or both"),
    (lambda: Tensor(np.zeros(3)).clip(2, 1), "clip: min=2 is greater than max=1"),
    (lambda: Tensor(np.zeros(0)).min(), "min: the tensor is empty"),
    (lambda: Tensor(np.zeros(2)).min(axis=1), "min: axis 1 is out of range"),
])
def test_bad_input_names_the_op_and_the_shapes(make, pattern):
    with pytest.raises((ValueError, TypeError), match=re.escape(pattern)):
        make()


# ---------------------------------------------------------------- PyTorch
def _torch_ops(torch):
    return {
        "abs": (lambda t: t.abs(), lambda p: p.abs()),
        "clip": (lambda t: t.clip(-0.5, 0.5), lambda p: p.clamp(-0.5, 0.5)),
        "sin": (lambda t: t.sin(), lambda p: p.sin()),
        "cos": (lambda t: t.cos(), lambda p: p.cos()),
        "min": (lambda t: t.min(axis=-1), lambda p: p.amin(dim=-1)),
        "var": (lambda t: t.var(axis=-1, ddof=1), lambda p: p.var(dim=-1, correction=1)),
        "std": (lambda t: t.std(axis=0), lambda p: p.std(dim=0, correction=0)),
        "logsumexp": (lambda t: t.logsumexp(axis=-1), lambda p: p.logsumexp(dim=-1)),
        "maximum": (lambda t: minigrad.maximum(t, t[::-1]), lambda p: torch.maximum(p, p.flip(0))),
        "minimum": (lambda t: minigrad.minimum(t, t[::-1]), lambda p: torch.minimum(p, p.flip(0))),
        "concatenate": (lambda t: minigrad.concatenate([t, t * 2], axis=-1),
                        lambda p: torch.cat([p, p * 2], dim=-1)),
        "stack": (lambda t: minigrad.stack([t, t.sin()], axis=1),
                  lambda p: torch.stack([p, p.sin()], dim=1)),
        "pad": (lambda t: minigrad.pad(t, 1, value=0.5),
                lambda p: torch.nn.functional.pad(p, (1, 1) * p.ndim, value=0.5)),
        "where": (lambda t: minigrad.where(t.data > 0, t, t * t),
                  lambda p: torch.where(p > 0, p, p * p)),
        "broadcast_to": (lambda t: t.broadcast_to((2, *t.shape)), lambda p: p.expand(2, *p.shape)),
    }


@pytest.mark.parametrize("name", ["abs", "clip", "sin", "cos", "min", "var", "std", "logsumexp",
                                  "maximum", "minimum", "concatenate", "stack", "pad", "where",
                                  "broadcast_to"])
@given(x=arrays(shapes(min_dims=2, max_dims=3, min_side=2, max_side=4)))
def test_matches_torch(name, x):
    torch = pytest.importorskip("torch")
    if name == "std":   # the kink of sqrt, as in test_reduction: values an ulp apart have a
        # spread of 1e-16, whose gradient is ±1/n here, while PyTorch's variance of them
        # rounds to 0 and gives none
        assume(np.all(np.var(x, axis=0) > 1e-2))
    ours, theirs = _torch_ops(torch)[name]
    tx, px = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, py = ours(tx), theirs(px)
    dy = np.random.default_rng(3).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, py.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(tx.grad, px.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_std_gradient_is_zero_without_spread():
    x = Tensor(np.array([[2.0, 2.0], [1.0, 3.0]]), requires_grad=True)
    x.std(axis=1).backward(np.ones(2))
    np.testing.assert_allclose(x.grad, [[0.0, 0.0], [-0.5, 0.5]])


@pytest.mark.parametrize("name", ["abs", "clip", "min", "maximum", "minimum", "std"])
def test_kinks_and_ties_match_torch(name):
    """Exactly at the kinks (0 for abs, the bounds for clip) and at ties, from both sides."""
    torch = pytest.importorskip("torch")
    ours, theirs = _torch_ops(torch)[name]
    x = np.array([[-0.5, 0.0, 0.5, 0.5], [0.5, -0.5 - 1e-3, 0.0, 0.5],   # last column: no
                  [0.5 + 1e-3, 1.0, 1.0, 0.5], [1.0, 1.0, 1.0, 0.5]])    # spread (std)
    tx, px = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, py = ours(tx), theirs(px)
    dy = np.random.default_rng(7).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, py.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(tx.grad, px.grad.numpy(), rtol=1e-12, atol=1e-15)
