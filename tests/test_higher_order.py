"""Gradients of gradients: every op's backward_graph, minigrad.grad, minigrad.autograd and
gradgradcheck, checked numerically and against PyTorch's double backward in float64."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_higher_order_ops import MORE_OPS

import minigrad
import minigrad.functional as F
from minigrad import Function, Tensor, autograd
from minigrad.ops import AvgPool2d, Conv2d, MaxPool2d, grad_ops
from minigrad.testing import (
    GradcheckError,
    arrays,
    broadcastable_shapes,
    conv_settings,
    distinct_arrays,
    gradgradcheck,
    pool_settings,
    shapes,
)

# ------------------------------------------------------------------------------ the op table
# name: (draw(data) -> (inputs, settings), minigrad fn(*tensors, **settings),
#        torch fn(torch, *tensors, **settings) or None). Every built-in op appears here; the
# three property tests below run over all of them.


def _binary(x_kw=None, y_kw=None):
    def draw(data):
        xs, ys = data.draw(broadcastable_shapes(max_dims=3, max_side=3), label="shapes")
        return [data.draw(arrays(xs, **(x_kw or {})), label="x"),
                data.draw(arrays(ys, **(y_kw or {})), label="y")], {}
    return draw


def _unary(**kw):
    def draw(data):
        return [data.draw(arrays(shapes(max_dims=3, max_side=3), **kw), label="x")], {}
    return draw


def _reduction(distinct=False):
    def draw(data):
        shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3), label="shape")
        x = data.draw(distinct_arrays(shape, min_gap=0.05) if distinct else arrays(shape))
        axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                                   st.sets(st.integers(0, len(shape) - 1), min_size=1)
                                   .map(tuple)), label="axis")
        return [x], {"axis": axis, "keepdims": data.draw(st.booleans(), label="keepdims")}
    return draw


def _torch_dims(x, axis):
    return tuple(range(x.ndim)) if axis is None else axis


def _draw_matmul(data):
    case = data.draw(st.sampled_from(["2d", "batch", "vec-left", "vec-right", "vec-vec"]))
    n, k, m, b = (data.draw(st.integers(1, 3)) for _ in range(4))
    x_shape = {"2d": (n, k), "batch": (b, n, k), "vec-left": (k,), "vec-right": (n, k),
               "vec-vec": (k,)}[case]
    y_shape = {"2d": (k, m), "batch": (k, m), "vec-left": (b, k, m), "vec-right": (k,),
               "vec-vec": (k,)}[case]
    return [data.draw(arrays(x_shape)), data.draw(arrays(y_shape))], {}


def _draw_getitem(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=4), label="shape")
    x = data.draw(arrays(shape), label="x")
    if data.draw(st.booleans(), label="advanced"):
        index = np.asarray(data.draw(st.lists(st.integers(0, shape[0] - 1), min_size=1,
                                              max_size=5)))    # repeats accumulate
    else:
        start = data.draw(st.integers(0, shape[0] - 1))
        index = (slice(start, None, data.draw(st.integers(1, 2))),)
    return [x], {"index": index}


def _draw_transpose(data):
    shape = data.draw(shapes(min_dims=1, max_dims=4, max_side=3), label="shape")
    axes = data.draw(st.one_of(st.none(), st.permutations(range(len(shape))).map(tuple)))
    return [data.draw(arrays(shape))], {"axes": axes}


def _draw_reshape(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3), label="shape")
    return [data.draw(arrays(shape))], {"shape": (math.prod(shape),) if len(shape) > 1
                                        else (1, shape[0])}


def _draw_affine(data):
    n, d, m = (data.draw(st.integers(1, 3)) for _ in range(3))
    extra = data.draw(st.sampled_from([(), (2,)]))
    inputs = [data.draw(arrays((n, d) + extra)), data.draw(arrays((d * math.prod(extra), m)))]
    if data.draw(st.booleans(), label="bias"):
        inputs.append(data.draw(arrays((m,))))
    return inputs, {}


def _affine_torch(torch, x, w, b=None):
    y = x.reshape(x.shape[0], -1) @ w
    return y if b is None else y + b


def _draw_conv(data):
    s = data.draw(conv_settings(max_batch=2, max_channels=2, max_size=4, max_filters=2,
                                max_kernel=3, max_stride=2, max_padding=1))
    inputs = [data.draw(arrays((s["N"], s["C"], s["H"], s["W"]))),
              data.draw(arrays((s["FN"], s["C"], s["FH"], s["FW"])))]
    if data.draw(st.booleans(), label="bias"):
        inputs.append(data.draw(arrays((s["FN"],))))
    return inputs, {"stride": (s["SH"], s["SW"]), "padding": (s["PH"], s["PW"])}


def _draw_pool(distinct):
    def draw(data):
        s = data.draw(pool_settings(max_batch=2, max_channels=2, max_size=4, max_kernel=3,
                                    max_stride=2))
        shape = (s["N"], s["C"], s["H"], s["W"])
        x = data.draw(distinct_arrays(shape, low=-3, high=3, min_gap=0.02) if distinct
                      else arrays(shape))
        return [x], {"kernel_size": (s["KH"], s["KW"]), "stride": (s["SH"], s["SW"]),
                     "padding": (s["PH"], s["PW"])}
    return draw


def _draw_classes(one_hot):
    def draw(data):
        n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
        z = data.draw(arrays((n, c)))
        labels = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
        t = np.eye(c)[labels] if one_hot else labels
        return [z], {"t": t}
    return draw


def _draw_softmax(data):
    shape = data.draw(shapes(min_dims=1, max_dims=3, max_side=3))
    return [data.draw(arrays(shape))], {"axis": data.draw(st.integers(-len(shape),
                                                                      len(shape) - 1))}


def _draw_dropout(data):
    x = data.draw(arrays(shapes(min_dims=1, max_dims=3, max_side=4)))
    seed = data.draw(st.integers(0, 2 ** 16))
    mask = F.dropout(np.ones(x.shape), p=0.4, rng=np.random.default_rng(seed)).data
    return [x], {"seed": seed, "mask": mask}


def _draw_conv_options(data):
    """dilation, groups and padding='same' (the options beyond the textbook's conv)."""
    i = st.integers
    G, N = data.draw(i(1, 2)), data.draw(i(1, 2))
    c, f = (1, 1) if G == 2 else (data.draw(i(1, 2)), data.draw(i(1, 2)))
    kernel, dilation = (data.draw(st.tuples(i(1, 3), i(1, 2))) for _ in range(2))
    kwargs = {"dilation": dilation, "groups": G}
    if data.draw(st.booleans(), label="same"):
        kwargs.update(stride=1, padding="same")
        size = data.draw(st.tuples(i(1, 4), i(1, 4)))
    else:
        kwargs.update(stride=data.draw(st.tuples(i(1, 2), i(1, 2))),
                      padding=data.draw(st.tuples(i(0, 1), i(0, 1))))
        size = tuple(data.draw(i(max(1, d * (k - 1) + 1 - 2 * p), d * (k - 1) + 2))
                     for k, d, p in zip(kernel, dilation, kwargs["padding"]))
    inputs = [data.draw(arrays((N, G * c) + size)), data.draw(arrays((G * f, c) + kernel))]
    if data.draw(st.booleans(), label="bias"):
        inputs.append(data.draw(arrays((G * f,))))
    return inputs, kwargs


def _draw_pool_options(kind):
    """dilation and ceil_mode (max); ceil_mode, count_include_pad, divisor_override (avg)."""
    def draw(data):
        i = st.integers
        kernel = data.draw(st.tuples(i(1, 3), i(1, 3)))
        dilation = data.draw(st.tuples(i(1, 2), i(1, 2))) if kind == "max" else (1, 1)
        padding = tuple(data.draw(i(0, k // 2)) for k in kernel)
        size = tuple(data.draw(i(d * (k - 1) + 1, d * (k - 1) + 3))
                     for k, d in zip(kernel, dilation))
        shape = (1, data.draw(i(1, 2))) + size
        kwargs = {"kernel_size": kernel, "stride": data.draw(st.tuples(i(1, 3), i(1, 3))),
                  "padding": padding, "ceil_mode": data.draw(st.booleans())}
        if kind == "max":
            kwargs["dilation"] = dilation
            x = data.draw(distinct_arrays(shape, min_gap=0.02))
        else:
            kwargs["count_include_pad"] = data.draw(st.booleans())
            kwargs["divisor_override"] = data.draw(st.sampled_from([None, 1, 3]))
            x = data.draw(arrays(shape))
        return [x], kwargs
    return draw


def _draw_conv_transpose(data):
    i = st.integers
    G, N = data.draw(i(1, 2)), data.draw(i(1, 2))
    c, f = (1, 1) if G == 2 else (data.draw(i(1, 2)), data.draw(i(1, 2)))
    kernel, stride, dilation = (data.draw(st.tuples(i(1, 3), i(1, 2))) for _ in range(3))
    padding = data.draw(st.tuples(i(0, 1), i(0, 1)))
    output_padding = tuple(data.draw(i(0, s - 1)) for s in stride)
    size = tuple(data.draw(i(1, 3)) for _ in range(2))
    for n, s_, p, d, k, op in zip(size, stride, padding, dilation, kernel, output_padding):
        if (n - 1) * s_ - 2 * p + d * (k - 1) + op + 1 < 1:      # no output pixel
            padding = (0, 0)
    inputs = [data.draw(arrays((N, G * c) + size)), data.draw(arrays((G * c, f) + kernel))]
    if data.draw(st.booleans(), label="bias"):
        inputs.append(data.draw(arrays((G * f,))))
    return inputs, {"stride": stride, "padding": padding, "output_padding": output_padding,
                    "groups": G, "dilation": dilation}


def _draw_adaptive(data):
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)),
             data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5)))
    out = (data.draw(st.integers(1, shape[2])), data.draw(st.integers(1, shape[3])))
    return [data.draw(arrays(shape))], {"output_size": out}


POSITIVE = {"low": 0.3, "high": 2.5}
OPS = {
    "add": (_binary(), lambda x, y: x + y, lambda torch, x, y: x + y),
    "sub": (_binary(), lambda x, y: x - y, lambda torch, x, y: x - y),
    "mul": (_binary(), lambda x, y: x * y, lambda torch, x, y: x * y),
    "div": (_binary(y_kw={"avoid": (0.0,), "margin": 0.5}), lambda x, y: x / y,
            lambda torch, x, y: x / y),
    # PyTorch's pow backward sets dL/dx to 0 where the exponent is exactly 0 (x⁰ = 1), which
    # drops the cross term d²/dx dc = x^(c−1) there; exponents stay off 0 for the comparison.
    "pow": (_binary(POSITIVE, {"low": -2.0, "high": 2.0, "avoid": (0.0,)}), lambda x, y: x ** y,
            lambda torch, x, y: x ** y),
    "pow_scalar": (_unary(), lambda x: x ** 3, lambda torch, x: x ** 3),
    "rpow_scalar": (_unary(), lambda x: 2.0 ** x, lambda torch, x: 2.0 ** x),
    "neg": (_unary(), lambda x: -x, lambda torch, x: -x),
    "matmul": (_draw_matmul, lambda x, y: x @ y, lambda torch, x, y: x @ y),
    "exp": (_unary(), lambda x: x.exp(), lambda torch, x: x.exp()),
    "log": (_unary(**POSITIVE), lambda x: x.log(), lambda torch, x: x.log()),
    "sqrt": (_unary(**POSITIVE), lambda x: x.sqrt(), lambda torch, x: x.sqrt()),
    "sum": (_reduction(), lambda x, axis, keepdims: x.sum(axis, keepdims),
            lambda torch, x, axis, keepdims: x.sum(_torch_dims(x, axis), keepdim=keepdims)),
    "mean": (_reduction(), lambda x, axis, keepdims: x.mean(axis, keepdims),
             lambda torch, x, axis, keepdims: x.mean(_torch_dims(x, axis), keepdim=keepdims)),
    "max": (_reduction(distinct=True), lambda x, axis, keepdims: x.max(axis, keepdims),
            lambda torch, x, axis, keepdims: torch.amax(x, _torch_dims(x, axis),
                                                        keepdim=keepdims)),
    "reshape": (_draw_reshape, lambda x, shape: x.reshape(shape),
                lambda torch, x, shape: x.reshape(shape)),
    "flatten": (_unary(), lambda x: x.flatten(), lambda torch, x: x.reshape(-1)),
    "F.flatten": (lambda data: ([data.draw(arrays(shapes(min_dims=1, max_dims=4, max_side=3)))],
                                {}),
                  F.flatten, lambda torch, x: x.reshape(x.shape[0], -1)),
    "transpose": (_draw_transpose, lambda x, axes: x.T if axes is None else x.transpose(axes),
                  lambda torch, x, axes: x.permute(axes or tuple(reversed(range(x.ndim))))),
    "getitem": (_draw_getitem, lambda x, index: x[index],
                lambda torch, x, index: x[torch.as_tensor(index) if isinstance(index, np.ndarray)
                                          else index]),
    "relu": (_unary(avoid=(0.0,), margin=0.05), F.relu, lambda torch, x: torch.relu(x)),
    "sigmoid": (_unary(), F.sigmoid, lambda torch, x: torch.sigmoid(x)),
    "tanh": (_unary(), F.tanh, lambda torch, x: torch.tanh(x)),
    "affine": (_draw_affine, F.affine, _affine_torch),
    "conv2d": (_draw_conv, F.conv2d,
               lambda torch, x, w, b=None, **s: torch.nn.functional.conv2d(x, w, b, **s)),
    "max_pool2d": (_draw_pool(distinct=True), F.max_pool2d,
                   lambda torch, x, **s: torch.nn.functional.max_pool2d(x, **s)),
    "avg_pool2d": (_draw_pool(distinct=False), F.avg_pool2d,
                   lambda torch, x, **s: torch.nn.functional.avg_pool2d(x, **s)),
    "conv2d_options": (_draw_conv_options, F.conv2d,
                       lambda torch, x, w, b=None, **s: torch.nn.functional.conv2d(x, w, b, **s)),
    "max_pool2d_options": (_draw_pool_options("max"), F.max_pool2d,
                           lambda torch, x, **s: torch.nn.functional.max_pool2d(x, **s)),
    "avg_pool2d_options": (_draw_pool_options("avg"), F.avg_pool2d,
                           lambda torch, x, **s: torch.nn.functional.avg_pool2d(x, **s)),
    "conv_transpose2d": (_draw_conv_transpose, F.conv_transpose2d,
                         lambda torch, x, w, b=None, **s:
                         torch.nn.functional.conv_transpose2d(x, w, b, **s)),
    "adaptive_avg_pool2d": (_draw_adaptive, F.adaptive_avg_pool2d,
                            lambda torch, x, **s: torch.nn.functional.adaptive_avg_pool2d(x, **s)),
    "softmax": (_draw_softmax, F.softmax,
                lambda torch, x, axis: torch.softmax(x, dim=axis)),
    "log_softmax": (_draw_softmax, F.log_softmax,
                    lambda torch, x, axis: torch.log_softmax(x, dim=axis)),
    "softmax_cross_entropy": (
        _draw_classes(one_hot=False), F.softmax_cross_entropy,
        lambda torch, z, t: torch.nn.functional.cross_entropy(z, torch.as_tensor(t))),
    "softmax_cross_entropy_one_hot": (
        _draw_classes(one_hot=True), F.softmax_cross_entropy,
        lambda torch, z, t: torch.nn.functional.cross_entropy(z, torch.as_tensor(t))),
    "dropout": (_draw_dropout,
                lambda x, seed, mask: F.dropout(x, p=0.4, rng=np.random.default_rng(seed)),
                lambda torch, x, seed, mask: x * torch.as_tensor(mask)),
}
# The elementwise, join, statistics and loss ops: their draws (options, kinks kept away) are
# in tests/test_higher_order_ops.py beside their own tests.
OPS.update(MORE_OPS)


def _draw_normalization(kind):
    """(x, w, b) for batch_norm (training or eval), layer_norm or group_norm, and settings."""
    def draw(data):
        i = st.integers
        G, N = data.draw(i(1, 2), label="G"), data.draw(i(1, 3), label="N")
        rest = data.draw(st.lists(i(1, 3), max_size=2).map(tuple), label="rest")
        c = data.draw(i(1, 2), label="C/G")
        if N * math.prod(rest) * (c if kind == "group_norm" else 1) < 2:
            N = 2      # more than one value per channel (PyTorch's group_norm checks it too)
        shape = (N, G * c) + rest
        settings = {}
        if kind == "layer_norm":
            k = data.draw(i(1, len(shape) - 1), label="k")
            settings["normalized_shape"] = param_shape = shape[len(shape) - k:]
        else:
            param_shape = shape[1:2]
        if kind == "group_norm":
            settings["num_groups"] = G
        if kind == "batch_norm_eval":
            settings["running_mean"] = data.draw(arrays(param_shape), label="running_mean")
            settings["running_var"] = data.draw(arrays(param_shape, low=0.2), label="var")
        # Spread values: where all are equal, σ² is rounding noise and the derivatives that
        # are 0 come out as noise of 1e-12 (here and in PyTorch, differently).
        x = data.draw(distinct_arrays(shape, min_gap=0.02), label="x")
        return [x, data.draw(arrays(param_shape), label="w"),
                data.draw(arrays(param_shape), label="b")], settings
    return draw


def _batch_norm(training):
    def fn(x, w, b, running_mean=None, running_var=None):
        return F.batch_norm(x, running_mean, running_var, w, b, training=training)

    def torch_fn(torch, x, w, b, running_mean=None, running_var=None):
        stats = [None if s is None else torch.as_tensor(s) for s in (running_mean, running_var)]
        return torch.nn.functional.batch_norm(x, *stats, w, b, training=training)
    return fn, torch_fn


OPS.update({
    "batch_norm_train": (_draw_normalization("batch_norm_train"), *_batch_norm(True)),
    "batch_norm_eval": (_draw_normalization("batch_norm_eval"), *_batch_norm(False)),
    "layer_norm": (_draw_normalization("layer_norm"),
                   lambda x, w, b, normalized_shape: F.layer_norm(x, normalized_shape, w, b),
                   lambda torch, x, w, b, normalized_shape:
                   torch.nn.functional.layer_norm(x, normalized_shape, w, b)),
    "group_norm": (_draw_normalization("group_norm"),
                   lambda x, w, b, num_groups: F.group_norm(x, num_groups, w, b),
                   lambda torch, x, w, b, num_groups:
                   torch.nn.functional.group_norm(x, num_groups, w, b)),
})


# The linear ops gradients are made of: differentiable again for the third order and beyond.
GRAD_OPS = {
    "BroadcastTo": (lambda data: ([data.draw(arrays((3, 1)))], {}),
                    lambda x: grad_ops.BroadcastTo((2, 3, 4))(x)),
    "SumTo": (lambda data: ([data.draw(arrays((2, 3, 4)))], {}),
              lambda x: grad_ops.SumTo((3, 1))(x)),
    "ScatterAdd": (lambda data: ([data.draw(arrays((4, 2)))], {}),
                   lambda x: grad_ops.ScatterAdd(np.array([0, 2, 0, 1]), (3, 2))(x)),
}


def _draw_conv_grad(data):
    inputs, s = _draw_conv(data)
    x, w = inputs[:2]
    y = F.conv2d(x, w, **s).data
    return [x, w, data.draw(arrays(y.shape))], s


def _recorded(op, x):
    """op called on a copy of x that requires grad (so it saves what its backward needs)."""
    op(Tensor(x.data, requires_grad=True))
    return op


def _max_pool_backward(x, **s):
    pool = _recorded(MaxPool2d(**s), x)
    y = F.max_pool2d(x, **s)
    winners = grad_ops.max_pool_winners(pool, x.shape, y.shape)
    return grad_ops.MaxPool2dBackward(pool, winners, x.shape)(y * y)


def _max_pool_gather(x, **s):
    pool = _recorded(MaxPool2d(**s), x)
    winners = grad_ops.max_pool_winners(pool, x.shape, F.max_pool2d(x.data, **s).shape)
    return grad_ops.MaxPool2dGather(pool, winners, x.shape)(x * x)


def _avg_pool_backward(x, **s):
    pool = _recorded(AvgPool2d(**s), x)
    return grad_ops.AvgPool2dBackward(pool)(F.avg_pool2d(x, **s) ** 2)


GRAD_OPS.update({
    "Conv2dInputGrad": (_draw_conv_grad, lambda x, w, dy, **s: grad_ops.Conv2dInputGrad(
        Conv2d(**s), x.shape)(dy * dy, w)),
    "Conv2dWeightGrad": (_draw_conv_grad, lambda x, w, dy, **s: grad_ops.Conv2dWeightGrad(
        Conv2d(**s), w.shape)(x * x, dy)),
    "MaxPool2dBackward": (_draw_pool(distinct=True), _max_pool_backward),
    "MaxPool2dGather": (_draw_pool(distinct=True), _max_pool_gather),
    "AvgPool2dBackward": (_draw_pool(distinct=False), _avg_pool_backward),
})


def _settings_fn(fn, kwargs):
    return lambda *xs: fn(*xs, **kwargs)


# MORE_OPS run the same checks in tests/test_higher_order_ops.py (test_gradgradcheck).
@pytest.mark.parametrize("name", [*(n for n in OPS if n not in MORE_OPS), *GRAD_OPS])
@given(data=st.data())
def test_gradgradcheck_every_op(name, data):
    """gradgradcheck, and the two formulations of the gradient (backward on arrays,
    backward_graph on Tensors) equal to rounding."""
    draw, fn = (OPS.get(name) or GRAD_OPS[name])[:2]
    inputs, kwargs = draw(data)
    fn = _settings_fn(fn, kwargs)
    assert gradgradcheck(fn, *inputs)
    u = np.random.default_rng(1).standard_normal(fn(*(Tensor(x) for x in inputs)).shape)
    plain, recorded = (_first(fn, inputs, u, create_graph) for create_graph in (False, True))
    for a, b in zip(plain, recorded):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


def _first(fn, xs, u, create_graph):
    ts = [Tensor(x, requires_grad=True) for x in xs]
    grads = minigrad.grad(fn(*ts), ts, u, create_graph=create_graph, allow_unused=True)
    return [np.zeros_like(x) if g is None else g.data for g, x in zip(grads, xs)]


def _second_derivatives(fn, xs, u, seeds):
    """(first derivatives, d/d(xs, u) of Σ ⟨r_i, first_i⟩) through the recorded path."""
    ts = [Tensor(x.copy(), requires_grad=True) for x in xs]
    ut = Tensor(u.copy(), requires_grad=True)
    first = minigrad.grad(fn(*ts), ts, ut, create_graph=True, allow_unused=True)
    terms = [(g * r).sum() for g, r in zip(first, seeds) if g is not None and g.requires_grad]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    second = minigrad.grad(total, [*ts, ut], allow_unused=True)
    zeros = [np.zeros_like(a) for a in [*xs, u]]
    return ([z if g is None else g.data for g, z in zip(first, zeros)],
            [z if g is None else g.data for g, z in zip(second, zeros)])


# PyTorch's own note on padding="same" with an even kernel (it pads a copy) is not about minigrad.
@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@pytest.mark.parametrize("name", OPS)
@given(data=st.data())
def test_second_derivatives_match_torch(name, data):
    """First and second derivatives agree with PyTorch's double backward, in float64."""
    torch = pytest.importorskip("torch")
    draw, fn, torch_fn = OPS[name]
    xs, kwargs = draw(data)
    with minigrad.no_grad():
        out = fn(*(Tensor(x) for x in xs), **kwargs)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16), label="seed"))
    u = rng.standard_normal(out.shape)
    seeds = [rng.standard_normal(x.shape) for x in xs]

    first, second = _second_derivatives(_settings_fn(fn, kwargs), xs, u, seeds)

    txs = [torch.tensor(x, requires_grad=True) for x in xs]
    tu = torch.tensor(u, requires_grad=True)
    tfirst = torch.autograd.grad(torch_fn(torch, *txs, **kwargs), txs, tu, create_graph=True,
                                 allow_unused=True)
    total = sum((g * torch.as_tensor(r)).sum() for g, r in zip(tfirst, seeds) if g is not None)
    tsecond = [None] * (len(xs) + 1)
    if torch.is_tensor(total) and total.requires_grad:
        tsecond = torch.autograd.grad(total, [*txs, tu], allow_unused=True)
    for mine, theirs in zip([*first, *second], [*tfirst, *tsecond]):
        # force: PyTorch gives a ZeroTensor where it knows the derivative is 0 (abs, l1_loss)
        expected = np.zeros_like(mine) if theirs is None else theirs.detach().numpy(force=True)
        np.testing.assert_allclose(mine, expected, rtol=1e-7, atol=1e-12)


# ---------------------------------------------------------------------- minigrad.grad semantics
def test_grad_returns_values_and_leaves_dot_grad_alone():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x * x).sum()
    (g,) = minigrad.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.data, 3 * x.data ** 2)
    assert g.creator is not None and x.grad is None
    (h,) = minigrad.grad(g, x, grad_outputs=np.ones(2))
    np.testing.assert_allclose(h.data, 6 * x.data)
    assert h.creator is None and not h.requires_grad and x.grad is None


def test_grad_of_several_outputs_and_intermediate_inputs():
    x = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    h = x.tanh()
    a, b = (h * h).sum(), (h * 3.0).sum()
    gh, gx = minigrad.grad([a, b], [h, x])
    np.testing.assert_allclose(gh.data, 2 * h.data + 3)
    np.testing.assert_allclose(gx.data, (2 * h.data + 3) * (1 - h.data ** 2))


@pytest.mark.parametrize("call, message", [
    (lambda x, y, z: minigrad.grad(x * 2, x), "grad_outputs can be implicitly created"),
    (lambda x, y, z: minigrad.grad((x * 2).sum(), [x, y]), r"inputs\[1\] 'y'.*not used"),
    (lambda x, y, z: minigrad.grad((x * 2).sum(), z), "does not require grad"),
    (lambda x, y, z: minigrad.grad(x * 2, x, np.ones(3)), r"grad_outputs\[0\] has shape"),
])
def test_grad_errors_name_the_tensor(call, message):
    x = Tensor(np.ones(2), requires_grad=True, name="x")
    y = Tensor(np.ones(2), requires_grad=True, name="y")
    z = Tensor(np.ones(2), name="z")
    with pytest.raises((RuntimeError, ValueError), match=message):
        call(x, y, z)


def test_grad_allow_unused_gives_none():
    x, y = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2), requires_grad=True)
    assert minigrad.grad((x * 2).sum(), [x, y], allow_unused=True)[1] is None


def test_create_graph_keeps_the_graph_and_plain_grad_frees_it():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x.exp() * x).sum()
    minigrad.grad(y, x, create_graph=True)
    minigrad.grad(y, x)                          # retained by the first call
    with pytest.raises(RuntimeError, match="second time"):
        minigrad.grad(y, x)


def test_backward_create_graph_points_to_grad():
    x = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"minigrad\.grad\(y, x, create_graph=True\)"):
        (x * x).sum().backward(create_graph=True)


def test_gradients_keep_their_input_dtype_on_the_tape():
    from minigrad.function import topological_order

    x = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    w = Tensor(np.array([1.0, 3.0]), requires_grad=True)          # float64
    (g,) = minigrad.grad((x * x * w).sum(), x, create_graph=True)   # 2xw, cast to float32
    assert g.dtype == np.float32
    assert "Cast" in {type(fn).__name__ for fn in topological_order([g.creator])}
    hx, hw = minigrad.grad(g.sum(), [x, w])
    assert hx.dtype == np.float32 and hw.dtype == np.float64
    np.testing.assert_array_equal(hx.data, np.array([2.0, 6.0], np.float32))
    np.testing.assert_array_equal(hw.data, [2.0, 4.0])


def test_first_order_backward_is_untouched_by_create_graph_code():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x).sum().backward()
    assert isinstance(x.grad, np.ndarray)
    np.testing.assert_allclose(x.grad, [2.0, 4.0])


# ---------------------------------------------------------------------- users' own ops
class Cube(Function):
    """y = x³.    dL/dx = dL/dy · 3x²"""

    def forward(self, x):
        self.x = x
        return x ** 3

    def backward(self, dy):
        return dy * 3 * self.x ** 2


class CubeTwice(Cube):
    def backward_graph(self, dy):
        x = self.inputs[0]
        return dy * 3 * x * x


class CubeOnePercentOff(Cube):
    def backward_graph(self, dy):
        x = self.inputs[0]
        return dy * 3.03 * x * x


class CubeForgetsProductRule(Cube):
    def backward_graph(self, dy):
        x = self.inputs[0]
        return dy * 3 * x * x.detach()          # x² as if one factor were a constant


class CubeIgnoresDy(Cube):
    def backward_graph(self, dy):
        x = self.inputs[0]
        return 3 * x * x + 0 * dy


def test_user_op_without_backward_graph_names_the_op_and_the_docs():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (g,) = minigrad.grad(Cube()(x).sum(), x, create_graph=True)   # first order still works
    np.testing.assert_allclose(g.data, 3 * x.data ** 2)
    with pytest.raises(RuntimeError, match=r"Cube cannot be differentiated twice.*"
                                           r"docs/custom_ops\.md.*Gradients of gradients"):
        minigrad.grad(g.sum(), x)


def test_user_op_with_backward_graph_passes_gradgradcheck():
    assert gradgradcheck(lambda x: CubeTwice()(x), np.array([0.5, -1.5, 2.0]))


@pytest.mark.parametrize("op, check", [
    (CubeOnePercentOff, "differs from backward"),
    (CubeForgetsProductRule, r"with respect to input 0 \(shape \(3,\)\) is wrong at index"),
    (CubeIgnoresDy, "differs from backward"),
])
def test_gradgradcheck_catches_broken_double_backwards(op, check):
    with pytest.raises(GradcheckError, match=check):
        gradgradcheck(lambda x: op()(x), np.array([0.5, -1.5, 2.0]))


class CubeIgnoresDyLinearly(Cube):
    """Right first derivatives for dy = u, wrong dependence on dy: caught through u."""

    def backward_graph(self, dy):
        x = self.inputs[0]
        return dy.detach() * 3 * x * x


def test_gradgradcheck_checks_the_dependence_on_the_incoming_gradient():
    with pytest.raises(GradcheckError, match="upstream gradient"):
        gradgradcheck(lambda x: CubeIgnoresDyLinearly()(x), np.array([0.5, -1.5, 2.0]))


# ------------------------------------------------------------- derivatives of every order
def _tanh_derivatives(x, n):
    """dⁿ/dxⁿ tanh x in closed form: with y = tanh x, d/dx P(y) = P'(y) · (1 − y²)."""
    p = np.polynomial.Polynomial([0, 1])
    one_minus_y2 = np.polynomial.Polynomial([1, 0, -1])
    out = []
    for _ in range(n):
        p = p.deriv() * one_minus_y2
        out.append(p(np.tanh(x)))
    return out


def test_nth_derivative_of_tanh_matches_the_closed_form():
    points = np.array([-1.5, -0.3, 0.0, 0.7, 2.0])
    x = Tensor(points, requires_grad=True)
    y = x.tanh()
    expected = _tanh_derivatives(points, 6)
    for n in range(6):
        (y,) = minigrad.grad(y, x, grad_outputs=np.ones_like(points), create_graph=True)
        np.testing.assert_allclose(y.data, expected[n], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("op", ["relu", "max_pool2d", "max"])
def test_piecewise_linear_ops_route_second_order_through_the_same_mask(op):
    """Their own second derivative is 0 off the kinks; the Hessian of Σ op(x)² is 2 on the
    diagonal where the mask (ReLU) or the winners (max, max pooling) let x through."""
    x = np.random.default_rng(3).permutation(16).reshape(1, 1, 4, 4) / 4.0 - 1.9
    fn = {"relu": F.relu, "max_pool2d": lambda a: F.max_pool2d(a, 2),
          "max": lambda a: a.max(axis=3)}[op]
    h = autograd.hessian(lambda a: (fn(a) ** 2).sum(), x).data.reshape(16, 16)
    t = Tensor(x, requires_grad=True)
    (mask,) = minigrad.grad(fn(t).sum(), t)            # 1 where x gets through, else 0
    passed = mask.data.reshape(16)
    np.testing.assert_array_equal(h, np.diag(2 * passed))
    assert 0 < passed.sum() < 16
    assert not autograd.hessian(lambda a: fn(a).sum(), x).data.any()


# ---------------------------------------------------------------------- minigrad.autograd
def _mlp_loss(x, t):
    def loss(w1, b1, w2, b2):
        h = F.tanh(F.affine(x, w1, b1))
        return F.softmax_cross_entropy(F.affine(h, w2, b2), t)
    return loss


def _mlp_loss_torch(torch, x, t):
    def loss(w1, b1, w2, b2):
        h = torch.tanh(torch.as_tensor(x) @ w1 + b1)
        return torch.nn.functional.cross_entropy(h @ w2 + b2, torch.as_tensor(t))
    return loss


def _cnn_loss(x, t):
    def loss(w, b, w2):
        h = F.max_pool2d(F.relu(F.conv2d(x, w, b, padding=1)), 2)
        return F.softmax_cross_entropy(F.affine(h, w2), t)
    return loss


def _cnn_loss_torch(torch, x, t):
    tf = torch.nn.functional

    def loss(w, b, w2):
        h = tf.max_pool2d(tf.relu(tf.conv2d(torch.as_tensor(x), w, b, padding=1)), 2)
        return tf.cross_entropy(h.reshape(h.shape[0], -1) @ w2, torch.as_tensor(t))
    return loss


def _nets():
    rng = np.random.default_rng(0)
    mlp = ([rng.standard_normal(s) for s in [(3, 4), (4,), (4, 3), (3,)]],
           rng.standard_normal((5, 3)), np.array([0, 2, 1, 1, 0]), _mlp_loss, _mlp_loss_torch)
    cnn = ([rng.standard_normal(s) for s in [(2, 1, 3, 3), (2,), (8, 3)]],
           rng.standard_normal((2, 1, 4, 4)), np.array([2, 0]), _cnn_loss, _cnn_loss_torch)
    return {"mlp": mlp, "cnn": cnn}


@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_hessian_of_small_networks_equals_torch(net):
    torch = pytest.importorskip("torch")
    params, x, t, loss, loss_torch = _nets()[net]
    mine = autograd.hessian(loss(x, t), tuple(params))
    theirs = torch.autograd.functional.hessian(loss_torch(torch, x, t),
                                               tuple(torch.tensor(p) for p in params))
    for i in range(len(params)):
        for j in range(len(params)):
            np.testing.assert_allclose(mine[i][j].data, theirs[i][j].numpy(), rtol=1e-7,
                                       atol=1e-12)


def _f(x, y):
    return (x.tanh() * y).sum(axis=0) + (x ** 2).sum()


def _f_torch(x, y):
    return (x.tanh() * y).sum(dim=0) + (x ** 2).sum()


@pytest.mark.parametrize("name", ["jacobian", "hessian", "vjp", "jvp", "hvp"])
def test_autograd_functions_match_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    inputs, tinputs = (x, y), (torch.tensor(x), torch.tensor(y))
    scalar = lambda a, b: _f(a, b).sum()                                      # noqa: E731
    scalar_torch = lambda a, b: _f_torch(a, b).sum()                          # noqa: E731
    v_in, v_out = (rng.standard_normal((3, 2)), rng.standard_normal((3, 2))), \
        rng.standard_normal(2)
    tv_in = tuple(torch.tensor(v) for v in v_in)
    fn = getattr(autograd, name)
    tfn = getattr(torch.autograd.functional, name)
    if name == "jacobian":
        mine, theirs = fn(_f, inputs), tfn(_f_torch, tinputs)
    elif name == "hessian":
        mine, theirs = fn(scalar, inputs), tfn(scalar_torch, tinputs)
    elif name == "vjp":
        mine, theirs = fn(_f, inputs, v_out)[1], tfn(_f_torch, tinputs, torch.tensor(v_out))[1]
    elif name == "jvp":
        mine, theirs = fn(_f, inputs, v_in)[1], tfn(_f_torch, tinputs, tv_in)[1]
    else:
        mine, theirs = fn(scalar, inputs, v_in)[1], tfn(scalar_torch, tinputs, tv_in)[1]

    def flat(a):
        if isinstance(a, (tuple, list)):
            return [b for item in a for b in flat(item)]
        return [a.data if isinstance(a, Tensor) else a.detach().numpy()]

    assert len(flat(mine)) == len(flat(theirs))
    for m, t in zip(flat(mine), flat(theirs)):
        np.testing.assert_allclose(m, t, rtol=1e-10, atol=1e-12)


def test_autograd_single_input_gives_a_tensor_and_create_graph_differentiates_again():
    x = np.array([0.3, -0.8])
    h = autograd.hessian(lambda a: (a.tanh() ** 2).sum(), x)
    assert isinstance(h, Tensor) and h.shape == (2, 2)
    xt = Tensor(x, requires_grad=True)
    _, hv = autograd.hvp(lambda a: (a ** 4).sum(), xt, np.ones(2), create_graph=True)
    (d,) = minigrad.grad(hv.sum(), xt)             # d/dx Σ 12x² = 24x
    np.testing.assert_allclose(d.data, 24 * x)
    j = autograd.jacobian(lambda a: a.tanh(), x, create_graph=True)
    assert j.shape == (2, 2) and j.requires_grad
    np.testing.assert_allclose(j.data, np.diag(1 - np.tanh(x) ** 2))
    pair = (x, np.array([0.5, 2.0]))
    recorded = autograd.hessian(lambda a, b: (a * b * b).sum(), pair, create_graph=True)
    plain = autograd.hessian(lambda a, b: (a * b * b).sum(), pair)
    for i in range(2):
        for j in range(2):
            np.testing.assert_array_equal(recorded[i][j].data, plain[i][j].data)


# ---------------------------------------------------------------------- the graph of a gradient
def test_draw_graph_of_a_gradient_shows_the_backward_ops():
    pytest.importorskip("graphviz")
    from minigrad import viz

    x = Tensor(np.array(1.0), requires_grad=True, name="x")
    y = x.tanh()
    sizes = []
    for _ in range(3):
        (y,) = minigrad.grad(y, x, create_graph=True)
        source = viz.draw_graph(y).source
        sizes.append(source.count("->"))
    assert "Tanh" in source and "Mul" in source and "Sub" in source
    assert sizes[0] < sizes[1] < sizes[2]     # the graph grows with every order
    s = Tensor(np.ones((2, 3)), requires_grad=True)
    (g,) = minigrad.grad((s.sum(axis=0) ** 2).sum(), s, create_graph=True)
    assert "BroadcastTo" in viz.draw_graph(g).source


# ---------------------------------------------------------------------- the example
def test_example_newton_pictures_and_hvp(load_example, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("graphviz")
    result = load_example("higher_order").main(["--out", str(tmp_path), "--dpi", "40"])
    newton, descent = result["newton"], result["gradient_descent"]
    assert abs(newton[-1] - 1.0) < 1e-12 and len(newton) - 1 <= 10
    assert len(descent) > 10 * len(newton)          # plain gradient descent is far slower
    assert result["hvp_error"] < 1e-6
    for picture in result["pictures"]:
        assert picture.exists() and picture.stat().st_size > 0


def test_example_help():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "higher_order.py"
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "Newton" in done.stdout and "--out" in done.stdout
