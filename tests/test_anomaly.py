"""Tests of minigrad.anomaly: the first op that makes a NaN or an infinity is named."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import minigrad
from minigrad import function
from minigrad.anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's divide by zero


def here() -> int:
    """The line number of the caller's next line."""
    return inspect.currentframe().f_back.f_lineno + 1


def tensor(values, **kwargs):
    return minigrad.Tensor(np.array(values, dtype=np.float64), **kwargs)


def check_location(error, line):
    message = str(error.value)
    assert f"{__file__}:{line}" in message, message
    assert error.value.location.startswith(f"{__file__}:{line} in ")


def test_log_of_zero_in_forward():
    x = tensor([1.0, 0.0, 2.0], requires_grad=True)
    with pytest.raises(AnomalyError) as error, detect_anomaly():
        line = here()
        _ = x.log()
    e = error.value
    assert (e.op, e.phase, e.where, e.shape, e.count, e.inf) == ("Log", "forward", "output",
                                                                 (3,), 1, 1)
    assert "Log produced 1 non-finite value (1 -inf) in its output, shape (3,), from finite " \
           "inputs" in str(e)
    assert "_ = x.log()" in str(e)
    check_location(error, line)
    assert not e.upstream


def test_zero_over_zero_in_forward():
    x = tensor([[0.0, 1.0], [2.0, 0.0]], requires_grad=True)
    with pytest.raises(AnomalyError) as error, detect_anomaly():
        line = here()
        _ = x / x
    assert (error.value.op, error.value.nan, error.value.shape) == ("Div", 2, (2, 2))
    assert "Div produced 2 non-finite values (2 NaN)" in str(error.value)
    check_location(error, line)


def test_nan_only_in_backward_names_the_op_and_its_line():
    x = tensor([4.0, 0.0, 1.0], requires_grad=True)
    with detect_anomaly():
        line = here()
        y = x.sqrt()                   # finite: sqrt(0) = 0
        loss = (y * 2.0).sum()
        with pytest.raises(AnomalyError) as error:
            loss.backward()            # d sqrt/dx = 1 / (2·0) = inf
    e = error.value
    assert (e.op, e.phase, e.where, e.shape, e.count) == ("Sqrt", "backward",
                                                          "gradient for input 0", (3,), 1)
    assert "the backward of Sqrt produced 1 non-finite value (1 +inf) in the gradient for " \
           "input 0, shape (3,), from a finite incoming gradient" in str(e)
    assert "y = x.sqrt()" in str(e)
    check_location(error, line)


def test_nothing_is_checked_outside_the_block():
    x = tensor([4.0, 0.0], requires_grad=True)
    with detect_anomaly():
        pass
    y = x.log() + x.sqrt() + x / x
    y.sum().backward()              # NaN and inf everywhere, and no error
    assert np.isnan(x.grad).any()
    assert function._observers == [] and not is_anomaly_enabled()


def test_inputs_already_non_finite_are_reported_as_upstream():
    x = tensor([np.nan, 1.0], requires_grad=True)
    with pytest.raises(AnomalyError) as error, detect_anomaly():
        line = here()
        _ = x * 2.0
    e = error.value
    assert e.upstream and e.op == "Mul"
    assert "its inputs already had non-finite values (input 0 (shape (2,)) has 1 non-finite " \
           "value (1 NaN))" in str(e)
    assert "outside detect_anomaly()" in str(e)
    check_location(error, line)


def test_the_first_producing_op_is_reported_not_later_ones():
    x = tensor([0.0, 1.0], requires_grad=True)
    with pytest.raises(AnomalyError) as error, detect_anomaly():
        y = x * 3.0
        line = here()
        z = y.log()
        _ = z.exp() * 2.0
    assert error.value.op == "Log" and not error.value.upstream
    check_location(error, line)


def test_non_finite_seed_gradient():
    x = tensor([1.0, 2.0], requires_grad=True)
    with detect_anomaly():
        y = x * 2.0
        with pytest.raises(AnomalyError, match="arriving at the output of Mul .* already has 1 "
                                               "non-finite value") as error:
            y.backward(np.array([np.inf, 1.0]))
    assert error.value.upstream and error.value.where == "incoming gradient"


def test_op_created_outside_the_block_says_so():
    x = tensor([0.0, 1.0], requires_grad=True)
    y = x.sqrt()
    with pytest.raises(AnomalyError, match="created outside detect_anomaly"), detect_anomaly():
        y.sum().backward()


def test_decorator_and_nesting():
    x = tensor([0.0, 1.0], requires_grad=True)

    @detect_anomaly()
    def forward():
        assert is_anomaly_enabled()
        return x.log()

    with pytest.raises(AnomalyError):
        forward()
    assert not is_anomaly_enabled() and function._observers == []
    with detect_anomaly():
        with detect_anomaly():
            pass
        assert is_anomaly_enabled()   # still on until the outer block ends
        with pytest.raises(AnomalyError):
            x.log()
    assert function._observers == []


def test_no_grad_ops_are_checked_too():
    x = tensor([0.0, 1.0])
    with pytest.raises(AnomalyError, match="Log produced"), detect_anomaly():
        with minigrad.no_grad():
            x.log()


def test_message_names_the_running_module():
    class Block:
        name = "block1"

    x = tensor([0.0, 1.0], requires_grad=True)
    with pytest.raises(AnomalyError, match=r"inside module block1: Block"), detect_anomaly():
        function._module_scope.append(Block())
        try:
            x.log()
        finally:
            function._module_scope.pop()


def test_finite_graph_passes():
    x = tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    with detect_anomaly():
        loss = (x @ x).relu().sum()
        loss.backward()
    np.testing.assert_allclose(x.grad, [[7.0, 11.0], [9.0, 13.0]])


def test_cnn_overflow_names_the_layer_and_the_line():
    models = pytest.importorskip("minigrad.models")
    nn = pytest.importorskip("minigrad.nn")
    nn.manual_seed(0)
    model = models.SimpleConvNet()
    model.conv1.weight.data[...] = 1e38     # float32 overflows in the convolution's sums
    x = np.ones((2, 1, 28, 28), np.float32)
    with pytest.raises(AnomalyError) as error, detect_anomaly():
        line = here()
        model.loss(x, np.array([1, 2]))
    assert error.value.op == "Conv2d" and not error.value.upstream
    assert "inside module conv1: Conv2d" in str(error.value)
    check_location(error, line)
