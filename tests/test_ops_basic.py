"""Every core op: forward against NumPy and gradcheck in float64 on hypothesis-drawn inputs."""

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minigrad import Tensor
from minigrad.testing import (
    arrays,
    broadcastable_shapes,
    check_op,
    distinct_arrays,
    shapes,
)

# name: (minigrad op, NumPy reference, keyword arguments of arrays() for each input)
BINARY_OPS = {
    "add": (lambda x, y: x + y, np.add, {}, {}),
    "sub": (lambda x, y: x - y, np.subtract, {}, {}),
    "mul": (lambda x, y: x * y, np.multiply, {}, {}),
    "div": (lambda x, y: x / y, np.divide, {}, {"avoid": (0.0,), "margin": 0.5}),
    "pow": (lambda x, y: x ** y, np.power, {"low": 0.5, "high": 2.5}, {"low": -2.0, "high": 2.0}),
}

UNARY_OPS = {
    "neg": (lambda x: -x, np.negative, {}),
    "exp": (lambda x: x.exp(), np.exp, {}),
    "log": (lambda x: x.log(), np.log, {"low": 0.2, "high": 3.0}),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, {"low": 0.2, "high": 3.0}),
    "tanh": (lambda x: x.tanh(), np.tanh, {}),
    "sigmoid": (lambda x: x.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), {}),
    "relu": (lambda x: x.relu(), lambda a: np.maximum(a, 0), {"avoid": (0.0,), "margin": 0.05}),
    "pow_scalar": (lambda x: x ** 3, lambda a: a ** 3, {}),
    "rpow_scalar": (lambda x: 2.0 ** x, lambda a: 2.0 ** a, {}),
    "rsub_scalar": (lambda x: 1.0 - x, lambda a: 1.0 - a, {}),
    "rdiv_scalar": (lambda x: 2.0 / x, lambda a: 2.0 / a, {"avoid": (0.0,), "margin": 0.5}),
}


@pytest.mark.parametrize("name", BINARY_OPS)
@given(data=st.data())
def test_binary_op_broadcasts_like_numpy(name, data):
    op, reference, x_kw, y_kw = BINARY_OPS[name]
    x_shape, y_shape = data.draw(broadcastable_shapes(max_dims=3, max_side=4), label="shapes")
    x = data.draw(arrays(x_shape, **x_kw), label="x")
    y = data.draw(arrays(y_shape, **y_kw), label="y")
    assert check_op(op, reference, x, y)


@pytest.mark.parametrize("name", UNARY_OPS)
@given(data=st.data())
def test_unary_op(name, data):
    op, reference, x_kw = UNARY_OPS[name]
    x = data.draw(arrays(shapes(max_dims=3, max_side=4), **x_kw), label="x")
    assert check_op(op, reference, x)


@st.composite
def matmul_operands(draw):
    """Shapes of X and Y for X @ Y: 1-D operands, plain matrices and broadcast batches."""
    batch_x, batch_y = draw(broadcastable_shapes(min_dims=0, max_dims=2, max_side=3))
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    x_shape = (k,) if draw(st.booleans()) else (*batch_x, n, k)
    y_shape = (k,) if draw(st.booleans()) else (*batch_y, k, m)
    return draw(arrays(x_shape)), draw(arrays(y_shape))


@given(operands=matmul_operands())
def test_matmul(operands):
    assert check_op(lambda x, y: x @ y, np.matmul, *operands)


@pytest.mark.parametrize("side", ["left", "right"])
def test_matmul_with_an_ndarray_operand(side):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    if side == "left":
        assert check_op(lambda t: x @ t, lambda a: x @ a, w)
    else:
        assert check_op(lambda t: t @ w, lambda a: a @ w, x)


@st.composite
def axis_for(draw, ndim):
    """None, an int (negative allowed) or a tuple of distinct axes valid for ``ndim`` axes."""
    choices = [st.none(),
               st.lists(st.integers(0, max(ndim - 1, 0)), unique=True, max_size=ndim)
               .map(lambda axes: tuple(a - ndim if a % 2 else a for a in axes))]
    if ndim:
        choices.append(st.integers(-ndim, ndim - 1))
    return draw(st.one_of(choices))


REDUCTIONS = {
    "sum": (lambda t, axis, keepdims: t.sum(axis=axis, keepdims=keepdims), np.sum),
    "mean": (lambda t, axis, keepdims: t.mean(axis=axis, keepdims=keepdims), np.mean),
    "max": (lambda t, axis, keepdims: t.max(axis=axis, keepdims=keepdims), np.max),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data(), keepdims=st.booleans())
def test_reduction(name, data, keepdims):
    op, reference = REDUCTIONS[name]
    shape = data.draw(shapes(max_dims=4, max_side=4), label="shape")
    axis = data.draw(axis_for(len(shape)), label="axis")
    # max has no gradient at ties: keep the elements apart by more than the gradcheck step
    x = data.draw(distinct_arrays(shape, low=-10.0, high=10.0, min_gap=0.01) if name == "max"
                  else arrays(shape), label="x")
    assert check_op(lambda t: op(t, axis, keepdims),
                    lambda a: reference(a, axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("keepdims", [False, True])
def test_max_splits_the_gradient_between_ties(keepdims):
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    x.max(axis=1, keepdims=keepdims).backward(np.array([[6.0], [3.0]]).reshape(
        (2, 1) if keepdims else (2,)))
    np.testing.assert_array_equal(x.grad, [[0.0, 3.0, 3.0], [1.0, 1.0, 1.0]])


@st.composite
def reshape_targets(draw):
    """A shape and another with the same number of elements (one axis possibly -1)."""
    shape = draw(shapes(max_dims=4, max_side=4))
    target = list(draw(st.permutations(shape)))
    for _ in range(draw(st.integers(0, 2))):
        target.insert(draw(st.integers(0, len(target))), 1)
    if target and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return shape, tuple(target)


@given(case=reshape_targets(), data=st.data())
def test_reshape(case, data):
    shape, target = case
    x = data.draw(arrays(shape), label="x")
    assert check_op(lambda t: t.reshape(target), lambda a: a.reshape(target), x)
    assert check_op(lambda t: t.reshape(*target), lambda a: a.reshape(target), x)


@given(x=arrays(shapes(max_dims=4, max_side=4)))
def test_flatten(x):
    assert check_op(lambda t: t.flatten(), lambda a: a.reshape(-1), x)


@st.composite
def transpose_axes(draw):
    shape = draw(shapes(max_dims=4, max_side=4))
    axes = draw(st.one_of(st.none(), st.permutations(range(len(shape)))))
    if axes is not None and draw(st.booleans()):
        axes = [a - len(shape) for a in axes]  # negative axes mean the same permutation
    return shape, axes


@given(case=transpose_axes(), data=st.data())
def test_transpose(case, data):
    shape, axes = case
    x = data.draw(arrays(shape), label="x")
    if axes is None:
        assert check_op(lambda t: t.transpose(), np.transpose, x)
        assert check_op(lambda t: t.T, lambda a: a.T, x)
    else:
        assert check_op(lambda t: t.transpose(*axes), lambda a: np.transpose(a, axes), x)
        assert check_op(lambda t: t.transpose(tuple(axes)), lambda a: np.transpose(a, axes), x)


@st.composite
def indexed(draw):
    """An array and an index into it: basic (slices, ints, None, ...), integer arrays with
    repeats, or a boolean mask."""
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    kind = draw(st.sampled_from(["basic", "integer arrays", "mask", "mask on leading axis"]))
    if kind == "basic":
        index = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    elif kind == "integer arrays":
        index = draw(hnp.integer_array_indices(shape, result_shape=shapes(max_dims=2,
                                                                           max_side=5)))
    elif kind == "mask":
        index = draw(hnp.arrays(np.bool_, shape))
    else:
        index = (draw(hnp.arrays(np.bool_, shape[:1])), Ellipsis)
    return draw(arrays(shape)), index


@given(case=indexed())
def test_getitem(case):
    x, index = case
    assert check_op(lambda t: t[index], lambda a: a[index], x)


def test_getitem_repeated_indices_accumulate():
    x = Tensor(np.zeros(4), requires_grad=True)
    x[np.array([2, 0, 2, 2])].backward(np.array([1.0, 10.0, 100.0, 1000.0]))
    np.testing.assert_array_equal(x.grad, [10.0, 0.0, 1101.0, 0.0])


@st.composite
def _row_picks(draw):
    """(shape, index, values): an integer array of rows, some picked many times, negative
    entries too, and the values to add, with signed zeros among them."""
    rows = draw(st.integers(1, 6))
    shape = (rows, *draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
    picks = draw(st.lists(st.integers(-rows, rows - 1), min_size=2, max_size=60))
    index = np.array(picks).reshape(draw(st.sampled_from([(-1,), (2, -1)]))
                                    if len(picks) % 2 == 0 else (-1,))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    values = draw(hnp.arrays(dtype, index.shape + shape[1:],
                             elements=st.one_of(st.just(-0.0), st.floats(-1e3, 1e3, width=32))))
    return shape, index, values


@given(case=_row_picks())
def test_scatter_add_gives_np_add_at_bits(case):
    from minigrad.ops import shape as shape_ops

    shape, index, values = case
    want = np.zeros(shape, values.dtype)
    np.add.at(want, index, values)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(shape_ops, "_PASSES_FROM", 0)      # the passes even on small draws
        for most in (32, 2):                         # and np.add.at past the most picks
            m.setattr(shape_ops, "_MAX_PASSES", most)
            got = shape_ops.scatter_add(shape, index, values)
            assert got.dtype == want.dtype
            assert got.tobytes() == want.tobytes()


def test_getitem_rows_backward_takes_the_passes_and_accumulates():
    rng = np.random.default_rng(0)
    index = rng.integers(-50, 50, 300)                   # repeats, negative rows
    x = Tensor(rng.standard_normal((50, 64)), requires_grad=True)
    dy = rng.standard_normal((300, 64))
    x[index].backward(dy)
    want = np.zeros((50, 64))
    np.add.at(want, index, dy)
    assert x.grad.tobytes() == want.tobytes()


@given(x=arrays(shapes(min_dims=0, max_dims=3), low=-3.0, high=3.0),
       c=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, -1.0, -0.5, 2.5]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_pow_by_one_exponent_has_the_general_formula_s_bits(x, c, dtype):
    """dL/dx of x ** c for one exponent c: the same bits as dz · where(c = 0, 0, c·x^(c−1))."""
    x = x.astype(dtype)
    t = Tensor(x, requires_grad=True)
    with np.errstate(all="ignore"):     # 0 ** −1, (−1) ** 0.5, tiny x ** −2 overflowing
        z = t ** c
        dz = np.linspace(-2, 2, max(z.data.size, 1)).reshape(z.shape).astype(dtype)
        z.backward(dz)
        cc = np.asarray(c, dtype)
        want = dz * np.where(cc == 0, np.zeros((), dtype), cc * x ** (cc - 1))
    # A gradient has its leaf's dtype. (NumPy 1.x forms 0-d arrays' c − 1 in float64, in the
    # op as here, and the tape casts the gradient to the leaf's dtype.)
    want = np.asarray(want).astype(dtype)
    assert t.grad.dtype == x.dtype and t.grad.shape == want.shape
    assert np.asarray(t.grad).tobytes() == want.tobytes()


def test_getitem_with_tensor_and_list_indices():
    x = Tensor(np.arange(5.0), requires_grad=True)
    idx = Tensor(np.array([4, 4, 1]))
    y = x[idx] + x[[0, 0, 3]]
    np.testing.assert_array_equal(y.data, [4.0, 4.0, 4.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 1.0, 0.0, 1.0, 2.0])


@pytest.mark.parametrize("op, name", [
    (lambda x, y: x + y, "add"),
    (lambda x, y: x - y, "sub"),
    (lambda x, y: x * y, "mul"),
    (lambda x, y: x / y, "div"),
    (lambda x, y: x ** y, "pow"),
])
def test_incompatible_shapes_name_the_op_and_the_shapes(op, name):
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=rf"{name}.*\(2, 3\).*\(4,\)"):
        op(x, np.ones(4))


@pytest.mark.parametrize("x_shape, y_shape, pattern", [
    ((2, 3), (4, 2), r"matmul.*\(2, 3\).*\(4, 2\)"),
    ((3,), (2,), r"matmul.*\(3,\).*\(2,\)"),
    ((), (2,), r"matmul.*\(\).*\(2,\)"),
])
def test_matmul_shape_errors(x_shape, y_shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        Tensor(np.ones(x_shape), requires_grad=True) @ Tensor(np.ones(y_shape))


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
@pytest.mark.parametrize("axis, pattern", [
    (2, r"axis 2 is out of range.*\(2, 3\)"),
    (-3, r"axis -3 is out of range.*\(2, 3\)"),
    ((0, 0), r"repeats an axis"),
    ((0, -2), r"repeats an axis"),
    (1.5, r"axis must be an int"),
    ("0", r"axis must be an int"),
    ((0, None), r"axis must be an int"),
])
def test_reductions_reject_unknown_axes(reduce, axis, pattern):
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=rf"{reduce}: .*{pattern}"):
        getattr(x, reduce)(axis=axis)


@pytest.mark.parametrize("make, pattern", [
    (lambda x: x.reshape(4, 2), r"reshape.*\(2, 3\).*\(4, 2\)"),
    (lambda x: x.transpose(0, 0), r"transpose.*\(0, 0\).*\(2, 3\)"),
    (lambda x: x.transpose(0, 1, 2), r"transpose.*\(2, 3\)"),
])
def test_shape_op_errors(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make(Tensor(np.ones((2, 3)), requires_grad=True))


def test_getitem_out_of_range_names_the_shape():
    with pytest.raises(IndexError, match=r"getitem.*\(2, 3\)"):
        Tensor(np.ones((2, 3)))[5]


@pytest.mark.parametrize("name", ["add", "mul", "div", "pow"])
def test_binary_ops_skip_gradients_nobody_needs(name):
    """An input that does not require grad gets no gradient, and the other one still does."""
    op = BINARY_OPS[name][0]
    x = Tensor(np.full((2, 3), 1.5), requires_grad=True)
    c = Tensor(np.full((3,), 2.0))
    op(x, c).sum().backward()
    assert x.grad is not None and x.grad.shape == (2, 3)
    assert c.grad is None


# ------------------------------------------- sums and means by products with a vector of ones
@contextlib.contextmanager
def sums_by_products():
    """Sum and Mean on their fast path for every size (with the layouts it takes)."""
    from minigrad.ops import reduction

    saved = reduction._MIN_VALUES, reduction._MIN_ROW_VALUES
    reduction._MIN_VALUES = reduction._MIN_ROW_VALUES = 1
    try:
        yield reduction
    finally:
        reduction._MIN_VALUES, reduction._MIN_ROW_VALUES = saved


@pytest.mark.parametrize("name", ["sum", "mean"])
@given(data=st.data(), keepdims=st.booleans())
def test_sum_and_mean_by_products_equal_numpys(name, data, keepdims):
    """Any axes of x in C order, channels last or another permutation of its memory, float64
    and float32: values and shapes as NumPy's sum or mean of the same array, to the rounding
    of a sum in another order (relative to Σ|x| along the axes), and the gradient."""
    op, reference = REDUCTIONS[name]
    shape = data.draw(shapes(min_dims=1, max_dims=4, max_side=5), label="shape")
    axis = data.draw(axis_for(len(shape)), label="axis")
    dtype = data.draw(st.sampled_from([np.float64, np.float32]), label="dtype")
    perm = data.draw(st.permutations(range(len(shape))), label="memory order")
    x = np.ascontiguousarray(data.draw(arrays(shape), label="x").astype(dtype).transpose(perm))
    x = x.transpose(np.argsort(perm))                       # the same values, laid out by perm
    with sums_by_products():
        got = op(Tensor(x), axis, keepdims).data
    expected = reference(x, axis=axis, keepdims=keepdims)
    bound = reference(np.abs(x).astype(np.float64), axis=axis, keepdims=keepdims)
    eps = np.finfo(dtype).eps
    assert got.dtype == dtype and got.shape == np.shape(expected)
    assert np.all(np.abs(got - expected) <= 8 * eps * bound + 1e-300)
    if dtype == np.float64:
        with sums_by_products():
            assert check_op(lambda t: op(t, axis, keepdims),
                            lambda a: reference(a, axis=axis, keepdims=keepdims),
                            np.ascontiguousarray(x))


@pytest.mark.parametrize("layout", ["contiguous", "channels-last"])
@pytest.mark.parametrize("mean", [0.0, 1e4])
def test_float32_sums_by_products_are_as_accurate_as_numpys(layout, mean):
    """float32 (64, 32, 32, 32) around 0 and around 1e4, C order or channels last, summed
    over (2, 3), against float64: in float32 ulps of Σ|x| (the scale of a sum's rounding), no
    further off than NumPy's sum of the same array, or than half an ulp (the rounding of the
    result itself, which both make). The products' pieces of 128 values are added up in
    float64; the channels-last sums are column sums, where NumPy adds the rows one after the
    other."""
    from minigrad.ops import reduction

    x = (mean + np.random.default_rng(0).standard_normal((64, 32, 32, 32))).astype(np.float32)
    if layout == "channels-last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    want = x.astype(np.float64).sum(axis=(2, 3))
    ulp = np.spacing(np.abs(x).sum(axis=(2, 3), dtype=np.float64).astype(np.float32))
    numpys = np.max(np.abs(x.sum(axis=(2, 3)) - want) / ulp)
    assert x.size >= reduction._MIN_ROW_VALUES
    assert reduction._sum_by_products(x, (2, 3)) is not None
    got = Tensor(x).sum(axis=(2, 3)).data
    assert np.max(np.abs(got - want) / ulp) <= max(numpys, 0.5)


def test_sums_by_products_pass_layouts_they_do_not_take_to_numpy():
    """A strided x, or axes that do not lie together in memory, or kept axes out of order:
    NumPy's sum, the same values."""
    x = np.random.default_rng(1).standard_normal((4, 6, 5))
    cases = [(x[:, ::2], (1, 2)), (x, (0, 2)),
             (np.ascontiguousarray(x.transpose(2, 1, 0)).transpose(2, 1, 0), (1,))]
    with sums_by_products() as reduction:
        for a, axes in cases:
            assert reduction._sum_by_products(a, axes) is None
            np.testing.assert_array_equal(Tensor(a).sum(axis=axes).data, a.sum(axis=axes))
