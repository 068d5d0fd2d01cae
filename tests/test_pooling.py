"""max_pool2d and avg_pool2d: loop reference, gradcheck, ties, padding, PyTorch and errors."""

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad.functional as F
from minigrad import Tensor
from minigrad.testing import arrays, check_op, distinct_arrays, pool_settings

POOLS = {
    "max": (F.max_pool2d, ref.max_pool2d),
    "avg": (F.avg_pool2d, ref.avg_pool2d),
}


def draw_pool(data, distinct, **limits):
    """(x, kernel, stride, padding); x without ties (no two elements within 0.01) if asked."""
    s = data.draw(pool_settings(**limits), label="settings")
    shape = (s["N"], s["C"], s["H"], s["W"])
    x = data.draw(distinct_arrays(shape, -10.0, 10.0, min_gap=0.01) if distinct
                  else arrays(shape), label="x")
    return x, (s["KH"], s["KW"]), (s["SH"], s["SW"]), (s["PH"], s["PW"])


@pytest.mark.parametrize("kind", POOLS)
@given(data=st.data())
def test_pool_matches_loops_and_gradcheck(kind, data):
    fn, reference = POOLS[kind]
    x, kernel, stride, padding = draw_pool(data, distinct=kind == "max")
    assert check_op(lambda t: fn(t, kernel, stride, padding),
                    lambda a: reference(a, kernel, stride, padding), x, rtol=1e-12)


@given(data=st.data())
def test_max_pool_gradient_goes_to_the_first_maximum_of_each_window(data):
    # Few distinct values: most windows hold ties.
    s = data.draw(pool_settings(), label="settings")
    x = data.draw(hnp.arrays(np.float64, (s["N"], s["C"], s["H"], s["W"]),
                             elements=st.sampled_from([-1.0, 0.0, 2.0])), label="x")
    kernel, stride, padding = (s["KH"], s["KW"]), (s["SH"], s["SW"]), (s["PH"], s["PW"])
    tx = Tensor(x, requires_grad=True)
    y = F.max_pool2d(tx, kernel, stride, padding)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(dy)
    np.testing.assert_array_equal(y.data, ref.max_pool2d(x, kernel, stride, padding))
    np.testing.assert_allclose(tx.grad, ref.max_pool2d_backward(x, dy, kernel, stride, padding),
                               rtol=1e-12, atol=1e-12)


def test_max_pool_tie_in_one_window():
    x = Tensor(np.array([[[[1.0, 3.0], [3.0, 3.0]]]]), requires_grad=True)
    F.max_pool2d(x, 2).backward(np.array([[[[5.0]]]]))
    np.testing.assert_array_equal(x.grad[0, 0], [[0.0, 5.0], [0.0, 0.0]])


def test_max_pool_padding_never_wins():
    # All inputs negative: padded cells would win if they were zeros (the textbook's crash
    # aside); with −∞ padding every output is a real input element.
    x = -1.0 - np.arange(16.0).reshape(1, 1, 4, 4)
    tx = Tensor(x, requires_grad=True)
    y = F.max_pool2d(tx, 3, stride=2, padding=1)
    np.testing.assert_array_equal(y.data[0, 0], [[-1.0, -2.0], [-5.0, -6.0]])
    y.sum().backward()
    assert tx.grad.sum() == 4 and set(np.unique(tx.grad)) == {0.0, 1.0}


def test_avg_pool_counts_padding_in_the_divisor():
    x = np.ones((1, 1, 2, 2))
    y = F.avg_pool2d(x, 2, stride=1, padding=1)
    np.testing.assert_allclose(y.data[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5],
                                              [0.25, 0.5, 0.25]])


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((2, 3), 1, 0)])
def test_pool_float32_stays_float32(kind, kernel, stride, padding):
    fn, _ = POOLS[kind]
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 7, 8)).astype(np.float32),
               requires_grad=True)
    y = fn(x, kernel, stride, padding)
    assert y.dtype == np.float32
    (y * 2.0).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.shape == x.shape


@pytest.mark.parametrize("kind", POOLS)
def test_pool_settings_are_kept_on_the_op(kind):
    fn, _ = POOLS[kind]
    y = fn(Tensor(np.ones((1, 1, 6, 6)), requires_grad=True), 3, padding=1)
    assert type(y.creator).__name__ == {"max": "MaxPool2d", "avg": "AvgPool2d"}[kind]
    assert y.creator.settings() == {"kernel_size": (3, 3), "stride": (3, 3), "padding": (1, 1)}


def test_max_pool_works_on_integer_images():
    x = np.arange(16, dtype=np.uint8).reshape(1, 1, 4, 4)
    y = F.max_pool2d(x, 2, padding=1)
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y.data[0, 0], [[0, 2, 3], [8, 10, 11], [12, 14, 15]])


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("args, kwargs, error, message", [
    ((np.zeros((3, 8, 8)), 2), {}, ValueError,
     "{op}: input must be 4-D (N, C, H, W), got x.shape=(3, 8, 8)"),
    ((np.zeros((1, 1, 3, 3)), 4), {}, ValueError,
     "{op}: kernel_size (KH, KW)=(4, 4) is larger than the padded input (H + 2·PH, W + 2·PW)="
     "(3, 3); x.shape=(1, 1, 3, 3), padding=(0, 0)"),
    ((np.zeros((1, 1, 8, 8)), 2), {"stride": 0}, ValueError,
     "{op}: stride must be positive, got 0"),
    ((np.zeros((1, 1, 8, 8)), (2, 0)), {}, ValueError,
     "{op}: kernel_size must be positive, got (2, 0)"),
    ((np.zeros((1, 1, 8, 8)), 2), {"padding": -1}, ValueError,
     "{op}: padding must be non-negative, got -1"),
    ((np.zeros((1, 1, 8, 8)), 2), {"padding": 2}, ValueError,
     "{op}: padding (PH, PW)=(2, 2) must be smaller than kernel_size (KH, KW)=(2, 2)"),
    ((np.zeros((1, 1, 8, 8)), 2.0), {}, TypeError,
     "{op}: kernel_size must be an int or an (h, w) pair of ints, got 2.0"),
])
def test_pool_bad_input_names_the_op_and_shapes(kind, args, kwargs, error, message):
    fn, _ = POOLS[kind]
    with pytest.raises(error) as info:
        fn(*args, **kwargs)
    assert str(info.value) == message.format(op=f"{kind}_pool2d")


def test_avg_pool_rejects_integer_input():
    with pytest.raises(TypeError, match=r"avg_pool2d: input must be floating point, got dtype "
                                        r"int64 \(x.shape=\(1, 1, 2, 2\)\)"):
        F.avg_pool2d(np.zeros((1, 1, 2, 2), dtype=np.int64), 2)


# ---------------------------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("kind", POOLS)
@given(data=st.data())
def test_pool_matches_torch(kind, data):
    torch = pytest.importorskip("torch")
    torch_fn = {"max": torch.nn.functional.max_pool2d,
                "avg": torch.nn.functional.avg_pool2d}[kind]
    fn, _ = POOLS[kind]
    x, kernel, stride, padding = draw_pool(data, distinct=kind == "max", max_size=9,
                                           max_kernel=5, max_stride=4)
    tx, px = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = fn(tx, kernel, stride, padding)
    py = torch_fn(px, kernel, stride, padding)
    dy = np.random.default_rng(3).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    np.testing.assert_allclose(y.data, py.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tx.grad, px.grad.numpy(), rtol=1e-10, atol=1e-12)


@given(data=st.data())
def test_max_pool_ties_match_torch(data):
    torch = pytest.importorskip("torch")
    x, kernel, stride, padding = draw_pool(data, distinct=False)
    x = (x > 0).astype(np.float64)          # only 0s and 1s: ties everywhere
    tx, px = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = F.max_pool2d(tx, kernel, stride, padding)
    py = torch.nn.functional.max_pool2d(px, kernel, stride, padding)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    y.backward(dy)
    py.backward(torch.tensor(dy))
    # Equal up to the order in which overlapping windows add up their shares.
    np.testing.assert_allclose(tx.grad, px.grad.numpy(), rtol=1e-12, atol=1e-15)
