"""dropout: inverted scaling, train/eval, the mask reused in backward, seeding, errors."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad.functional as F
from minigrad import Tensor
from minigrad.testing import arrays, gradcheck, shapes


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keeps_about_1_minus_p_and_scales_by_its_inverse(p):
    x = Tensor(np.ones(200_000, np.float32))
    y = F.dropout(x, p=p, rng=np.random.default_rng(0))
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], np.float32(1 / (1 - p)), rtol=1e-6)
    # Binomial(n, 1 − p): the kept fraction is within 5 standard deviations of 1 − p,
    # and so the mean of y is within the same of E[y] = 1.
    sd = np.sqrt(p * (1 - p) / x.size)
    assert abs(kept.mean() - (1 - p)) < 5 * sd
    assert abs(y.data.mean() - 1.0) < 5 * sd / (1 - p)


@given(x=arrays(shapes(min_dims=1, max_dims=3), avoid=(0.0,), margin=0.01),
       p=st.floats(0.0, 0.95), seed=st.integers(0, 2**32 - 1))
def test_backward_reuses_the_forward_mask(x, p, seed):
    tx = Tensor(x, requires_grad=True)
    y = F.dropout(tx, p=p, rng=np.random.default_rng(seed))
    dy = np.random.default_rng(1).standard_normal(x.shape)
    y.backward(dy)
    scaled_mask = y.data / x                         # 0 where dropped, 1/(1 − p) where kept
    assert set(np.unique(np.round(scaled_mask * (1 - p), 12))) <= {0.0, 1.0}
    np.testing.assert_allclose(tx.grad, dy * scaled_mask, rtol=1e-12)


def test_dropout_gradcheck_with_a_fixed_mask():
    x = np.random.default_rng(0).standard_normal((4, 5))
    # A fresh generator with the same seed on every call: the same mask each time.
    assert gradcheck(lambda t: F.dropout(t, p=0.3, rng=np.random.default_rng(3)), x)


def test_eval_mode_returns_the_input_itself():
    x = Tensor(np.ones((3, 4)), requires_grad=True)
    assert F.dropout(x, p=0.5, training=False) is x


def test_p_zero_keeps_everything():
    x = np.random.default_rng(0).standard_normal((5, 6))
    np.testing.assert_array_equal(F.dropout(x, p=0.0).data, x)


def test_manual_seed_repeats_the_masks():
    x = np.ones(1000)
    F.manual_seed(123)
    first = [F.dropout(x).data for _ in range(2)]
    F.manual_seed(123)
    second = [F.dropout(x).data for _ in range(2)]
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first[0], first[1])     # successive calls draw new masks


def test_rng_keyword_leaves_the_module_generator_alone():
    x = np.ones(1000)
    F.manual_seed(5)
    expected = F.dropout(x).data
    F.manual_seed(5)
    F.dropout(x, rng=np.random.default_rng(99))
    np.testing.assert_array_equal(F.dropout(x).data, expected)


def test_dropout_float32_stays_float32():
    x = Tensor(np.ones((10, 10), np.float32), requires_grad=True)
    y = F.dropout(x, p=0.5)
    assert y.dtype == np.float32
    y.backward(np.ones((10, 10), np.float32))
    assert x.grad.dtype == np.float32


def test_dropout_settings_are_kept_on_the_op():
    y = F.dropout(Tensor(np.ones(3), requires_grad=True), p=0.25)
    assert type(y.creator).__name__ == "Dropout"
    assert y.creator.settings() == {"p": 0.25, "training": True, "rng": None}


@pytest.mark.parametrize("p, error, message", [
    (1.0, ValueError, "dropout: p must be in [0, 1), got p=1.0"),
    (-0.1, ValueError, "dropout: p must be in [0, 1), got p=-0.1"),
    (1.5, ValueError, "dropout: p must be in [0, 1), got p=1.5"),
    ("0.5", TypeError, "dropout: p must be a number in [0, 1), got '0.5'"),
    (True, TypeError, "dropout: p must be a number in [0, 1), got True"),
])
@pytest.mark.parametrize("training", [True, False])
def test_dropout_bad_p(p, error, message, training):
    with pytest.raises(error, match=re.escape(message)):
        F.dropout(np.ones(3), p=p, training=training)
