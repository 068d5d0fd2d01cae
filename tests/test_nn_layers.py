"""nn's activation, shape, pooling, transposed-convolution and loss modules: each equals its
functional namesake, agrees with PyTorch's module, and explains bad settings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigrad import Tensor, nn
from minigrad import functional as F
from minigrad.testing import gradcheck

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 5))


# ----------------------------------------------------------------------------------------------
# activations


ACTIVATIONS = [
    (nn.LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2), "LeakyReLU", {"negative_slope": 0.2}),
    (nn.LeakyReLU(), lambda x: F.leaky_relu(x), "LeakyReLU", {}),
    (nn.ELU(0.7), lambda x: F.elu(x, 0.7), "ELU", {"alpha": 0.7}),
    (nn.Softplus(2.0, 1.5), lambda x: F.softplus(x, 2.0, 1.5), "Softplus",
     {"beta": 2.0, "threshold": 1.5}),
    (nn.Softmax(axis=1), lambda x: F.softmax(x, axis=1), "Softmax", {"dim": 1}),
    (nn.Softmax(), lambda x: F.softmax(x), "Softmax", {"dim": -1}),
    (nn.LogSoftmax(axis=0), lambda x: F.log_softmax(x, axis=0), "LogSoftmax", {"dim": 0}),
    (nn.ReLU(), F.relu, "ReLU", {}),
    (nn.Sigmoid(), F.sigmoid, "Sigmoid", {}),
    (nn.Tanh(), F.tanh, "Tanh", {}),
]
IDS = [f"{type(m).__name__}-{i}" for i, (m, *_) in enumerate(ACTIVATIONS)]


@pytest.mark.parametrize("module, functional, torch_name, torch_args", ACTIVATIONS, ids=IDS)
def test_activation_equals_its_functional(module, functional, torch_name, torch_args):
    x = Tensor(X, requires_grad=True)
    y = module(x)
    np.testing.assert_array_equal(y.data, functional(X).data)
    assert gradcheck(module, X)


@pytest.mark.parametrize("module, functional, torch_name, torch_args", ACTIVATIONS, ids=IDS)
def test_activation_agrees_with_torch(module, functional, torch_name, torch_args):
    torch = pytest.importorskip("torch")
    expected = getattr(torch.nn, torch_name)(**torch_args)(torch.tensor(X)).numpy()
    np.testing.assert_allclose(module(Tensor(X)).data, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make, error, message", [
    (lambda: nn.LeakyReLU("0.1"), TypeError, "LeakyReLU: negative_slope must be a number"),
    (lambda: nn.ELU(None), TypeError, "ELU: alpha must be a number"),
    (lambda: nn.Softplus(threshold=True), TypeError, "Softplus: threshold must be a number"),
    (lambda: nn.Softmax(axis=1.0), TypeError, "Softmax: axis must be an int"),
])
def test_bad_activation_settings_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_activation_reprs_show_their_settings():
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Softplus()) == "Softplus(beta=1.0, threshold=20.0)"
    assert repr(nn.LogSoftmax(axis=1)) == "LogSoftmax(axis=1)"


# ----------------------------------------------------------------------------------------------
# shapes: Identity, Flatten, Unflatten


def test_identity_returns_its_input():
    x = Tensor(X)
    assert nn.Identity()(x) is x
    assert nn.Identity(3, bias=False)(x) is x


@pytest.mark.parametrize("start_dim, end_dim", [(1, -1), (0, -1), (0, 1), (1, 2), (-2, -1),
                                                (2, 2)])
def test_flatten_merges_the_axes_like_torch(start_dim, end_dim):
    x = RNG.standard_normal((2, 3, 4, 5))
    y = nn.Flatten(start_dim, end_dim)(Tensor(x))
    torch = pytest.importorskip("torch")
    expected = torch.nn.Flatten(start_dim, end_dim)(torch.tensor(x)).numpy()
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y.data, expected)
    assert gradcheck(nn.Flatten(start_dim, end_dim), x)


@pytest.mark.parametrize("start_dim, end_dim, shape", [(1, -1, (3, 4)), (2, 2, (2, 3, 4)),
                                                       (1, -1, (2, 3, 4)), (0, -1, (5,))])
def test_flatten_returns_its_input_when_nothing_merges_like_torch(start_dim, end_dim, shape):
    """PyTorch returns the input itself when no axes are flattened; so do Flatten and
    F.flatten (whose axes are 1 … last), and the gradient still reaches x."""
    x = Tensor(RNG.standard_normal(shape), requires_grad=True)
    y = nn.Flatten(start_dim, end_dim)(x)
    same = start_dim % len(shape) == end_dim % len(shape)
    assert (y is x) == same
    assert (F.flatten(x) is x) == (len(shape) == 2)
    torch = pytest.importorskip("torch")
    t = torch.tensor(x.data)
    assert (torch.nn.Flatten(start_dim, end_dim)(t) is t) == same
    (y * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full(shape, 2.0))


@pytest.mark.parametrize("dim, sizes, shape", [(1, (2, 3), (4, 2, 3, 5)),
                                               (-1, (5, 1), (4, 6, 5, 1)),
                                               (0, (2, -1), (2, 2, 6, 5)),
                                               (1, (-1,), (4, 6, 5))])
def test_unflatten_splits_an_axis_like_torch(dim, sizes, shape):
    x = RNG.standard_normal((4, 6, 5))
    y = nn.Unflatten(dim, sizes)(Tensor(x))
    assert y.shape == shape
    np.testing.assert_array_equal(y.data, x.reshape(shape))
    torch = pytest.importorskip("torch")
    expected = torch.nn.Unflatten(dim, sizes)(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(y.data, expected)


def test_unflatten_undoes_flatten():
    x = Tensor(RNG.standard_normal((2, 3, 4)))
    y = nn.Sequential(nn.Flatten(), nn.Unflatten(1, (3, 4)))(x)
    np.testing.assert_array_equal(y.data, x.data)


@pytest.mark.parametrize("make, shape, error, message", [
    (lambda: nn.Unflatten(1, (4, 2)), (3, 6), ValueError,
     r"axis 1 of x.shape=\(3, 6\) has 6 elements, which do not make "
     r"unflattened_size=\(4, 2\)"),
    (lambda: nn.Unflatten(2, (3, 2)), (3, 6), ValueError, "dim=2 is out of range"),
    (lambda: nn.Unflatten(1, (-1, 4)), (3, 6), ValueError, "do not make"),
    (lambda: nn.Flatten(2, 1), (3, 6, 2), ValueError, "start_dim=2 comes after end_dim=1"),
    (lambda: nn.Flatten(0, 4), (3, 6, 2), ValueError, "end_dim=4 is out of range"),
])
def test_shape_mistakes_are_explained(make, shape, error, message):
    with pytest.raises(error, match=message):
        make()(Tensor(np.zeros(shape)))


@pytest.mark.parametrize("sizes", [(2, -1, -1), (), 6, (2, 2.0)])
def test_bad_unflattened_sizes_are_named(sizes):
    with pytest.raises(ValueError, match="Unflatten: unflattened_size must be a tuple"):
        nn.Unflatten(1, sizes)


# ----------------------------------------------------------------------------------------------
# AdaptiveAvgPool2d


def _torch_windows_average(x, OH, OW):  # noqa: N803
    """PyTorch's definition: rows [⌊o·H/OH⌋, ⌈(o+1)·H/OH⌉), written out with loops."""
    N, C, H, W = x.shape
    y = np.empty((N, C, OH, OW))
    for oh in range(OH):
        h0, h1 = (oh * H) // OH, -((-(oh + 1) * H) // OH)
        for ow in range(OW):
            w0, w1 = (ow * W) // OW, -((-(ow + 1) * W) // OW)
            y[:, :, oh, ow] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


@given(H=st.integers(1, 9), W=st.integers(1, 9), OH=st.integers(1, 5), OW=st.integers(1, 5))
def test_adaptive_avg_pool_uses_torchs_windows(H, W, OH, OW):  # noqa: N803
    x = np.random.default_rng(H * 10 + W).standard_normal((2, 3, H, W))
    y = nn.AdaptiveAvgPool2d((OH, OW))(Tensor(x))
    # values of order 1 summed in another order: a mean near 0 keeps only an absolute accuracy
    np.testing.assert_allclose(y.data, _torch_windows_average(x, OH, OW), rtol=1e-12,
                               atol=1e-15)


@pytest.mark.parametrize("H, W, output_size", [(8, 8, 4), (8, 6, (2, 3)), (7, 5, (3, 2)),
                                               (6, 6, 1), (5, 7, (None, 3)), (4, 4, 6)])
def test_adaptive_avg_pool_agrees_with_torch(H, W, output_size):  # noqa: N803
    x = RNG.standard_normal((2, 3, H, W))
    pool = nn.AdaptiveAvgPool2d(output_size)
    y = pool(Tensor(x))
    np.testing.assert_array_equal(y.data, F.adaptive_avg_pool2d(x, output_size).data)
    assert gradcheck(pool, x)
    torch = pytest.importorskip("torch")
    expected = torch.nn.AdaptiveAvgPool2d(output_size)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-15)


def test_adaptive_avg_pool_divisible_case_is_plain_average_pooling():
    x = RNG.standard_normal((2, 3, 8, 12))
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d((2, 3))(Tensor(x)).data,
                               nn.AvgPool2d((4, 4))(Tensor(x)).data, rtol=1e-12)


@pytest.mark.parametrize("output_size", [0, (2, 0), (2,), "2", (2, 2.0)])
def test_bad_adaptive_output_sizes_are_named(output_size):
    with pytest.raises(ValueError, match="AdaptiveAvgPool2d: output_size must be"):
        nn.AdaptiveAvgPool2d(output_size)


# ----------------------------------------------------------------------------------------------
# ConvTranspose2d


CONVT = [
    dict(in_channels=2, out_channels=3, kernel_size=3),
    dict(in_channels=2, out_channels=3, kernel_size=2, stride=2),
    dict(in_channels=4, out_channels=2, kernel_size=(3, 2), stride=(2, 1), padding=1,
         output_padding=(1, 0)),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, groups=2,
         bias=False),
    dict(in_channels=2, out_channels=2, kernel_size=3, dilation=2, stride=3,
         output_padding=2),
]


@pytest.mark.parametrize("settings", CONVT)
def test_conv_transpose_equals_functional_and_torch(settings):
    layer = nn.ConvTranspose2d(**settings, dtype=np.float64, rng=np.random.default_rng(1))
    if layer.bias is not None:
        layer.bias.data = RNG.standard_normal(layer.bias.shape)
    x = RNG.standard_normal((2, settings["in_channels"], 4, 5))
    y = layer(Tensor(x))
    kwargs = {k: getattr(layer, k) for k in ("stride", "padding", "output_padding", "groups",
                                             "dilation")}
    expected = F.conv_transpose2d(x, layer.weight.data,
                                  None if layer.bias is None else layer.bias.data, **kwargs)
    np.testing.assert_array_equal(y.data, expected.data)
    assert gradcheck(lambda x, w: F.conv_transpose2d(x, w, **kwargs), x, layer.weight.data)
    torch = pytest.importorskip("torch")
    tlayer = torch.nn.ConvTranspose2d(**settings).double()
    with torch.no_grad():
        tlayer.weight.copy_(torch.from_numpy(layer.weight.data.copy()))
        if layer.bias is not None:
            tlayer.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
    np.testing.assert_allclose(y.data, tlayer(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    assert layer.weight.shape == tuple(tlayer.weight.shape)


def test_conv_transpose_parameters_get_gradients():
    layer = nn.ConvTranspose2d(2, 3, 3, stride=2, dtype=np.float64)
    layer(Tensor(RNG.standard_normal((1, 2, 3, 3)))).sum().backward()
    assert layer.weight.grad.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(layer.bias.grad, np.full(3, 7 * 7))


def test_conv_transpose_undoes_the_shape_of_a_strided_conv():
    down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    up = nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1)
    x = Tensor(RNG.standard_normal((1, 3, 16, 16)).astype(np.float32))
    assert up(down(x)).shape == x.shape


def test_conv_transpose_he_init_uses_the_inputs_per_output():
    layer = nn.ConvTranspose2d(64, 32, 5, rng=np.random.default_rng(0))
    np.testing.assert_allclose(layer.weight.data.std(), np.sqrt(2 / (64 * 25)), rtol=0.03)


@pytest.mark.parametrize("make, error, message", [
    (lambda: nn.ConvTranspose2d(3, 4, 3, groups=2), ValueError,
     "groups=2 must divide in_channels=3 and out_channels=4"),
    (lambda: nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2), ValueError,
     "output_padding must be smaller than the stride or the dilation"),
    (lambda: nn.ConvTranspose2d(2, 2, 0), ValueError, "kernel_size must be at least 1"),
    (lambda: nn.ConvTranspose2d(0, 2, 3), ValueError, "in_channels must be a positive int"),
])
def test_bad_conv_transpose_settings_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make()


@pytest.mark.parametrize("shape, message", [
    ((1, 3, 4, 4), r"ConvTranspose2d\(2, 4, kernel_size=3\): input has 3 channels, expected 2"),
    ((2, 4, 4), "expected input \\(N, C, H, W\\), got 3 dimension"),
])
def test_conv_transpose_input_mistakes_are_explained(shape, message):
    with pytest.raises(ValueError, match=message):
        nn.ConvTranspose2d(2, 4, 3)(Tensor(np.zeros(shape, np.float32)))


def test_conv_transpose_repr():
    assert (repr(nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1,
                                    bias=False)).split("  [")[0]
            == "ConvTranspose2d(4, 2, kernel_size=3, stride=2, padding=1, output_padding=1, "
               "bias=False)")


# ----------------------------------------------------------------------------------------------
# losses


P = 1 / (1 + np.exp(-RNG.standard_normal((4, 3))))
T01 = RNG.integers(0, 2, (4, 3)).astype(np.float64)
Z = RNG.standard_normal((5, 4))
LABELS = np.array([0, 3, 1, 1, 2])
W_CLASS = np.array([1.0, 2.0, 0.5, 1.5])

LOSSES = [
    ("MSELoss", {}, lambda r: lambda y, t: F.mse_loss(y, t, r), P, T01),
    ("L1Loss", {}, lambda r: lambda y, t: F.l1_loss(y, t, r), P, T01),
    ("BCELoss", {}, lambda r: lambda y, t: F.binary_cross_entropy(y, t, r), P, T01),
    ("BCELoss", {"weight": np.array([1.0, 2.0, 3.0])},
     lambda r: lambda y, t: F.binary_cross_entropy(y, t, r, weight=np.array([1.0, 2.0, 3.0])),
     P, T01),
    ("BCEWithLogitsLoss", {"pos_weight": np.array([2.0, 1.0, 0.5])},
     lambda r: lambda y, t: F.binary_cross_entropy_with_logits(
         y, t, r, pos_weight=np.array([2.0, 1.0, 0.5])), Z[:4, :3], T01),
    ("CrossEntropyLoss", {}, lambda r: lambda y, t: F.softmax_cross_entropy(y, t, r), Z, LABELS),
    ("CrossEntropyLoss", {"weight": W_CLASS, "label_smoothing": 0.1},
     lambda r: lambda y, t: F.softmax_cross_entropy(y, t, r, weight=W_CLASS,
                                                    label_smoothing=0.1), Z, LABELS),
    ("CrossEntropyLoss", {"ignore_index": 3},
     lambda r: lambda y, t: F.softmax_cross_entropy(y, t, r, ignore_index=3), Z, LABELS),
    ("CrossEntropyLoss", {}, lambda r: lambda y, t: F.softmax_cross_entropy(y, t, r), Z,
     np.eye(4)[LABELS] * 0.8 + 0.05),
    ("NLLLoss", {}, lambda r: lambda y, t: F.nll_loss(y, t, r), F.log_softmax(Z).data, LABELS),
    ("NLLLoss", {"weight": W_CLASS, "ignore_index": 1},
     lambda r: lambda y, t: F.nll_loss(y, t, r, ignore_index=1, weight=W_CLASS),
     F.log_softmax(Z).data, LABELS),
]
LOSS_IDS = [f"{name}-{i}" for i, (name, *_) in enumerate(LOSSES)]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name, kwargs, functional, y, t", LOSSES, ids=LOSS_IDS)
def test_loss_module_equals_its_functional_and_torch(name, kwargs, functional, y, t, reduction):
    loss = getattr(nn, name)(**kwargs, reduction=reduction)
    got = loss(Tensor(y, requires_grad=True), t)
    np.testing.assert_allclose(got.data, functional(reduction)(y, t).data, rtol=1e-12)
    assert gradcheck(lambda y: loss(y, t), y)
    torch = pytest.importorskip("torch")
    targs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v
             for k, v in kwargs.items()}
    expected = getattr(torch.nn, name)(**targs, reduction=reduction)(torch.tensor(y),
                                                                    torch.tensor(t))
    np.testing.assert_allclose(got.data, expected.numpy(), rtol=1e-10, atol=1e-12)


def test_cross_entropy_ignores_minus_100_by_default_as_torch():
    t = np.array([0, -100, 1, -100, 2])
    got = nn.CrossEntropyLoss()(Tensor(Z), t)
    np.testing.assert_allclose(got.data, F.softmax_cross_entropy(Z[[0, 2, 4]], t[[0, 2, 4]]).data,
                               rtol=1e-12)
    got = nn.NLLLoss(reduction="sum")(Tensor(Z), t)
    np.testing.assert_allclose(got.data, -(Z[0, 0] + Z[2, 1] + Z[4, 2]), rtol=1e-12)


def test_loss_reprs_and_bad_reductions():
    assert repr(nn.MSELoss()) == "MSELoss()"
    assert repr(nn.L1Loss(reduction="sum")) == "L1Loss(reduction='sum')"
    with pytest.raises(ValueError, match="CrossEntropyLoss: reduction must be 'mean', 'sum' or "
                                         "'none', got 'avg'"):
        nn.CrossEntropyLoss(reduction="avg")


# ----------------------------------------------------------------------------------------------
# Conv2d with PyTorch's options


CONV = [
    dict(in_channels=3, out_channels=4, kernel_size=3),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, groups=2),
    dict(in_channels=2, out_channels=3, kernel_size=(3, 2), dilation=(2, 1), padding=(1, 0)),
    dict(in_channels=2, out_channels=2, kernel_size=4, padding="same", dilation=2, bias=False),
    dict(in_channels=4, out_channels=4, kernel_size=3, padding="valid", groups=4),
]


@pytest.mark.parametrize("settings", CONV)
def test_conv2d_options_agree_with_torch(settings):
    layer = nn.Conv2d(**settings, dtype=np.float64, rng=np.random.default_rng(2))
    if layer.bias is not None:
        layer.bias.data = RNG.standard_normal(layer.bias.shape)
    x = RNG.standard_normal((2, settings["in_channels"], 7, 6))
    y = layer(Tensor(x))
    expected = F.conv2d(x, layer.weight.data, None if layer.bias is None else layer.bias.data,
                        stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                        groups=layer.groups)
    np.testing.assert_array_equal(y.data, expected.data)
    torch = pytest.importorskip("torch")
    tlayer = torch.nn.Conv2d(**settings).double()
    assert layer.weight.shape == tuple(tlayer.weight.shape)
    with torch.no_grad():
        tlayer.weight.copy_(torch.from_numpy(layer.weight.data.copy()))
        if layer.bias is not None:
            tlayer.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
    np.testing.assert_allclose(y.data, tlayer(torch.tensor(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_conv2d_grouped_he_init_uses_the_channels_of_a_group():
    layer = nn.Conv2d(64, 64, 5, groups=4, rng=np.random.default_rng(0))
    np.testing.assert_allclose(layer.weight.data.std(), np.sqrt(2 / (16 * 25)), rtol=0.03)


@pytest.mark.parametrize("make, message", [
    (lambda: nn.Conv2d(3, 4, 3, groups=2), "groups=2 must divide in_channels=3"),
    (lambda: nn.Conv2d(2, 2, 3, stride=2, padding="same"), "padding='same' needs stride 1"),
    (lambda: nn.Conv2d(2, 2, 3, padding="full"), "padding must be an int, a pair, 'valid' or "
                                                 "'same', got 'full'"),
])
def test_bad_conv2d_options_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_conv2d_checks_the_dilated_kernel_against_the_input():
    with pytest.raises(ValueError, match=r"the padded input \(4, 4\) is smaller than the kernel "
                                         r"\(5, 5\)"):
        nn.Conv2d(1, 1, 3, dilation=2)(Tensor(np.zeros((1, 1, 4, 4), np.float32)))


def test_conv2d_repr_lists_options_that_differ():
    assert repr(nn.Conv2d(4, 8, 3, padding="same", dilation=2, groups=2)).split("  [")[0] == (
        "Conv2d(4, 8, kernel_size=3, stride=1, padding=same, dilation=2, groups=2)")
