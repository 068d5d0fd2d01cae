"""nn.init: PyTorch's initialisers on minigrad's layouts, the textbook's, and the layers' init=."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minigrad import Tensor, nn
from minigrad.nn import init

# 2-D weights are (in, out) here and (out, in) in torch: the same layer, transposed.
SHAPES = [(300, 200), (500, 1000), (32, 16, 5, 5), (8, 64, 3, 3)]


def torch_shape(shape):
    return shape[::-1] if len(shape) == 2 else shape


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_match_torch_on_the_same_layer(shape):
    torch = pytest.importorskip("torch")
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(torch_shape(shape)))
    assert init._calculate_fan_in_and_fan_out(np.empty(shape)) == expected


def test_fans_follow_the_layers():
    assert init._calculate_fan_in_and_fan_out(nn.Linear(784, 50).weight) == (784, 50)
    assert init._calculate_fan_in_and_fan_out(nn.Conv2d(3, 8, (5, 3)).weight) == (45, 120)
    with pytest.raises(ValueError, match=r"at least 2 dimensions, got a weight of shape \(5,\)"):
        init.xavier_normal_(np.empty(5))


@pytest.mark.parametrize("nonlinearity, param", [
    ("linear", None), ("conv2d", None), ("conv_transpose2d", None), ("sigmoid", None),
    ("tanh", None), ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
    ("leaky_relu", 0), ("selu", None), ("conv1d", None), ("conv3d", None)])
def test_gains_equal_torch(nonlinearity, param):
    torch = pytest.importorskip("torch")
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15)


def test_gain_mistakes_are_named():
    with pytest.raises(ValueError, match="calculate_gain: unsupported nonlinearity 'gelu'"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="negative_slope 'a' is not a valid number"):
        init.calculate_gain("leaky_relu", "a")


# (minigrad call, torch call, what is compared: "std" of a normal or "bound" of a uniform)
INITS = [
    (lambda w, r: init.xavier_normal_(w, rng=r), lambda w: __import__("torch").nn.init
     .xavier_normal_(w), "std"),
    (lambda w, r: init.xavier_normal_(w, gain=5 / 3, rng=r), lambda w: __import__("torch").nn
     .init.xavier_normal_(w, gain=5 / 3), "std"),
    (lambda w, r: init.xavier_uniform_(w, rng=r), lambda w: __import__("torch").nn.init
     .xavier_uniform_(w), "bound"),
    (lambda w, r: init.kaiming_normal_(w, rng=r), lambda w: __import__("torch").nn.init
     .kaiming_normal_(w), "std"),
    (lambda w, r: init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", rng=r),
     lambda w: __import__("torch").nn.init.kaiming_normal_(w, mode="fan_out",
                                                           nonlinearity="relu"), "std"),
    (lambda w, r: init.kaiming_uniform_(w, a=math.sqrt(5), rng=r),
     lambda w: __import__("torch").nn.init.kaiming_uniform_(w, a=math.sqrt(5)), "bound"),
    (lambda w, r: init.kaiming_uniform_(w, nonlinearity="relu", mode="fan_out", rng=r),
     lambda w: __import__("torch").nn.init.kaiming_uniform_(w, nonlinearity="relu",
                                                            mode="fan_out"), "bound"),
    (lambda w, r: init.normal_(w, 0.5, 0.2, rng=r),
     lambda w: __import__("torch").nn.init.normal_(w, 0.5, 0.2), "std"),
    (lambda w, r: init.uniform_(w, -0.3, 0.3, rng=r),
     lambda w: __import__("torch").nn.init.uniform_(w, -0.3, 0.3), "bound"),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ours, theirs, kind", INITS)
def test_initialisers_agree_with_torch_statistically(ours, theirs, kind, shape):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    t = theirs(torch.empty(torch_shape(shape), dtype=torch.float64)).numpy()
    w = ours(np.empty(shape), np.random.default_rng(0))
    n = w.size  # ≥ 60000: the sample std is within 1.5 % of the true one
    if kind == "std":
        np.testing.assert_allclose(w.std(), t.std(), rtol=0.02)
        np.testing.assert_allclose(w.mean(), t.mean(), atol=5 * t.std() / math.sqrt(n))
    else:
        # bounds: both inside the same interval, and reaching close to its ends
        lo, hi = min(w.min(), t.min()), max(w.max(), t.max())
        width = hi - lo
        for sample in (w, t):
            assert sample.min() - lo < 1e-3 * width and hi - sample.max() < 1e-3 * width
        np.testing.assert_allclose(w.std(), t.std(), rtol=0.02)


@pytest.mark.parametrize("shape", SHAPES)
def test_formulas_against_the_fans(shape):
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(np.empty(shape))
    rng = np.random.default_rng(1)
    cases = [
        (init.book_xavier_normal_, math.sqrt(1 / fan_in)),
        (lambda w, rng: init.xavier_normal_(w, rng=rng), math.sqrt(2 / (fan_in + fan_out))),
        (lambda w, rng: init.kaiming_normal_(w, nonlinearity="relu", rng=rng),
         math.sqrt(2 / fan_in)),
        (lambda w, rng: init.kaiming_normal_(w, nonlinearity="tanh", mode="fan_out", rng=rng),
         5 / 3 / math.sqrt(fan_out)),
    ]
    for fill, std in cases:
        w = fill(np.empty(shape), rng=rng)
        np.testing.assert_allclose(w.std(), std, rtol=0.02)
    bound = math.sqrt(6 / (fan_in + fan_out))
    w = init.xavier_uniform_(np.empty(shape), rng=rng)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound


def test_fills_in_place_in_the_parameters_dtype_and_returns_it():
    layer = nn.Linear(100, 50)
    w = layer.weight
    before = w.data
    assert init.kaiming_uniform_(w, rng=0) is w
    assert w.data is before and w.dtype == np.float32
    assert init.zeros_(layer.bias) is layer.bias and not layer.bias.data.any()
    assert (init.ones_(layer.bias).data == 1).all()
    assert (init.constant_(layer.bias, 0.25).data == 0.25).all()
    a = np.empty((3, 4))
    assert init.normal_(a, rng=0) is a


def test_a_fill_counts_as_an_in_place_change():
    w = nn.Parameter(np.ones(3))
    y = (w * w).sum()
    init.zeros_(w)
    with pytest.raises(RuntimeError):
        y.backward()


def test_seeds_and_generators_repeat_draws():
    a = init.xavier_normal_(np.empty((20, 30)), rng=5)
    b = init.xavier_normal_(np.empty((20, 30)), rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    nn.manual_seed(2)
    c = init.normal_(np.empty(10))
    nn.manual_seed(2)
    np.testing.assert_array_equal(init.normal_(np.empty(10)), c)


@pytest.mark.parametrize("call, error, message", [
    (lambda: init.normal_([1.0, 2.0]), TypeError, "normal_: expected a Parameter, a Tensor or "
                                                  "an np.ndarray, got list"),
    (lambda: init.zeros_(np.zeros(3, np.int64)), TypeError, "zeros_: the array must be "
                                                             "floating point"),
    (lambda: init.kaiming_normal_(np.empty((3, 3)), mode="in"), ValueError,
     "mode must be 'fan_in' or 'fan_out'"),
    (lambda: init.uniform_(np.empty(3), 1.0, 0.0), ValueError, "expected a <= b"),
    (lambda: init.normal_(np.empty(3), std=-1.0), ValueError, "std must be non-negative"),
    (lambda: init.normal_(np.empty(3), rng="x"), TypeError, "rng must be a np.random.Generator"),
])
def test_init_mistakes_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("choice, std", [
    ("he", lambda i, o: math.sqrt(2 / i)),
    ("xavier", lambda i, o: math.sqrt(1 / i)),
    ("book-xavier", lambda i, o: math.sqrt(1 / i)),
    ("glorot", lambda i, o: math.sqrt(2 / (i + o))),
    (0.01, lambda i, o: 0.01),
])
@pytest.mark.parametrize("make, fan_in, fan_out", [
    (lambda init, rng: nn.Linear(400, 600, init=init, rng=rng), 400, 600),
    (lambda init, rng: nn.Conv2d(16, 32, 5, init=init, rng=rng), 16 * 25, 32 * 25),
])
def test_layer_init_choices_give_their_formula(choice, std, make, fan_in, fan_out):
    layer = make(choice, np.random.default_rng(0))
    np.testing.assert_allclose(layer.weight.data.std(), std(fan_in, fan_out), rtol=0.03)


def test_he_default_equals_kaiming_normal_relu_draw_for_draw():
    layer = nn.Linear(30, 20, rng=np.random.default_rng(4))
    w = init.kaiming_normal_(np.empty((30, 20)), nonlinearity="relu",
                             rng=np.random.default_rng(4))
    np.testing.assert_allclose(layer.weight.data, w.astype(np.float32), rtol=1e-6)


def test_apply_initialises_a_whole_network():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))

    def reset(m):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            init.xavier_uniform_(m.weight, rng=0)
            init.constant_(m.bias, 0.1)

    assert net.apply(reset) is net
    assert all((m.bias.data == np.float32(0.1)).all() for m in (net[0], net[3]))
    assert np.abs(net[3].weight.data).max() <= math.sqrt(6 / (144 + 3))
    assert net(Tensor(np.ones((1, 1, 8, 8), np.float32))).shape == (1, 3)
