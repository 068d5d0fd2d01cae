"""batch_norm, layer_norm and group_norm: PyTorch, gradcheck, gradgradcheck, a composed oracle,
the textbook's node-by-node backward, running statistics, and the errors."""

import contextlib
import math
import re

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import minigrad.functional as F
from minigrad import Tensor
from minigrad.ops import BatchNorm, normalization
from minigrad.testing import arrays, distinct_arrays, gradcheck, gradgradcheck

# ------------------------------------------------------------------------------ drawn cases
# Each case: the drawn arrays (x, w or None, b or None), the settings, and the statistics
# for batch_norm. Sizes stay small: every case is also checked with central differences.


def spread(*shape):
    """x with no two values closer than 0.02: where all are equal, σ² is rounding noise and
    derivatives that are 0 come out as noise of 1e-12 (in PyTorch too, differently)."""
    return distinct_arrays(shape, min_gap=0.02)


def _draw_batch_norm(data, training):
    layout = data.draw(st.sampled_from(["N, D", "N, C, L", "N, C, H, W"]), label="layout")
    spatial = {"N, D": 0, "N, C, L": 1, "N, C, H, W": 2}[layout]
    C = data.draw(st.integers(1, 3), label="C")
    rest = tuple(data.draw(st.integers(1, 3), label="side") for _ in range(spatial))
    N = data.draw(st.integers(1 if math.prod(rest) > 1 or not training else 2, 3), label="N")
    x = data.draw(spread(N, C, *rest), label="x")
    stats = {"running_mean": data.draw(arrays((C,)), label="running_mean"),
             "running_var": data.draw(arrays((C,), low=0.2, high=3.0), label="running_var")}
    return x, (C,), {"training": training, "momentum": data.draw(st.sampled_from([0.1, 0.5]))}, \
        stats


def _draw_layer_norm(data):
    lead = data.draw(st.lists(st.integers(1, 3), max_size=2).map(tuple), label="lead")
    normalized = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple),
                           label="normalized_shape")
    x = data.draw(spread(*lead, *normalized), label="x")
    return x, normalized, {"normalized_shape": normalized}, None


def _draw_group_norm(data):
    G = data.draw(st.integers(1, 3), label="num_groups")
    C = G * data.draw(st.integers(1, 2), label="channels per group")
    rest = data.draw(st.lists(st.integers(1, 3), max_size=2).map(tuple), label="rest")
    x = data.draw(spread(data.draw(st.integers(1, 2), label="N"), C, *rest), label="x")
    return x, (C,), {"num_groups": G}, None


DRAW = {
    "batch_norm_train": lambda data: _draw_batch_norm(data, training=True),
    "batch_norm_eval": lambda data: _draw_batch_norm(data, training=False),
    "layer_norm": _draw_layer_norm,
    "group_norm": _draw_group_norm,
}


def draw_case(data, name, affine=None):
    """(x, w, b, kwargs, stats); w and b are each drawn or None unless ``affine`` is True."""
    x, param_shape, kwargs, stats = DRAW[name](data)
    w = b = None
    if affine or (affine is None and data.draw(st.booleans(), label="weight")):
        w = data.draw(arrays(param_shape), label="w")
    if affine or (affine is None and data.draw(st.booleans(), label="bias")):
        b = data.draw(arrays(param_shape), label="b")
    return x, w, b, kwargs, stats


def mine(name, x, w, b, kwargs, stats):
    """The minigrad call; ``stats`` (arrays) are updated in place by batch_norm in training."""
    if name.startswith("batch_norm"):
        return F.batch_norm(x, stats["running_mean"], stats["running_var"], w, b, **kwargs)
    if name == "layer_norm":
        return F.layer_norm(x, kwargs["normalized_shape"], w, b)
    return F.group_norm(x, kwargs["num_groups"], w, b)


def theirs(torch, name, x, w, b, kwargs, stats):
    nf = torch.nn.functional
    if name.startswith("batch_norm"):
        return nf.batch_norm(x, stats["running_mean"], stats["running_var"], w, b, **kwargs)
    if name == "layer_norm":
        return nf.layer_norm(x, kwargs["normalized_shape"], w, b)
    if w is None and b is not None:   # PyTorch's group_norm backward fails on that pair
        w = torch.ones(b.shape, dtype=b.dtype)
    return nf.group_norm(x, kwargs["num_groups"], w, b)


def copied(stats):
    return None if stats is None else {k: v.copy() for k, v in stats.items()}


def with_params(name, w, b, kwargs, stats):
    """fn(x, w, b) for gradcheck: the statistics copied on every call (training updates them)."""
    def fn(xt, wt, bt):
        return mine(name, xt, wt, bt, kwargs, copied(stats))
    return fn


# ----------------------------------------------------------------------------- PyTorch
@pytest.mark.parametrize("name", DRAW)
@given(data=st.data())
def test_values_gradients_and_running_statistics_match_torch(name, data):
    torch = pytest.importorskip("torch")
    x, w, b, kwargs, stats = draw_case(data, name)
    # PyTorch's group_norm refuses N·(C/G)·∏* = 1 (its batch_norm check); minigrad gives y = b.
    assume(name != "group_norm" or x.size // kwargs["num_groups"] > 1)
    given_ = [a for a in (x, w, b) if a is not None]
    ts = [Tensor(a.copy(), requires_grad=True) for a in given_]
    it = iter(ts)
    tx, tw, tb = (next(it) if a is not None else None for a in (x, w, b))
    mine_stats = copied(stats)
    y = mine(name, tx, tw, tb, kwargs, mine_stats)
    u = np.random.default_rng(data.draw(st.integers(0, 99), label="seed")).standard_normal(
        y.shape)
    y.backward(u)

    qs = [torch.tensor(a, requires_grad=True) for a in given_]
    iq = iter(qs)
    qx, qw, qb = (next(iq) if a is not None else None for a in (x, w, b))
    torch_stats = None if stats is None else {k: torch.tensor(v) for k, v in stats.items()}
    ty = theirs(torch, name, qx, qw, qb, kwargs, torch_stats)
    ty.backward(torch.tensor(u))

    assert y.dtype == np.float64 and y.shape == x.shape
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-9, atol=1e-12)
    for t, q in zip(ts, qs):
        np.testing.assert_allclose(t.grad, q.grad.numpy(), rtol=1e-9, atol=1e-12)
    if stats is not None:
        for key in stats:
            np.testing.assert_allclose(mine_stats[key], torch_stats[key].numpy(), rtol=1e-9,
                                       atol=1e-12, err_msg=key)
        if not kwargs["training"]:
            for key in stats:          # evaluation reads the running statistics, never writes
                np.testing.assert_array_equal(mine_stats[key], stats[key])


@pytest.mark.parametrize("momentum", [0.1, 0.3, 1.0])
def test_running_statistics_after_several_steps_equal_torch(momentum):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    mean, var = np.zeros(3), np.ones(3)
    tmean, tvar = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for step in range(5):
        x = rng.standard_normal((4, 3, 2, 2)) * (step + 1) + step
        F.batch_norm(x, mean, var, training=True, momentum=momentum)
        torch.nn.functional.batch_norm(torch.tensor(x), tmean, tvar, training=True,
                                       momentum=momentum)
    np.testing.assert_allclose(mean, tmean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(var, tvar.numpy(), rtol=1e-12)
    x = rng.standard_normal((2, 3, 2, 2))
    np.testing.assert_allclose(
        F.batch_norm(x, mean, var).data,
        torch.nn.functional.batch_norm(torch.tensor(x), tmean, tvar).numpy(), rtol=1e-9)


def test_running_statistics_may_be_tensors_and_float32():
    x = np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32)
    mean, var = Tensor(np.zeros(2, np.float32)), Tensor(np.ones(2, np.float32))
    y = F.batch_norm(Tensor(x, requires_grad=True), mean, var, training=True)
    assert y.dtype == np.float32 and mean.dtype == np.float32 and var.dtype == np.float32
    np.testing.assert_allclose(mean.data, 0.1 * x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(var.data, 0.9 + 0.1 * x.var(0, ddof=1), rtol=1e-5)
    y.sum().backward()


# ------------------------------------------------------------------------- gradient checks
@pytest.mark.parametrize("name", DRAW)
@given(data=st.data())
def test_gradcheck(name, data):
    x, w, b, kwargs, stats = draw_case(data, name, affine=True)
    assert gradcheck(with_params(name, w, b, kwargs, stats), x, w, b)


@pytest.mark.parametrize("name", DRAW)
@settings(max_examples=10)
@given(data=st.data())
def test_gradgradcheck(name, data):
    x, w, b, kwargs, stats = draw_case(data, name, affine=True)
    assert gradgradcheck(with_params(name, w, b, kwargs, stats), x, w, b)


# ------------------------------------------------------------------ the composed oracle
def composed(name, x, w, b, kwargs, stats, eps=1e-5):
    """The same layer built from elementwise ops and reductions (no fused backward)."""
    if name == "batch_norm_eval":
        shape = (-1,) + (1,) * (x.ndim - 2)
        mu = stats["running_mean"].reshape(shape)
        var = stats["running_var"].reshape(shape)
        return w.reshape(shape) * ((x - mu) / (var + eps) ** 0.5) + b.reshape(shape)
    if name == "batch_norm_train":
        axes, shape, view = (0,) + tuple(range(2, x.ndim)), (-1,) + (1,) * (x.ndim - 2), x
    elif name == "layer_norm":
        k = len(kwargs["normalized_shape"])
        axes, shape, view = tuple(range(x.ndim - k, x.ndim)), w.shape, x
    else:
        axes, shape = (2,), (-1,) + (1,) * (x.ndim - 2)
        view = x.reshape(x.shape[0], kwargs["num_groups"], -1)
    mu = view.mean(axis=axes, keepdims=True)
    var = ((view - mu) ** 2).mean(axis=axes, keepdims=True)
    xhat = ((view - mu) / (var + eps) ** 0.5).reshape(x.shape)
    return w.reshape(shape) * xhat + b.reshape(shape)


@pytest.mark.parametrize("name", DRAW)
@given(data=st.data())
def test_fused_op_equals_the_composed_layer(name, data):
    x, w, b, kwargs, stats = draw_case(data, name, affine=True)
    u = np.random.default_rng(0).standard_normal(x.shape)
    results = []
    for fn in (with_params(name, w, b, kwargs, stats),
               lambda *ts: composed(name, *ts, kwargs, stats)):
        ts = [Tensor(a.copy(), requires_grad=True) for a in (x, w, b)]
        y = fn(*ts)
        y.backward(u)
        results.append([y.data] + [t.grad for t in ts])
    for fused, plain in zip(*results):
        np.testing.assert_allclose(fused, plain, rtol=1e-9, atol=1e-12)


def test_backward_equals_the_textbook_graph_node_by_node():
    """The node-by-node backward written in BatchNorm's docstring, in plain NumPy."""
    rng = np.random.default_rng(1)
    x, w, b, dy = (rng.standard_normal(s) for s in ((6, 4), (4,), (4,), (6, 4)))
    eps, m = 1e-5, x.shape[0]
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc ** 2).mean(axis=0)
    std = np.sqrt(var + eps)
    xhat = xc / std
    db, dw = dy.sum(axis=0), (dy * xhat).sum(axis=0)
    dxhat = w * dy
    dstd = -(dxhat * xc / std ** 2).sum(axis=0)
    dvar = dstd / (2 * std)
    dxc = dxhat / std + (2 / m) * xc * dvar
    dmu = -dxc.sum(axis=0)
    dx = dxc + dmu / m

    ts = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    y = BatchNorm(training=True, eps=eps)(*ts)
    y.backward(dy)
    np.testing.assert_allclose(y.data, w * xhat + b, rtol=1e-12)
    for got, expected in zip((t.grad for t in ts), (dx, dw, db)):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------- BatchNorm's blocked path
@contextlib.contextmanager
def batch_norm_path(blocked, block_bytes=None):
    """BatchNorm forced onto its blocked path (every input with spatial axes, blocks of
    ``block_bytes``) or onto its plain path (every input)."""
    saved = normalization._MIN_PLANE, normalization._BLOCK_BYTES
    normalization._MIN_PLANE = 1 if blocked else 1 << 62
    if block_bytes is not None:
        normalization._BLOCK_BYTES = block_bytes
    try:
        yield
    finally:
        normalization._MIN_PLANE, normalization._BLOCK_BYTES = saved


def _batch_norm_run(x, w, b, stats, training, needs, dy):
    """y, the gradients asked for by ``needs`` (x, w, b), and the running statistics after."""
    ts = [Tensor(a.copy(order="K"), requires_grad=n) for a, n in zip((x, w, b), needs)]
    stats = copied(stats)
    y = F.batch_norm(ts[0], stats["running_mean"], stats["running_var"], ts[1], ts[2],
                     training=training)
    if any(needs):
        y.backward(dy)
    return [y.data] + [t.grad for t, n in zip(ts, needs) if n] + list(stats.values())


def draw_batch_norm_case(data, max_spatial, N, C, offset_scales):  # noqa: N803
    """(x, w, b, running statistics, training, which inputs need a gradient) for the blocked
    path's tests: x (N, C, *spatial) with each channel shifted by up to 40 times a drawn
    scale, so that channels sit near 0 or far from it."""
    spatial = tuple(data.draw(st.lists(st.integers(1, max_spatial), min_size=1, max_size=2),
                              label="spatial"))
    N, C = data.draw(st.integers(*N), label="N"), data.draw(st.integers(*C), label="C")
    x = data.draw(arrays((N, C) + spatial), label="x")
    offset = data.draw(arrays((1, C) + (1,) * len(spatial), low=-40, high=40), label="offset")
    x = x + offset * data.draw(st.sampled_from(offset_scales), label="offset scale")
    w, b = data.draw(arrays((C,)), label="w"), data.draw(arrays((C,)), label="b")
    stats = {"running_mean": data.draw(arrays((C,), low=-40, high=40), label="running_mean"),
             "running_var": data.draw(arrays((C,), low=0.2, high=3.0), label="running_var")}
    training = data.draw(st.booleans(), label="training")
    needs = data.draw(st.sampled_from([(True, True, True), (False, True, True),
                                       (True, False, False), (False, False, True)]),
                      label="needs")
    return x, w, b, stats, training, needs


@settings(deadline=None)
@given(data=st.data())
def test_batch_norm_blocked_path_equals_the_plain_path(data):
    """Values, gradients and running statistics, in training and evaluation, on inputs whose
    channels sit near 0 or far from it (x − μ formed or not; the statistics' shift kept, or
    the pass repeated), in blocks of one sample or more."""
    x, w, b, stats, training, needs = draw_batch_norm_case(
        data, max_spatial=6, N=(2, 5), C=(1, 4), offset_scales=[0.0, 0.05, 1.0])
    if data.draw(st.booleans(), label="first sample apart"):
        x[0] += 30.0                  # the first block's mean is far from the batch's
    block = data.draw(st.sampled_from([1, 8 * x[0].size, 1 << 18]), label="block bytes")
    dy = np.random.default_rng(0).standard_normal(x.shape)
    with batch_norm_path(blocked=False):
        plain = _batch_norm_run(x, w, b, stats, training, needs, dy)
    with batch_norm_path(blocked=True, block_bytes=block):
        blocked = _batch_norm_run(x, w, b, stats, training, needs, dy)
    for got, expected in zip(blocked, plain):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


@contextlib.contextmanager
def plane_sums(fast):
    """The channels-first blocked path's sums per plane by the BLAS and ``np.vecdot`` (fast) or
    by ``einsum`` (the plain formulation)."""
    saved = normalization._FAST_PLANE_SUMS
    normalization._FAST_PLANE_SUMS = fast
    try:
        yield
    finally:
        normalization._FAST_PLANE_SUMS = saved


@pytest.mark.skipif(not hasattr(np, "vecdot"), reason="np.vecdot needs NumPy 2")
@settings(deadline=None)
@given(rows=st.integers(1, 12), P=st.integers(1, 70), data=st.data())
def test_plane_sums_by_blas_and_vecdot_equal_einsum(rows, P, data):  # noqa: N803
    """Row sums and row dot products, fast and plain, equal up to the rounding of a sum of P
    terms in another order (float64)."""
    a = data.draw(arrays((rows, P), low=-50, high=50), label="a")
    b = data.draw(arrays((rows, P), low=-50, high=50), label="b")
    bound_sums = 2 * P * np.finfo(np.float64).eps * np.abs(a).sum(axis=1)
    bound_dots = 2 * P * np.finfo(np.float64).eps * np.abs(a * b).sum(axis=1)
    got = {}
    for fast in (True, False):
        with plane_sums(fast):
            out = np.empty(rows)
            normalization._plane_dots(a, b, out=out)
            got[fast] = normalization._plane_sums(a), out
    assert np.all(np.abs(got[True][0] - got[False][0]) <= bound_sums)
    assert np.all(np.abs(got[True][1] - got[False][1]) <= bound_dots)
    np.testing.assert_allclose(got[False][0], a.sum(axis=1), rtol=0, atol=bound_sums.max())


@pytest.mark.skipif(not hasattr(np, "vecdot"), reason="np.vecdot needs NumPy 2")
@settings(deadline=None)
@given(data=st.data())
def test_batch_norm_sums_per_plane_by_blas_equal_einsum(data):
    """The blocked path with its sums per plane by the BLAS and vecdot, and by einsum: values,
    gradients and running statistics equal (float64), in training and evaluation."""
    x, w, b, stats, training, needs = draw_batch_norm_case(
        data, max_spatial=6, N=(2, 5), C=(1, 4), offset_scales=[0.0, 0.05, 1.0])
    block = data.draw(st.sampled_from([1, 8 * x[0].size, 1 << 18]), label="block bytes")
    dy = np.random.default_rng(0).standard_normal(x.shape)
    results = {}
    for fast in (True, False):
        with batch_norm_path(blocked=True, block_bytes=block), plane_sums(fast):
            results[fast] = _batch_norm_run(x, w, b, stats, training, needs, dy)
    for got, expected in zip(results[True], results[False]):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


@settings(deadline=None, max_examples=25)
@given(data=st.data())
def test_batch_norm_blocked_path_gradcheck(data):
    x, w, b, kwargs, stats = draw_case(
        data, data.draw(st.sampled_from(["batch_norm_train", "batch_norm_eval"])), affine=True)
    assume(x.ndim > 2)
    fn = with_params("batch_norm_train" if kwargs["training"] else "batch_norm_eval", w, b,
                     kwargs, stats)
    with batch_norm_path(blocked=True, block_bytes=8 * x[0].size):
        assert gradcheck(fn, x, w, b)
        assert gradgradcheck(fn, x, w, b)


def test_batch_norm_blocked_path_on_images_matches_torch_and_keeps_float32():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 5, 9, 7))
    w, b = rng.standard_normal(5), rng.standard_normal(5)
    stats = {"running_mean": np.zeros(5), "running_var": np.ones(5)}
    dy = rng.standard_normal(x.shape)
    for training in (True, False):
        mine_ = _batch_norm_run(x, w, b, stats, training, (True, True, True), dy)
        qs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        tstats = {k: torch.tensor(v) for k, v in stats.items()}
        y = torch.nn.functional.batch_norm(qs[0], tstats["running_mean"],
                                           tstats["running_var"], qs[1], qs[2],
                                           training=training)
        y.backward(torch.tensor(dy))
        expected = [y.detach().numpy()] + [q.grad.numpy() for q in qs] + [
            v.numpy() for v in tstats.values()]
        for got, want in zip(mine_, expected):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    x32 = Tensor(x.astype(np.float32), requires_grad=True)
    y32 = F.batch_norm(x32, None, None, training=True)
    y32.backward(dy.astype(np.float32))
    assert y32.dtype == np.float32 and x32.grad.dtype == np.float32


@pytest.mark.parametrize("first_apart", [False, True])
def test_batch_norm_float32_statistics_stay_accurate_for_a_large_mean(first_apart):
    """float32 images around 1000 with σ = 1 (a naive E[x²] − E[x]² in float32 loses every
    digit of σ² there): σ², y and the gradients as float64 computes them from the same values,
    also when the first sample lies far from the rest (its mean, the shift, is then no good)."""
    rng = np.random.default_rng(7)
    x = (1000 + rng.standard_normal((8, 3, 8, 8))).astype(np.float32)
    if first_apart:
        x[0] -= 200
    x64 = x.astype(np.float64)
    dy = rng.standard_normal(x.shape)
    for block_bytes in (None, 4 * x[0].size):          # one block; one sample per block
        with batch_norm_path(blocked=True, block_bytes=block_bytes):
            got = _batch_norm_run(x, np.ones(3, np.float32), np.zeros(3, np.float32),
                                  {"running_mean": np.zeros(3, np.float32),
                                   "running_var": np.zeros(3, np.float32)}, True,
                                  (True, True, True), dy.astype(np.float32))
        want = _batch_norm_run(x64, np.ones(3), np.zeros(3),
                               {"running_mean": np.zeros(3), "running_var": np.zeros(3)}, True,
                               (True, True, True), dy)
        names = ["y", "dx", "dw", "db", "running_mean", "running_var"]
        scale = [1.0, np.abs(want[1]).max(), np.abs(want[2]).max(), np.abs(want[3]).max(),
                 100.0, want[5].max()]
        for name, g, e, s in zip(names, got, want, scale):
            # x − μ in float32 is off by up to half an ulp of μ (3e-5): relative errors of
            # that order are float32's own; the naive formula's are of order 1.
            assert np.abs(g - e).max() <= 2e-4 * s, name


def test_batch_norm_blocked_path_gives_the_same_bits_on_one_and_two_threads(monkeypatch):
    import minigrad
    from minigrad import parallel

    # Blocks of 256 KiB (12 of them), shared out from 4096 elements: two threads split them.
    monkeypatch.setattr(parallel, "MIN_WORK", 1 << 12)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((48, 4, 64, 64)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    stats = {"running_mean": np.zeros(4, np.float32), "running_var": np.ones(4, np.float32)}
    w, b = np.ones(4, np.float32), np.zeros(4, np.float32)
    threads = minigrad.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            minigrad.set_num_threads(n)
            with batch_norm_path(blocked=True, block_bytes=1 << 18):
                results.append([_batch_norm_run(x, w, b, stats, training, (True, True, True),
                                                dy) for training in (True, False)])
    finally:
        minigrad.set_num_threads(threads)
    for one, two in zip(*results):
        for a, c in zip(one, two):
            np.testing.assert_array_equal(a, c)


@contextlib.contextmanager
def eval_cache(size):
    """BatchNorm's cache of evaluation constants with room for ``size`` sets (0: none), empty."""
    cache = normalization._eval_cache
    saved = cache.max_entries
    cache.max_entries = size
    cache.clear()
    try:
        yield
    finally:
        cache.max_entries = saved
        cache.clear()


@settings(deadline=None, max_examples=40)
@given(data=st.data())
def test_batch_norm_eval_constants_from_the_cache_give_the_same_bits(data):
    """Evaluation with its constants made on every call, and kept (a second call finds them):
    y and the three gradients bit for bit equal, in C order and channels last, with x − μ
    formed or not, float32 and float64, the running statistics in x's dtype (kept under
    their own bytes) or in the other one (kept under their bytes rounded to x's dtype)."""
    x, w, b, stats, _, needs = draw_batch_norm_case(
        data, max_spatial=5, N=(1, 4), C=(1, 4), offset_scales=[0.0, 1.0])
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    stats_dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="stats dtype")
    x, w, b = (a.astype(dtype) for a in (x, w, b))
    stats = {k: v.astype(stats_dtype) for k, v in stats.items()}
    x = laid_out(x, data.draw(st.sampled_from(["contiguous", "channels-last"]), label="layout"))
    dy = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    with batch_norm_path(blocked=True), eval_cache(0):
        made = _batch_norm_run(x, w, b, stats, False, needs, dy)
    with batch_norm_path(blocked=True), eval_cache(8):
        first = _batch_norm_run(x, w, b, stats, False, needs, dy)
        assert len(normalization._eval_cache) == 1
        again = _batch_norm_run(x, w, b, stats, False, needs, dy)
        assert len(normalization._eval_cache) == 1
    for m, f, a in zip(made, first, again):
        np.testing.assert_array_equal(f, m)
        np.testing.assert_array_equal(a, m)


def test_batch_norm_eval_cache_shared_by_threads_gives_each_its_own_bits():
    """User threads evaluating BatchNorm at once with more sets of statistics than the cache
    keeps (so they put, find and evict in turn): every y is, bit for bit, the y of the same
    call made alone with no cache, and the cache stays within its bounds."""
    from split_threads import run_together

    from minigrad import no_grad

    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 5, 5)).astype(np.float32)
    sets = [tuple(rng.standard_normal(4).astype(np.float32) for _ in range(4)) for _ in range(12)]
    sets = [(m, np.abs(v) + 0.5, w, b) for m, v, w, b in sets]

    def y_of(i):
        m, v, w, b = sets[i]
        with no_grad():
            return F.batch_norm(x, m, v, w, b, training=False).data

    with batch_norm_path(blocked=True):
        with eval_cache(0):
            want = [y_of(i).tobytes() for i in range(len(sets))]
        errors = []

        def work(t):
            for k in range(150):
                i = (k * 5 + t) % len(sets)
                if y_of(i).tobytes() != want[i]:
                    errors.append((t, i))

        with eval_cache(8):
            errors += run_together(work, 4, switch_interval=1e-6)
            cache = normalization._eval_cache
            entries = cache.entries()
            assert len(entries) <= 8 and cache.bytes == sum(n for _, _, n in entries)
    assert not errors


def test_batch_norm_eval_cache_follows_in_place_changes_and_stays_small():
    """An in-place change of a running statistic or of w between two calls is seen by the
    second (the key is the values); the kept constants are read-only; at most
    ``_eval_cache.max_entries`` sets are kept, with at most ``_eval_cache.max_bytes`` of rows."""
    from minigrad import nn, no_grad

    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    bn = nn.BatchNorm2d(3).eval()
    with eval_cache(2), no_grad():
        bn(x)
        bn.running_mean[...] = [1.0, -2.0, 0.5]
        bn.running_var[...] = [4.0, 0.25, 1.0]
        got = bn(x).data
        bn.weight.data[...] = [2.0, 1.0, -1.0]
        got_w = bn(x).data
        kept = [constants for _, constants, _ in normalization._eval_cache.entries()]
        for _ in range(3):
            bn.bias.data += 1.0
            bn(x)
        assert len(normalization._eval_cache) == 2
    saved = normalization._eval_cache.max_bytes
    try:
        with eval_cache(8), no_grad():
            bn(x)
            (_, _, size), = normalization._eval_cache.entries()  # rows of C·P values
            assert size in (2 * x[0].nbytes, 3 * x[0].nbytes)
            normalization._eval_cache.max_bytes = size * 3 // 2
            for _ in range(4):
                bn.bias.data += 1.0
                bn(x)
                assert [n for _, _, n in normalization._eval_cache.entries()] == [size]
    finally:
        normalization._eval_cache.max_bytes = saved
    mean, var = bn.running_mean.reshape(3, 1, 1), bn.running_var.reshape(3, 1, 1)
    np.testing.assert_allclose(got, (x - mean) / np.sqrt(var + bn.eps), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_w, (x - mean) / np.sqrt(var + bn.eps)
                               * np.array([2.0, 1.0, -1.0], np.float32).reshape(3, 1, 1),
                               rtol=1e-5, atol=1e-6)
    for mu, istd, w64, _, rows in kept:
        assert not any(a.flags.writeable for a in (mu, istd, w64, *rows))


# ------------------------------------------------- BatchNorm on channels-last and strided views
def laid_out(a, layout):
    """``a`` (N, C, *) with the same values in another memory layout: C order, channels last
    (a view whose memory is (N, *, C), as a channels-last convolution gives), or a strided view
    (every other element of a larger array along the last axis)."""
    if layout == "contiguous":
        return np.ascontiguousarray(a)
    if layout == "channels-last":
        return np.moveaxis(np.ascontiguousarray(np.moveaxis(a, 1, -1)), -1, 1)
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def is_channels_last(a):
    return np.moveaxis(a, 1, -1).flags.c_contiguous


LAYOUTS = ["contiguous", "channels-last", "strided"]


@settings(deadline=None)
@given(data=st.data())
def test_batch_norm_on_any_layout_equals_the_plain_path_and_keeps_x_layout(data):
    """Values, gradients and running statistics of x and dy in every pair of layouts, on the
    blocked path (blocks of one row or more), equal to the plain path on C-order copies; y and
    dx are laid out as x is when x is channels last, in C order otherwise."""
    x, w, b, stats, training, needs = draw_batch_norm_case(
        data, max_spatial=5, N=(2, 4), C=(2, 4), offset_scales=[0.0, 1.0])
    C = x.shape[1]
    x_layout = data.draw(st.sampled_from(LAYOUTS), label="x layout")
    dy_layout = data.draw(st.sampled_from(LAYOUTS), label="dy layout")
    block = data.draw(st.sampled_from([1, 8 * C * 3, 1 << 18]), label="block bytes")
    dy = np.random.default_rng(0).standard_normal(x.shape)
    with batch_norm_path(blocked=False):
        plain = _batch_norm_run(x, w, b, stats, training, needs, dy)
    xv, dyv = laid_out(x, x_layout), laid_out(dy, dy_layout)
    with batch_norm_path(blocked=True, block_bytes=block):
        got = _batch_norm_run(xv, w, b, stats, training, needs, dyv)
        fn = BatchNorm(training, 1e-5, stats["running_mean"], stats["running_var"])
        y = fn(Tensor(xv, requires_grad=True), Tensor(w, requires_grad=True),
               Tensor(b, requires_grad=True))
        dx = fn.backward(dyv)[0]
    for g, e in zip(got, plain):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(y.data, plain[0], rtol=1e-9, atol=1e-9)   # x as laid out
    if needs[0]:
        np.testing.assert_allclose(dx, plain[1], rtol=1e-9, atol=1e-9)
    last = x_layout == "channels-last" and not xv.flags.c_contiguous   # (P = 1: both)
    assert is_channels_last(y.data) == last or y.data.flags.c_contiguous, y.data.strides
    assert is_channels_last(dx) == last or dx.flags.c_contiguous, dx.strides
    if last:
        assert fn.layout == "channels-last"
        if needs[0]:                    # the leaf's .grad is dx itself, not a C-order copy
            assert is_channels_last(got[1]) and not got[1].flags.c_contiguous
    else:
        assert y.data.flags.c_contiguous and dx.flags.c_contiguous


@settings(deadline=None, max_examples=25)
@given(data=st.data())
def test_batch_norm_channels_last_gradcheck(data):
    """float64 central differences through the channels-last path: x given as (N, *, C) and
    moved to (N, C, *) (a channels-last view), y moved back (so dy arrives channels last too),
    or left as it is (dy in C order)."""
    x, w, b, kwargs, stats = draw_case(
        data, data.draw(st.sampled_from(["batch_norm_train", "batch_norm_eval"])), affine=True)
    assume(x.ndim > 2 and x.shape[1] > 1 and math.prod(x.shape[2:]) > 1)
    name = "batch_norm_train" if kwargs["training"] else "batch_norm_eval"
    move_back = data.draw(st.booleans(), label="y moved back to (N, *, C)")
    inner = with_params(name, w, b, kwargs, stats)
    layouts = []

    def fn(xt, wt, bt):
        x_view = xt.transpose((0, xt.ndim - 1) + tuple(range(1, xt.ndim - 1)))
        y = inner(x_view, wt, bt)
        if y.creator is not None:
            layouts.append(y.creator.layout)
        return y.transpose((0,) + tuple(range(2, y.ndim)) + (1,)) if move_back else y

    x_last = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    with batch_norm_path(blocked=True, block_bytes=8 * x.shape[1]):
        assert gradcheck(fn, x_last, w, b)
        assert gradgradcheck(fn, x_last, w, b)
    assert "channels-last" in layouts


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_channels_last_gives_the_same_bits_on_one_and_two_threads(training,
                                                                           monkeypatch):
    import minigrad
    from minigrad import parallel

    # Blocks of 256 KiB (6 of them, long enough to sum down their rows), shared out from
    # 4096 elements: two threads split them.
    monkeypatch.setattr(parallel, "MIN_WORK", 1 << 12)
    rng = np.random.default_rng(3)
    x = laid_out(rng.standard_normal((24, 16, 32, 32)).astype(np.float32), "channels-last")
    dy = laid_out(rng.standard_normal(x.shape).astype(np.float32), "channels-last")
    stats = {"running_mean": np.zeros(16, np.float32), "running_var": np.ones(16, np.float32)}
    w, b = np.ones(16, np.float32), np.zeros(16, np.float32)
    threads = minigrad.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            minigrad.set_num_threads(n)
            with batch_norm_path(blocked=True, block_bytes=1 << 18):
                results.append(_batch_norm_run(x, w, b, stats, training, (True, True, True),
                                               dy))
    finally:
        minigrad.set_num_threads(threads)
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


@settings(deadline=None, max_examples=60)
@given(N=st.integers(1, 9), C=st.integers(1, 40), H=st.integers(4, 30), W=st.integers(4, 30),
       dtype=st.sampled_from([np.float32, np.float64]))
@example(N=7, C=37, H=30, W=30, dtype=np.float64)    # 7 rows of 266 KB: 4 blocks, not 2
def test_batch_norm_blocks_and_channels_last_tiles(N, C, H, W, dtype):  # noqa: N803
    """The blocks are fixed by the shape: at most ``_BLOCK_BYTES`` each (x whole below that,
    else at least two, so that two threads share an x of 4 MiB); the channels-last view puts
    k positions in a row, k the largest divisor of N·H·W within the tile's limit, and its
    per-channel row is the C values tiled k times."""
    x = np.zeros((N, C, H, W), dtype)
    x_last = np.ascontiguousarray(np.moveaxis(x, 1, -1)).transpose(0, 3, 1, 2)
    for block_bytes in (None, 1 << 20, x.nbytes):
        with batch_norm_path(blocked=True, block_bytes=block_bytes):
            views = (normalization._ChannelsFirst(x), normalization._ChannelsLast(x_last))
            limit_bytes = normalization._BLOCK_BYTES
        for view in views:
            rows, width = view.x2.shape
            blocks = -(-rows // view.step)
            if x.nbytes < limit_bytes:
                assert blocks == 1
            else:
                assert view.step * width * x.itemsize <= limit_bytes or view.step == 1
                assert blocks >= 2 or rows == 1
    view = normalization._ChannelsLast(x_last)
    limit = normalization._TILE_VALUES // C
    k = max(d for d in range(1, min(limit, N * H * W) + 1) if N * H * W % d == 0)
    assert view.k == k and view.x2.shape == (N * H * W // k, k * C)
    values = np.random.default_rng(C).standard_normal(C)
    np.testing.assert_array_equal(view.row(values), np.tile(values.astype(dtype), k)[None])


# --------------------------------------- LayerNorm's row path, GroupNorm's plane path
@contextlib.contextmanager
def norm_path(fast, block_bytes=None, min_piece=None):
    """LayerNorm and GroupNorm forced onto their row and plane paths (any size, rows and
    planes of one value or more, blocks of ``block_bytes``, pieces of ``min_piece`` values or
    more) or onto their plain paths."""
    names = ("_MIN_VALUES", "_MIN_ROW", "_MIN_PLANE", "_BLOCK_BYTES", "_MIN_PIECE",
             "_BACKWARD_BLOCK_BYTES")
    saved = [getattr(normalization, n) for n in names]
    for n in names[:3]:
        setattr(normalization, n, 1 if fast else 1 << 62)
    if block_bytes is not None:             # backward in blocks of half as many bytes
        normalization._BLOCK_BYTES = block_bytes
        normalization._BACKWARD_BLOCK_BYTES = max(1, block_bytes // 2)
    if min_piece is not None:
        normalization._MIN_PIECE = min_piece
    try:
        yield
    finally:
        for n, v in zip(names, saved):
            setattr(normalization, n, v)


def _norm_run(name, x, w, b, setting, needs, dy):
    """y and the gradients asked for by ``needs`` (x, w, b) of layer_norm or group_norm."""
    ts = [Tensor(a.copy(order="K"), requires_grad=n) for a, n in zip((x, w, b), needs)]
    if name == "layer_norm":
        y = F.layer_norm(ts[0], setting, ts[1], ts[2])
    else:
        y = F.group_norm(ts[0], setting, ts[1], ts[2])
    if any(needs):
        y.backward(dy)
    return [y.data] + [t.grad for t, n in zip(ts, needs) if n]


def draw_norm_case(data, name, dtype=np.float64):
    """(x, w, b, normalized_shape or num_groups, needs): x with its samples (or groups)
    shifted by up to 40 times a drawn scale (near 0 or far from it: x − μ formed or not, the
    sums repeated with a shift or not), in C order, channels last or strided."""
    if name == "layer_norm":
        lead = tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=2),
                               label="lead"))
        normalized = tuple(data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=3),
                                     label="normalized_shape"))
        shape, setting, param = lead + normalized, normalized, normalized
    else:
        G = data.draw(st.integers(1, 3), label="num_groups")
        C = G * data.draw(st.integers(1, 3), label="channels per group")
        spatial = tuple(data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=2),
                                  label="spatial"))
        shape, setting, param = (data.draw(st.integers(1, 4), label="N"), C) + spatial, G, (C,)
    x = data.draw(distinct_arrays(shape, low=-8, high=8, min_gap=0.004), label="x")
    offset = data.draw(arrays(shape[:1] + (1,) * (len(shape) - 1), low=-40, high=40),
                       label="offset")
    x = x + offset * data.draw(st.sampled_from([0.0, 0.05, 1.0]), label="offset scale")
    layout = data.draw(st.sampled_from(LAYOUTS if x.ndim >= 3 else LAYOUTS[::2]),
                       label="layout")
    w, b = data.draw(arrays(param), label="w"), data.draw(arrays(param), label="b")
    needs = data.draw(st.sampled_from([(True, True, True), (False, True, True),
                                       (True, False, False), (False, False, True)]),
                      label="needs")
    return laid_out(x.astype(dtype), layout), w.astype(dtype), b.astype(dtype), setting, needs


@pytest.mark.parametrize("name", ["layer_norm", "group_norm"])
@settings(deadline=None, max_examples=150)
@given(data=st.data())
def test_fast_path_equals_the_plain_path(name, data):
    """LayerNorm's row path and GroupNorm's plane path against their plain paths: values
    and gradients equal in float64 (to the rounding of sums in another order), in blocks of
    one row or more, on inputs near 0 or far from it, in every layout of x and dy, rows
    summed whole or in pieces."""
    x, w, b, setting, needs = draw_norm_case(data, name)
    dy = laid_out(np.random.default_rng(0).standard_normal(x.shape),
                  data.draw(st.sampled_from(LAYOUTS if x.ndim >= 3 else LAYOUTS[::2]),
                            label="dy layout"))
    block = data.draw(st.sampled_from([1, 8 * x[0].size, 1 << 18]), label="block bytes")
    piece = data.draw(st.sampled_from([1, 128]), label="min piece")
    with norm_path(fast=False):
        plain = _norm_run(name, x, w, b, setting, needs, dy)
    with norm_path(fast=True, block_bytes=block, min_piece=piece):
        fast = _norm_run(name, x, w, b, setting, needs, dy)
    for got, expected in zip(fast, plain):
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["layer_norm", "group_norm"])
@settings(deadline=None, max_examples=60)
@given(data=st.data())
def test_fast_path_in_float32_is_as_close_to_float64_as_the_plain_path(name, data):
    """float32 on both paths, against float64 from the same values: the fast path's values
    and gradients at most 1.5× as far off as the plain path's, plus 1e-5 of the largest
    (the two sum in different orders), and float32. (x has no two values closer than 0.004, as
    in the other tests: where all are equal, σ² is rounding noise.)"""
    x, w, b, setting, needs = draw_norm_case(data, name, np.float32)
    # One value per sample or group has σ² = 0: x̂ = 0, and dx the difference of two terms
    # of size |dy|/√ε, exact on the plain path only.
    assume((math.prod(setting) if name == "layer_norm" else x[0].size // setting) > 1)
    dy = np.random.default_rng(0).standard_normal(x.shape)
    block = data.draw(st.sampled_from([1, 1 << 18]), label="block bytes")
    want = _norm_run(name, x.astype(np.float64), w.astype(np.float64),
                     b.astype(np.float64), setting, needs, dy)
    with norm_path(fast=False):
        plain = _norm_run(name, x, w, b, setting, needs, dy.astype(np.float32))
    with norm_path(fast=True, block_bytes=block):
        fast = _norm_run(name, x, w, b, setting, needs, dy.astype(np.float32))
    for got, ref, expected in zip(fast, plain, want):
        assert got.dtype == np.float32
        scale = max(np.abs(expected).max(), 1.0)
        assert np.abs(got - expected).max() <= 1.5 * np.abs(ref - expected).max() + 1e-5 * scale


@pytest.mark.parametrize("name", ["layer_norm", "group_norm"])
@settings(deadline=None, max_examples=25)
@given(data=st.data())
def test_fast_path_gradcheck(name, data):
    x, w, b, kwargs, _ = draw_case(data, name, affine=True)
    setting = kwargs["normalized_shape"] if name == "layer_norm" else kwargs["num_groups"]
    block = data.draw(st.sampled_from([1, 1 << 18]), label="block bytes")

    def fn(xt, wt, bt):
        if name == "layer_norm":
            return F.layer_norm(xt, setting, wt, bt)
        return F.group_norm(xt, setting, wt, bt)

    with norm_path(fast=True, block_bytes=block):
        assert gradcheck(fn, x, w, b)
        assert gradgradcheck(fn, x, w, b)


@pytest.mark.parametrize("name, shape, setting", [
    ("layer_norm", (6, 5, 9, 7), (5, 9, 7)), ("layer_norm", (3, 4, 40), (40,)),
    ("group_norm", (6, 6, 9, 7), 3), ("group_norm", (4, 8, 20), 8)])
@pytest.mark.parametrize("layout", ["contiguous", "channels-last"])
def test_fast_path_on_images_matches_torch(name, shape, setting, layout):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = laid_out(rng.standard_normal(shape) + 0.5, layout)
    param = setting if name == "layer_norm" else (shape[1],)
    w, b, dy = rng.standard_normal(param), rng.standard_normal(param), rng.standard_normal(shape)
    with norm_path(fast=True, block_bytes=8 * x[0].size):
        got = _norm_run(name, x, w, b, setting, (True, True, True), dy)
    qs = [torch.tensor(np.ascontiguousarray(a), requires_grad=True) for a in (x, w, b)]
    fn = torch.nn.functional.layer_norm if name == "layer_norm" else \
        torch.nn.functional.group_norm
    y = fn(qs[0], setting, qs[1], qs[2])
    y.backward(torch.tensor(dy))
    for g, e in zip(got, [y.detach().numpy()] + [q.grad.numpy() for q in qs]):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)


def _float32_errors(name, x, setting, fast):
    """The largest errors of y, dx, dw and db in float32 against float64 from the same
    values, each relative to the largest of its float64 values."""
    rng = np.random.default_rng(8)
    param = setting if name == "layer_norm" else (x.shape[1],)
    w, b = rng.standard_normal(param), rng.standard_normal(param)
    dy = rng.standard_normal(x.shape)
    with norm_path(fast=fast):
        got = _norm_run(name, x, w.astype(np.float32), b.astype(np.float32), setting,
                        (True, True, True), dy.astype(np.float32))
    want = _norm_run(name, x.astype(np.float64), w, b, setting, (True, True, True), dy)
    return [np.abs(g - e).max() / np.abs(e).max() for g, e in zip(got, want)]


@pytest.mark.parametrize("name, shape, setting", [
    ("layer_norm", (8, 512), (512,)), ("layer_norm", (4, 16, 16, 32), (16, 16, 32)),
    ("group_norm", (4, 32, 16, 16), 8), ("group_norm", (2, 8, 64, 64), 2)])
@pytest.mark.parametrize("mean", [0.0, 3.0, 1e4])
def test_fast_path_float32_stays_as_accurate_as_the_plain_path(name, shape, setting, mean):
    """float32 x = mean + N(0, 1), around 0 or far from it (a naive E[x²] − E[x]² in float32
    loses every digit of σ² at 1e4): y and the gradients as float64 computes them from the
    same values, at most as far off as the plain path (two passes, NumPy's pairwise sums) is,
    with room for the rounding of a different order of sums (1.5×, or 2e-6 of the scale)."""
    x = (mean + np.random.default_rng(7).standard_normal(shape)).astype(np.float32)
    fast = _float32_errors(name, x, setting, fast=True)
    plain = _float32_errors(name, x, setting, fast=False)
    for what, f, p in zip(["y", "dx", "dw", "db"], fast, plain):
        assert f <= max(1.5 * p, 2e-6), (what, f, p)


@pytest.mark.parametrize("name, shape, setting", [
    ("layer_norm", (8, 512), (512,)), ("layer_norm", (4, 16, 16, 32), (16, 16, 32)),
    ("layer_norm", (64, 40), (40,)), ("group_norm", (4, 32, 16, 16), 8),
    ("group_norm", (2, 8, 64, 64), 2), ("group_norm", (4, 8, 10, 10), 2)])
@pytest.mark.parametrize("layout", ["contiguous", "channels-last"])
def test_fast_path_far_from_zero_is_as_accurate_as_near_it(name, shape, setting, layout):
    """float32 x = 1e4 + N(0, 1): forward, the sums taken again from t = x − K leave t in y,
    which is then formed as t − (μ − K); backward takes its sums with x − K and corrects
    them by μ − K in float64. Nothing is lost to the rounding of μ to float32 (half an ulp of
    1e4, 5e-4 in x̂): y, dx, dw and db within 4 float32 ulps of the largest value of each in
    float64 (the plain path: up to 6e-4)."""
    x = laid_out((1e4 + np.random.default_rng(7).standard_normal(shape)).astype(np.float32),
                 layout)
    errors = _float32_errors(name, x, setting, fast=True)
    assert max(errors) <= 4 * np.finfo(np.float32).eps, errors


@pytest.mark.parametrize("name, shape, setting", [
    ("layer_norm", (64, 32, 16, 16), (32, 16, 16)), ("group_norm", (24, 16, 32, 32), 4)])
@pytest.mark.parametrize("layout", ["contiguous", "channels-last"])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_fast_path_gives_the_same_bits_on_one_and_two_threads(name, shape, setting, layout,
                                                              offset, monkeypatch):
    """Around 0 and around 1e4 (sums taken again from x − K, y formed from it, backward
    with x − K and corrections by μ − K)."""
    import minigrad
    from minigrad import parallel

    # Blocks of 256 KiB forward, 128 KiB backward, shared out from 4096 elements: two
    # threads split them.
    monkeypatch.setattr(parallel, "MIN_WORK", 1 << 12)
    rng = np.random.default_rng(4)
    x = laid_out((offset + rng.standard_normal(shape)).astype(np.float32), layout)
    dy = laid_out(rng.standard_normal(shape).astype(np.float32), layout)
    param = setting if name == "layer_norm" else (shape[1],)
    w, b = (rng.standard_normal(param).astype(np.float32) for _ in range(2))
    threads = minigrad.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            minigrad.set_num_threads(n)
            with norm_path(fast=True, block_bytes=1 << 18):
                results.append(_norm_run(name, x, w, b, setting, (True, True, True), dy))
    finally:
        minigrad.set_num_threads(threads)
    for a, c in zip(*results):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("inner", [511, 512, 1000, 4096, 8192])
def test_short_buffers_leave_the_bits_and_the_buffer_size_as_they_were(inner):
    """A broadcasting step with NumPy's buffer set to _SHORT_BUFFER gives the same bits as
    with its own size, and the size is restored afterwards."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((40, inner)).astype(np.float32)
    col, row = x[:, :1] * 0.5, x[0] * 2
    before = np.getbufsize()
    expected = x * col + row
    old = normalization._short_buffers(inner, x.size)
    try:
        got = x * col + row
    finally:
        if old is not None:
            np.setbufsize(old)
    assert (old is not None) == (512 <= inner < 8192)
    np.testing.assert_array_equal(got, expected)
    assert np.getbufsize() == before


@pytest.mark.parametrize("name, setting", [("layer_norm", (4, 5, 6)), ("group_norm", 2)])
def test_fast_path_on_a_channels_last_input_keeps_its_layout(name, setting):
    """A channels-last x is read as it lies (LayerNorm over (C, H, W): rows (H, W, C);
    GroupNorm: planes down the positions): y and dx channels last too, w's and b's gradients
    in their own shape."""
    rng = np.random.default_rng(6)
    x = laid_out(rng.standard_normal((3, 4, 5, 6)), "channels-last")
    param = setting if name == "layer_norm" else (4,)
    w, b, dy = rng.standard_normal(param), rng.standard_normal(param), \
        laid_out(rng.standard_normal((3, 4, 5, 6)), "channels-last")
    with norm_path(fast=True):
        y, dx, dw, db = _norm_run(name, x, w, b, setting, (True, True, True), dy)
    assert is_channels_last(y) and not y.flags.c_contiguous
    assert is_channels_last(dx) and not dx.flags.c_contiguous
    assert dw.shape == db.shape == param


@pytest.mark.parametrize("name", ["layer_norm", "group_norm"])
@settings(deadline=None, max_examples=20)
@given(data=st.data())
def test_fast_path_channels_last_gradcheck(name, data):
    """float64 central differences through the channels-last reading: x given as (N, *, C)
    and moved to a channels-last (N, C, *) view inside the function (gradcheck perturbs its
    input's own memory)."""
    C = data.draw(st.sampled_from([2, 4]), label="C")
    spatial = tuple(data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2),
                              label="spatial"))
    x = data.draw(spread(data.draw(st.integers(1, 2), label="N"), C, *spatial), label="x")
    if name == "layer_norm":
        setting = param = x.shape[1:]                # normalised over (C, *)
    else:
        setting, param = data.draw(st.sampled_from([1, 2]), label="num_groups"), (C,)
    w, b = data.draw(arrays(param), label="w"), data.draw(arrays(param), label="b")

    def fn(xt, wt, bt):
        xv = xt.transpose((0, xt.ndim - 1) + tuple(range(1, xt.ndim - 1)))
        if name == "layer_norm":
            return F.layer_norm(xv, setting, wt, bt)
        return F.group_norm(xv, setting, wt, bt)

    with norm_path(fast=True, block_bytes=8 * x[0].size):
        assert gradcheck(fn, np.ascontiguousarray(np.moveaxis(x, 1, -1)), w, b)


@pytest.mark.parametrize("shape, strides", [((4, 5, 6), (120, 24, 4)), ((4, 5, 6), (120, 4, 20)),
                                            ((2, 1, 3), (12, 4, 4)), ((3, 4), (4, 12))])
def test_c_contiguity_from_shape_and_strides_equals_numpys(shape, strides):
    a = np.lib.stride_tricks.as_strided(np.zeros(200, np.float32), shape, strides)
    assert normalization._c_contiguous(shape, strides, 4) == a.flags.c_contiguous


# ------------------------------------------------------------------------------- details
@pytest.mark.parametrize("call, axis", [
    (lambda x: F.layer_norm(x, 4), 1),
    (lambda x: F.group_norm(x, 1), 1),
    (lambda x: F.batch_norm(x, None, None, training=True), 0),
])
def test_missing_weight_and_bias_get_no_gradient_and_keep_float32(call, axis):
    x = Tensor(np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32) * 5 + 2,
               requires_grad=True)
    y = call(x)
    assert y.dtype == np.float32
    assert y.creator.needs_input_grad == (True, False, False)
    np.testing.assert_allclose(y.data.mean(axis=axis), 0, atol=1e-5)
    np.testing.assert_allclose(y.data.var(axis=axis), 1, rtol=1e-3)
    y.backward(np.ones(y.shape, np.float32))
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, 0, atol=1e-5)   # Σ x̂ = 0: a constant dy changes nothing


@pytest.mark.parametrize("call", [
    lambda x: F.layer_norm(x, (2, 3)),
    lambda x: F.group_norm(x, 2),
    lambda x: F.batch_norm(x, None, None, training=True),
])
def test_constant_input_gives_the_bias_and_finite_gradients(call):
    x = Tensor(np.full((4, 2, 3), 0.7), requires_grad=True)
    y = call(x)
    np.testing.assert_allclose(y.data, 0, atol=1e-8)
    y.backward(np.random.default_rng(0).standard_normal(y.shape))
    assert np.all(np.isfinite(x.grad))


def test_batch_norm_eval_is_an_affine_map_of_x():
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    y = F.batch_norm(x, np.array([1.0, 2.0]), np.array([4.0, 16.0]), np.array([2.0, 1.0]),
                     np.array([0.0, 1.0]), eps=0.0)
    np.testing.assert_allclose(y.data, [[0.0, 1.0], [2.0, 2.0]])   # w·(x − μ)/σ + b


# -------------------------------------------------------------------------------- errors
ERRORS = [
    (lambda: F.batch_norm(np.ones((1, 3)), np.zeros(3), np.ones(3), training=True),
     "batch_norm: expected more than 1 value per channel when training, got input of shape "
     "(1, 3)"),
    (lambda: F.batch_norm(np.ones((1, 3, 1, 1)), None, None, training=True),
     "more than 1 value per channel when training, got input of shape (1, 3, 1, 1)"),
    (lambda: F.batch_norm(np.ones((2, 3)), np.zeros(4), np.ones(4)),
     "running_mean must have shape (3,) (one value per channel) for an input of shape (2, 3); "
     "got running_mean.shape=(4,)"),
    (lambda: F.batch_norm(np.ones((2, 3)), np.zeros(4), np.ones(4), training=True),
     "running_mean must have shape (3,)"),
    (lambda: F.batch_norm(np.ones((2, 3, 5)), None, None, np.ones(5), training=True),
     "batch_norm: weight must have shape (3,) (one value per channel) for an input of shape "
     "(2, 3, 5); got weight.shape=(5,)"),
    (lambda: F.batch_norm(np.ones(3), np.zeros(3), np.ones(3)),
     "batch_norm: input must be (N, C) or (N, C, *), got x.shape=(3,)"),
    (lambda: F.batch_norm(np.ones((2, 3)), None, None),
     "running_mean and running_var are needed when not training"),
    (lambda: F.batch_norm(np.ones((2, 3)), np.zeros(3), np.ones(3), training=True,
                          momentum=None),
     "momentum=None (a cumulative average) needs the number of batches seen"),
    (lambda: F.batch_norm(np.ones((2, 3)), np.zeros(3), np.ones(3), momentum=1.5),
     "momentum must be a number in [0, 1], got 1.5"),
    (lambda: F.layer_norm(np.ones((2, 4)), 3),
     "layer_norm: normalized_shape=(3,) must match the trailing axes of the input, expected "
     "x.shape=(*, 3); got x.shape=(2, 4)"),
    (lambda: F.layer_norm(np.ones((2, 4)), (2, 4, 1)),
     "normalized_shape=(2, 4, 1) must match the trailing axes"),
    (lambda: F.layer_norm(np.ones((2, 4)), 4, np.ones(3)),
     "layer_norm: weight must have shape (4,) (normalized_shape) for an input of shape (2, 4); "
     "got weight.shape=(3,)"),
    (lambda: F.layer_norm(np.ones((2, 4)), ()), "normalized_shape must be an int or a"),
    (lambda: F.group_norm(np.ones((2, 6, 3)), 4),
     "group_norm: num_channels=6 is not divisible by num_groups=4 (x.shape=(2, 6, 3))"),
    (lambda: F.group_norm(np.ones((2, 6)), 0), "num_groups must be a positive int, got 0"),
    (lambda: F.group_norm(np.ones((2, 6)), 3, None, np.ones(3)),
     "group_norm: bias must have shape (6,) (one value per channel) for an input of shape "
     "(2, 6); got bias.shape=(3,)"),
    (lambda: F.group_norm(np.ones(6), 3), "group_norm: input must be (N, C) or (N, C, *)"),
    (lambda: F.layer_norm(np.ones((2, 4)), 4, eps=-1.0), "eps must be a number ≥ 0, got -1.0"),
]


@pytest.mark.parametrize("call, message", ERRORS)
def test_misuse_errors_name_the_op_and_the_shapes(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_a_failed_training_call_leaves_the_running_statistics_alone():
    mean, var = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError):
        F.batch_norm(np.ones((1, 3)), mean, var, training=True)
    np.testing.assert_array_equal(mean, 0)
    np.testing.assert_array_equal(var, 1)


# ------------------------------------------------------------------------------- modules
def _torch_module(torch, module):
    """The PyTorch layer with the same settings, in float64, with the same parameters."""
    nn = torch.nn
    name = type(module).__name__
    if name.startswith("BatchNorm"):
        theirs_ = getattr(nn, name)(module.num_features, eps=module.eps, momentum=module.momentum,
                                    affine=module.affine,
                                    track_running_stats=module.track_running_stats)
    elif name == "LayerNorm":
        theirs_ = nn.LayerNorm(module.normalized_shape, eps=module.eps,
                               elementwise_affine=module.elementwise_affine,
                               bias=module.bias is not None)
    else:
        theirs_ = nn.GroupNorm(module.num_groups, module.num_channels, eps=module.eps,
                               affine=module.affine)
    theirs_ = theirs_.double()
    with torch.no_grad():
        for key, p in module.named_parameters():
            getattr(theirs_, key).copy_(torch.tensor(p.data))
    return theirs_


def _random_parameters(module, rng):
    for p in module.parameters():
        p.data = rng.standard_normal(p.shape) + 1.0


def _step(torch, module, theirs_, x, rng):
    """One forward and backward of both; compares the outputs and every gradient."""
    for p in module.parameters():
        p.grad = None
    theirs_.zero_grad()
    tx = Tensor(x.copy(), requires_grad=True)
    qx = torch.tensor(x, requires_grad=True)
    y, qy = module(tx), theirs_(qx)
    u = rng.standard_normal(y.shape)
    y.backward(u)
    qy.backward(torch.tensor(u))
    np.testing.assert_allclose(y.data, qy.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(tx.grad, qx.grad.numpy(), rtol=1e-9, atol=1e-12)
    for key, p in module.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(theirs_, key).grad.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=key)


def _same_state(module, theirs_):
    state, expected = module.state_dict(), theirs_.state_dict()
    assert list(state) == list(expected)
    for key, value in state.items():
        assert value.shape == tuple(expected[key].shape), key
        np.testing.assert_allclose(value, expected[key].numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=key)


BATCH_NORMS = [
    ("BatchNorm1d", (6, 3), {}),
    ("BatchNorm1d", (4, 3, 5), {}),
    ("BatchNorm2d", (4, 3, 3, 2), {}),
    ("BatchNorm1d", (6, 3), {"momentum": None}),
    ("BatchNorm2d", (2, 3, 2, 2), {"momentum": None, "affine": False}),
    ("BatchNorm1d", (4, 3, 5), {"track_running_stats": False}),
    ("BatchNorm2d", (2, 3, 2, 2), {"momentum": 0.5, "eps": 1e-3}),
]


@pytest.mark.parametrize("name, shape, kwargs", BATCH_NORMS)
def test_batch_norm_modules_follow_torch_in_training_and_evaluation(name, shape, kwargs):
    torch = pytest.importorskip("torch")
    from minigrad import nn

    rng = np.random.default_rng(4)
    module = getattr(nn, name)(shape[1], **kwargs).to(np.float64)
    _random_parameters(module, rng)
    theirs_ = _torch_module(torch, module)
    for step in range(4):
        _step(torch, module, theirs_, rng.standard_normal(shape) * (step + 1) + step, rng)
        _same_state(module, theirs_)
    if module.track_running_stats:
        assert int(module.num_batches_tracked) == 4
    module.eval()
    theirs_.eval()
    before = module.state_dict()
    _step(torch, module, theirs_, rng.standard_normal(shape), rng)
    _step(torch, module, theirs_, rng.standard_normal((1,) + shape[1:]), rng)  # a batch of one
    for key, value in module.state_dict().items():          # evaluation changes nothing
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_evaluation_uses_the_running_statistics():
    from minigrad import nn

    bn = nn.BatchNorm2d(2).to(np.float64).eval()
    bn.running_mean[...] = [1.0, -2.0]
    bn.running_var[...] = [4.0, 0.25]
    x = np.random.default_rng(0).standard_normal((3, 2, 2, 2))
    expected = (x - bn.running_mean.reshape(2, 1, 1)) / np.sqrt(
        bn.running_var.reshape(2, 1, 1) + bn.eps)
    np.testing.assert_allclose(bn(x).data, expected, rtol=1e-12)
    np.testing.assert_allclose(bn(x[:1]).data, expected[:1], rtol=1e-12)   # sample by sample


def test_state_dict_round_trip_keeps_the_buffers(tmp_path):
    from minigrad import io, nn

    rng = np.random.default_rng(5)
    bn = nn.BatchNorm2d(3)
    for _ in range(3):
        bn(rng.standard_normal((4, 3, 2, 2)).astype(np.float32))
    state = bn.state_dict()
    assert list(state) == ["weight", "bias", "running_mean", "running_var",
                           "num_batches_tracked"]
    assert state["num_batches_tracked"].dtype == np.int64 and int(state["num_batches_tracked"]) == 3
    io.save(state, tmp_path / "bn.npz")
    fresh = nn.BatchNorm2d(3)
    fresh.load_state_dict(io.load(tmp_path / "bn.npz"))
    for key, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
        assert value.dtype == state[key].dtype, key
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(fresh.eval()(x).data, bn.eval()(x).data)
    fresh.train()(x)
    assert int(fresh.num_batches_tracked) == 4 and int(bn.num_batches_tracked) == 3


def test_torch_state_dict_loads_into_the_module():
    torch = pytest.importorskip("torch")
    from minigrad import nn

    theirs_ = torch.nn.BatchNorm1d(3).double()
    for _ in range(2):
        theirs_(torch.randn(5, 3, dtype=torch.float64) * 3 + 1)
    module = nn.BatchNorm1d(3).to(np.float64)
    module.load_state_dict({k: v.numpy() for k, v in theirs_.state_dict().items()})
    x = np.random.default_rng(6).standard_normal((4, 3))
    np.testing.assert_allclose(module.eval()(x).data,
                               theirs_.eval()(torch.tensor(x)).detach().numpy(), rtol=1e-9)
    assert int(module.num_batches_tracked) == 2


@pytest.mark.parametrize("make, shape", [
    (lambda nn: nn.LayerNorm(5), (4, 5)),
    (lambda nn: nn.LayerNorm((3, 2), eps=1e-3), (2, 4, 3, 2)),
    (lambda nn: nn.LayerNorm(4, elementwise_affine=False), (3, 4)),
    (lambda nn: nn.LayerNorm(4, bias=False), (2, 3, 4)),
    (lambda nn: nn.GroupNorm(2, 4), (3, 4, 2, 2)),
    (lambda nn: nn.GroupNorm(3, 3, affine=False), (2, 3, 5)),
    (lambda nn: nn.GroupNorm(1, 2, eps=1e-2), (2, 2)),
])
def test_layer_and_group_norm_modules_follow_torch(make, shape):
    torch = pytest.importorskip("torch")
    from minigrad import nn

    rng = np.random.default_rng(7)
    module = make(nn).to(np.float64)
    _random_parameters(module, rng)
    theirs_ = _torch_module(torch, module)
    for training in (True, False):
        module.train(training)
        theirs_.train(training)
        _step(torch, module, theirs_, rng.standard_normal(shape) * 2 + 1, rng)
    assert list(module.state_dict()) == list(theirs_.state_dict())


def test_fresh_layers_only_standardise_and_show_their_settings():
    from minigrad import nn

    bn = nn.BatchNorm1d(3)
    assert bn.weight.dtype == np.float32 and np.all(bn.weight.data == 1)
    assert np.all(bn.bias.data == 0) and bn.running_var.dtype == np.float32
    assert repr(bn).startswith("BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, "
                               "track_running_stats=True)")
    assert repr(nn.LayerNorm(4)).startswith("LayerNorm((4,), eps=1e-05, elementwise_affine=True)")
    assert repr(nn.GroupNorm(2, 4)).startswith("GroupNorm(2, 4, eps=1e-05, affine=True)")
    no_stats = nn.BatchNorm2d(2, affine=False, track_running_stats=False)
    assert list(no_stats.state_dict()) == [] and list(no_stats.parameters()) == []


MODULE_ERRORS = [
    (lambda nn: nn.BatchNorm1d(3)(np.ones((2, 3, 4, 4))),
     "BatchNorm1d(3): expected 2-D (N, C) or 3-D (N, C, L) input, got 4-D input; "
     "x.shape=(2, 3, 4, 4)"),
    (lambda nn: nn.BatchNorm2d(3)(np.ones((2, 3, 4))),
     "BatchNorm2d(3): expected 4-D (N, C, H, W) input, got 3-D input; x.shape=(2, 3, 4)"),
    (lambda nn: nn.BatchNorm2d(3)(np.ones((2, 4, 5, 5))),
     "BatchNorm2d(3): input has C=4 channels, expected num_features=3; x.shape=(2, 4, 5, 5)"),
    (lambda nn: nn.BatchNorm1d(3, affine=False, track_running_stats=False)(np.ones((2, 5))),
     "BatchNorm1d(3): input has C=5 channels, expected num_features=3; x.shape=(2, 5)"),
    (lambda nn: nn.BatchNorm1d(3)(np.ones((1, 3))),
     "batch_norm: expected more than 1 value per channel when training, got input of shape "
     "(1, 3)"),
    (lambda nn: nn.BatchNorm1d(3, momentum=2.0), "BatchNorm1d: momentum must be a number in "
     "[0, 1] or None (a cumulative average), got 2.0"),
    (lambda nn: nn.BatchNorm1d(0), "BatchNorm1d: num_features must be a positive int, got 0"),
    (lambda nn: nn.GroupNorm(4, 6),
     "GroupNorm: num_channels=6 is not divisible by num_groups=4"),
    (lambda nn: nn.GroupNorm(2, 6)(np.ones((2, 4, 3))),
     "GroupNorm(2, 6): input has C=4 channels, expected num_channels=6; x.shape=(2, 4, 3)"),
    (lambda nn: nn.LayerNorm((2, 3))(np.ones((4, 3, 2))),
     "LayerNorm((2, 3)): expected input of shape (*, 2, 3); x.shape=(4, 3, 2)"),
    (lambda nn: nn.LayerNorm(-1), "LayerNorm: normalized_shape must be an int or a non-empty "
     "tuple of positive ints, got -1"),
]


@pytest.mark.parametrize("call, message", MODULE_ERRORS)
def test_module_misuse_errors(call, message):
    from minigrad import nn

    with pytest.raises(ValueError, match=re.escape(message)):
        call(nn)


def test_a_refused_batch_is_not_counted():
    from minigrad import nn

    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError):
        bn(np.ones((1, 3)))
    assert int(bn.num_batches_tracked) == 0
    np.testing.assert_array_equal(bn.running_mean, 0)


def channels_last_geometry_plain(x):
    """What ``_ChannelsLast`` needs besides x, worked out from the array itself (the
    formulation ``_channels_last_geometry`` keeps per shape)."""
    N, C = x.shape[:2]
    P = x.size // (N * C)
    limit = max(1, min(normalization._TILE_VALUES, normalization._BLOCK_BYTES // x.itemsize)
                // C)
    k = normalization._largest_divisor(N * P, limit)
    axes = tuple(np.argsort([0, x.ndim - 1, *range(1, x.ndim - 1)]))     # (N, C, *) → (N, *, C)
    x2 = x.transpose(axes).reshape(-1, k * C)
    return C, P, axes, k, normalization._block_rows(x2.shape[0], k * C * x.itemsize)


@given(shape=st.tuples(st.integers(1, 40), st.integers(1, 64), st.integers(1, 30),
                       st.integers(1, 30)),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_channels_last_geometry_per_shape_equals_the_array_formulation(shape, dtype):
    N, C, H, W = shape
    x = np.zeros((N, H, W, C), dtype).transpose(0, 3, 1, 2)
    got = normalization._channels_last_geometry.__wrapped__(
        x.shape, x.itemsize, normalization._TILE_VALUES, normalization._BLOCK_BYTES)
    assert got == channels_last_geometry_plain(x)
    view = normalization._ChannelsLast(x)
    assert view.x2.shape == (N * H * W // got[3], got[3] * C)
    assert np.shares_memory(view.x2, x)


@pytest.mark.parametrize("layout", ["channels-first", "channels-last"])
@pytest.mark.parametrize("mu", [0.0, 5.0])                   # not centred, centred
def test_batch_norm_eval_one_block_gives_the_bits_of_the_blocks_loop(layout, mu):
    """A batch in one block is computed by one call on the whole of x2, not through
    ``over_blocks``: the same NumPy calls on the same rows, the same bits."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 6, 6)).astype(np.float32) + np.float32(mu)
    if layout == "channels-last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    mean = np.full(16, mu, np.float32) + rng.standard_normal(16).astype(np.float32) * 0.1
    var = rng.random(16).astype(np.float32) + 0.5
    w, b = rng.standard_normal(16).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    op = BatchNorm(False, 1e-5, mean, var)
    op.needs_input_grad = (False, False, False)
    y = op.forward(x, w, b)
    assert op.view.x2.shape[0] <= op.view.step and op.centred == (mu != 0.0)
    want, want2 = op.view.new()
    x2, rows = op.view.x2, normalization._eval_constants(op.view, mean, var, w, b, 1e-5)[4]
    op.view.over_blocks(lambda lo, hi, t: normalization._affine_rows(
        x2[lo:hi], want2[lo:hi], [r[:hi - lo] for r in rows], op.centred), scratch=False)
    assert y.strides == want.strides
    np.testing.assert_array_equal(y.view(np.uint32), want.view(np.uint32))


@st.composite
def any_layout(draw):
    """An array of 2 to 4 axes in any memory order, maybe sliced with steps, of a dtype the
    blocked path takes or not."""
    ndim = draw(st.integers(2, 4))
    sizes = [draw(st.integers(0, 20)) for _ in range(ndim)]
    order = draw(st.permutations(range(ndim)))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float16]))
    a = np.zeros([sizes[i] for i in order], dtype).transpose(np.argsort(order))
    return a[tuple(slice(None, None, draw(st.sampled_from([1, 2]))) for _ in range(ndim))]


@given(x=any_layout(), min_plane=st.sampled_from([1, 16, 1 << 62]))
def test_batch_norm_layout_kept_per_shape_equals_the_array_formulation(x, min_plane):
    """``_layout``, kept per shape, strides, dtype and thresholds, is ``_layout_plain`` of
    the array, also after the thresholds change (as tests change them)."""
    saved = normalization._MIN_PLANE
    normalization._MIN_PLANE = min_plane
    try:
        for _ in range(2):                                  # made, then found
            assert normalization._layout(x) == normalization._layout_plain(x)
    finally:
        normalization._MIN_PLANE = saved
    assert normalization._layout(x) == normalization._layout_plain(x)


@settings(deadline=None, max_examples=80)
@given(data=st.data())
def test_array_mean_gives_the_bits_of_ndarray_mean(data):
    """The plain paths take their means by ``_array_mean`` (a reduction and one division, a few
    µs less than ``ndarray.mean`` at batch 1): the same bits as ``mean``, float16 included."""
    dtype = data.draw(st.sampled_from([np.float16, np.float32, np.float64]))
    shape = data.draw(st.lists(st.integers(1, 7), min_size=1, max_size=4).map(tuple))
    x = data.draw(arrays(shape, low=-50.0, high=50.0, dtype=dtype))
    x = (x + data.draw(st.sampled_from([0.0, 1e3]))).astype(dtype)
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
    got = normalization._array_mean(x, axes)
    want = x.mean(axis=axes, keepdims=True)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    if dtype is not np.float16:
        assert got.view(np.uint8).tobytes() == want.view(np.uint8).tobytes()


@settings(deadline=None, max_examples=60)
@given(data=st.data())
def test_batch_norm_statistics_of_one_block_are_those_of_the_full_pass(data):
    """x in one block: the first block's sums, which chose K = 0, are the whole pass, and
    ``_batch_statistics`` returns their moments at once; the same bits as the pass with
    K = 0 over all blocks followed by the formulas of the loop."""
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    N, C, H, W = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 9)),
                  data.draw(st.integers(4, 9)), data.draw(st.integers(4, 9)))
    x = data.draw(arrays((N, C, H, W), dtype=dtype))
    if data.draw(st.booleans()):
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    view = (normalization._ChannelsLast(x) if normalization._layout(x) == "channels-last"
            else normalization._ChannelsFirst(x))
    assert view.x2.shape[0] <= view.step
    mu, var = normalization._batch_statistics(view)
    sums, squares = view.partial_sums(), view.partial_sums()
    normalization._shifted_sums(view, None, sums, squares, "all")
    m = x.size // C
    d = sums.sum(axis=0, dtype=np.float64) / m
    q = squares.sum(axis=0, dtype=np.float64) / m - d * d
    assume(not np.any(d * d > q))                 # K = 0 chosen (|μ| within σ everywhere)
    assert mu.tobytes() == d.tobytes()
    assert var.tobytes() == np.maximum(q, 0.0).tobytes()


@settings(deadline=None, max_examples=60)
@given(data=st.data())
def test_channels_last_block_sums_down_positions_or_rows_equal_float64(data):
    """Channels last, a block's sums per channel: down its (positions, C) matrix (a short
    block) or down its rows, then over the k positions of a row in float64 (a long one, of
    fewer than 8 rows or more): each as close to the float64 sums as float32 sums of its
    length allow, the same partial sums in float64 for both threads' blocks."""
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    N, C, H, W = (data.draw(st.integers(1, 12)), data.draw(st.integers(1, 20)),
                  data.draw(st.integers(4, 16)), data.draw(st.integers(4, 16)))
    x = data.draw(arrays((N, C, H, W), dtype=dtype))
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    short = data.draw(st.sampled_from([0, 1 << 30]))
    block_bytes = data.draw(st.sampled_from([None, 4 * C * H * W]))
    tile = data.draw(st.sampled_from([normalization._TILE_VALUES, 64]))  # 64: many rows
    saved = normalization._SHORT_COLUMN, normalization._TILE_VALUES
    normalization._SHORT_COLUMN, normalization._TILE_VALUES = short, tile
    try:
        with batch_norm_path(blocked=True, block_bytes=block_bytes):
            view = normalization._ChannelsLast(x)
            sums, squares = view.partial_sums(), view.partial_sums()
            view.over_blocks(lambda lo, hi, t: (view.sums(sums, lo, hi, view.x2[lo:hi]),
                                                view.dots(squares, lo, hi, view.x2[lo:hi],
                                                          view.x2[lo:hi], t)), scratch=True)
    finally:
        normalization._SHORT_COLUMN, normalization._TILE_VALUES = saved
    x64 = x.astype(np.float64)
    eps = np.finfo(dtype).eps * N * H * W
    assert sums.dtype == np.float64
    np.testing.assert_allclose(sums.sum(axis=0), x64.sum(axis=(0, 2, 3)),
                               atol=eps * np.abs(x64).sum(axis=(0, 2, 3)).max())
    # The squares are products in x's dtype (a float32 x of 3e-38 squares to 0): their sums
    # are held to the float64 sums of those products.
    np.testing.assert_allclose(squares.sum(axis=0),
                               (x * x).astype(np.float64).sum(axis=(0, 2, 3)), rtol=eps)
