"""Ready-made networks of the textbook, built from :mod:`minigrad.nn` layers: ``SimpleConvNet``
(chapter 7) and ``DeepConvNet`` (chapter 8)."""

from __future__ import annotations

from typing import Any

import numpy as np

from minigrad import functional as F
from minigrad import nn
from minigrad.tensor import Tensor, no_grad

__all__ = ["DeepConvNet", "SimpleConvNet"]


def _as_data(x: Any) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


class _Classifier(nn.Module):
    """What both networks share: the loss, batched prediction and accuracy."""

    def _classes(self) -> int:
        raise NotImplementedError

    def loss(self, x: Any, t: Any) -> Tensor:
        """Mean softmax cross-entropy of the logits against labels (N,) or one-hot (N, K)."""
        return F.softmax_cross_entropy(self(x), t)

    def predict(self, x: Any, batch_size: int = 1000) -> np.ndarray:
        """The logits as an array, computed in batches without recording a graph."""
        x = _as_data(x)
        with no_grad():
            outs = [self(x[i:i + batch_size]).data for i in range(0, len(x), batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0, self._classes()), np.float32)

    def accuracy(self, x: Any, t: Any, batch_size: int = 1000) -> float:
        """The fraction of images whose highest score is their label (t: (N,) or one-hot)."""
        t = _as_data(t)
        if t.ndim == 2:
            t = t.argmax(axis=1)
        x = _as_data(x)
        if len(x) != len(t):
            raise ValueError(f"{type(self).__name__}.accuracy: {len(x)} images but "
                             f"{len(t)} labels; x.shape={x.shape}, t.shape={t.shape}")
        if len(x) == 0:
            raise ValueError(f"{type(self).__name__}.accuracy: no images")
        return float((self.predict(x, batch_size).argmax(axis=1) == t).mean())


class SimpleConvNet(_Classifier):
    """The textbook's convolutional network for MNIST.

    conv1 → relu1 → pool1 → flatten → affine1 → relu2 → affine2 → (softmax cross-entropy)

    ``conv1`` is a ``filter_size``×``filter_size`` convolution with ``filter_num`` filters,
    ``pool1`` a 2×2 max pooling with stride 2, ``affine1`` a Linear layer to ``hidden_size``
    units and ``affine2`` a Linear layer to the ``output_size`` class scores. Weights use He
    initialisation (``init=`` as in :class:`minigrad.nn.Linear`).

    Args:
        input_dim: (C, H, W) of one image.
        filter_num, filter_size, padding, stride: of the convolution.
        hidden_size: units of the hidden affine layer.
        output_size: the number of classes.
        init: ``"he"``, ``"xavier"`` or a standard deviation.
        rng: the generator for the initial weights (default: ``nn.manual_seed``'s).

    >>> nn.manual_seed(0)
    >>> net = SimpleConvNet()
    >>> [(name, p.shape) for name, p in net.named_parameters()][:3]
    [('conv1.weight', (30, 1, 5, 5)), ('conv1.bias', (30,)), ('affine1.weight', (4320, 100))]
    >>> net(np.zeros((2, 1, 28, 28), np.float32)).shape
    (2, 10)
    """

    def __init__(self, input_dim: tuple[int, int, int] = (1, 28, 28), filter_num: int = 30,
                 filter_size: int = 5, padding: int = 0, stride: int = 1,
                 hidden_size: int = 100, output_size: int = 10, *,
                 init: str | float = "he", rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if len(tuple(input_dim)) != 3:
            raise ValueError(f"SimpleConvNet: input_dim must be (C, H, W), got {input_dim!r}")
        C, H, W = (int(n) for n in input_dim)
        OH = (H + 2 * padding - filter_size) // stride + 1
        OW = (W + 2 * padding - filter_size) // stride + 1
        if OH < 2 or OW < 2:
            raise ValueError(
                f"SimpleConvNet: a {filter_size}×{filter_size} convolution with padding "
                f"{padding} and stride {stride} leaves {OH}×{OW} pixels of a {H}×{W} input; "
                f"the 2×2 pooling needs at least 2×2")
        self.input_dim = (C, H, W)
        self.conv1 = nn.Conv2d(C, filter_num, filter_size, stride=stride, padding=padding,
                               init=init, rng=rng)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2, stride=2)
        self.flatten = nn.Flatten()
        self.affine1 = nn.Linear(filter_num * (OH // 2) * (OW // 2), hidden_size, init=init,
                                 rng=rng)
        self.relu2 = nn.ReLU()
        self.affine2 = nn.Linear(hidden_size, output_size, init=init, rng=rng)

    def forward(self, x: Any) -> Tensor:
        """The class scores (logits), (N, output_size)."""
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x))
        shape = x.shape
        if len(shape) != 4 or tuple(shape[1:]) != self.input_dim:
            C, H, W = self.input_dim
            raise ValueError(f"SimpleConvNet: expected images (N, {C}, {H}, {W}), "
                             f"got x.shape={shape}")
        for layer in (self.conv1, self.relu1, self.pool1, self.flatten, self.affine1,
                      self.relu2, self.affine2):
            x = layer(x)
        return x


    def _classes(self) -> int:
        return self.affine2.out_features


# The book's chapter-8 layers: (out_channels, padding) of the six 3×3 convolutions; a 2×2 max
# pooling follows the 2nd, 4th and 6th.
_DEEP_CONVS = ((16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1))


class DeepConvNet(_Classifier):
    """The textbook's chapter-8 network, which reaches 99.38% test accuracy on MNIST in the book.

    conv1 → relu → conv2 → relu → pool → conv3 → relu → conv4 → relu → pool →
    conv5 → relu → conv6 → relu → pool → affine1 → relu → dropout → affine2 → dropout

    Six 3×3 convolutions with 16, 16, 32, 32, 64, 64 filters, stride 1 and padding 1 (padding 2
    on the 4th, as the book), 2×2 max pooling with stride 2 after the 2nd, 4th and 6th; then an
    affine layer 64·4·4 = 1024 → ``hidden_size`` with ReLU and dropout 0.5, and an affine layer
    to the class scores followed by dropout 0.5. He initialisation (std √(2 / fan_in)), as the
    book. Dropout is inverted here (scaled by 1/(1 − p) in training, identity in eval); the
    book's is not (``minigrad.book.Dropout``: kept values unscaled in training, every value
    times (1 − p) at test), which gives the same expected activations in training but
    different weights for the same eval outputs: see ``load_book_params``.

    The parameters come in the book's order: ``book_params()`` names them W1…W8, b1…b8 (W1–W6
    the convolutions, W7 and W8 the affine layers), and ``load_book_params(params)`` loads the
    book's trained weights from any mapping of those names to arrays (e.g. ``np.load`` of an
    .npz made from them), converting them to this network's inverted dropout.

    Args:
        input_dim: (C, H, W) of one image; 28×28 gives the book's 1024 features after pooling.
        hidden_size: units of the hidden affine layer (50 in the book).
        output_size: the number of classes.
        init: ``"he"``, ``"xavier"`` or a standard deviation.
        rng: the generator for the initial weights (default: ``nn.manual_seed``'s).

    >>> nn.manual_seed(0)
    >>> net = DeepConvNet()
    >>> net.num_parameters()
    123552
    >>> net.eval()(np.zeros((2, 1, 28, 28), np.float32)).shape
    (2, 10)
    """

    def __init__(self, input_dim: tuple[int, int, int] = (1, 28, 28), hidden_size: int = 50,
                 output_size: int = 10, *, init: str | float = "he",
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if len(tuple(input_dim)) != 3:
            raise ValueError(f"DeepConvNet: input_dim must be (C, H, W), got {input_dim!r}")
        C, H, W = (int(n) for n in input_dim)
        self.input_dim = (C, H, W)
        self._order: list[str] = []  # the layers' names, in the order forward runs them
        channels = C
        for i, (filters, padding) in enumerate(_DEEP_CONVS, start=1):
            self._add(f"conv{i}", nn.Conv2d(channels, filters, 3, stride=1, padding=padding,
                                            init=init, rng=rng))
            self._add(f"relu{i}", nn.ReLU())
            H, W = H + 2 * padding - 2, W + 2 * padding - 2
            if i % 2 == 0:
                self._add(f"pool{i // 2}", nn.MaxPool2d(2, stride=2))
                H, W = H // 2, W // 2
            if H < 1 or W < 1:
                raise ValueError(f"DeepConvNet: a {input_dim[1]}×{input_dim[2]} input is too "
                                 f"small for the book's six convolutions and three poolings")
            channels = filters
        self._add("flatten", nn.Flatten())
        self._add("affine1", nn.Linear(channels * H * W, hidden_size, init=init, rng=rng))
        self._add("relu7", nn.ReLU())
        self._add("dropout1", nn.Dropout(0.5))
        self._add("affine2", nn.Linear(hidden_size, output_size, init=init, rng=rng))
        self._add("dropout2", nn.Dropout(0.5))

    def _add(self, name: str, layer: nn.Module) -> None:
        setattr(self, name, layer)
        self._order.append(name)

    def _classes(self) -> int:
        return self.affine2.out_features

    def forward(self, x: Any) -> Tensor:
        """The class scores (logits), (N, output_size)."""
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x))
        if len(x.shape) != 4 or tuple(x.shape[1:]) != self.input_dim:
            C, H, W = self.input_dim
            raise ValueError(f"DeepConvNet: expected images (N, {C}, {H}, {W}), "
                             f"got x.shape={x.shape}")
        for name in self._order:
            x = getattr(self, name)(x)
        return x

    def _book_layers(self) -> list[nn.Module]:
        return [getattr(self, f"conv{i}") for i in range(1, 7)] + [self.affine1, self.affine2]

    def _book_scales(self) -> tuple[float, float]:
        """(scale of W8, scale of b8) between the book's weights and this network's.

        At test time the book's network computes, with q1 = 1 − p of dropout1 and q2 = 1 − p
        of dropout2 (both 0.5),

            y = q2 · ((q1 · h7) · W8 + b8) = h7 · (q1 · q2 · W8) + q2 · b8,

        where this network in eval mode computes y = h7 · W8' + b8' (its dropout is the
        identity). So W8' = q1·q2·W8 (¼ W8) and b8' = q2·b8 (½ b8) give the same outputs;
        W1…W7 and b1…b7 come before any dropout and are the same in both.
        """
        q1, q2 = 1.0 - self.dropout1.p, 1.0 - self.dropout2.p
        return q1 * q2, q2

    def book_params(self) -> dict[str, np.ndarray]:
        """The parameters under the book's names W1…W8, b1…b8 (new arrays), in the book's
        convention: W8 and b8 divided by the factors ``load_book_params`` multiplies them by,
        so that ``load_book_params(book_params())`` changes nothing."""
        w_scale, b_scale = self._book_scales()
        params = {}
        for i, layer in enumerate(self._book_layers(), start=1):
            params[f"W{i}"] = layer.weight.data.copy()
            params[f"b{i}"] = layer.bias.data.copy()
        params["W8"] = (params["W8"] / w_scale).astype(self.affine2.weight.dtype)
        params["b8"] = (params["b8"] / b_scale).astype(self.affine2.bias.dtype)
        return params

    def load_book_params(self, params: Any) -> None:
        """Load the book's trained W1…W8, b1…b8 (a mapping of names to arrays, such as an
        ``np.load`` of an .npz), so that this network in eval mode gives the book's network's
        test-time outputs.

        The book trained with non-inverted dropout, which scales at test time: its last two
        layers compute y = q2·((q1·h)·W8 + b8) with q1 = q2 = 1 − 0.5 (see ``_book_scales``).
        This network's dropout is the identity in eval mode, so W8 is loaded as q1·q2·W8
        (W8 / 4) and b8 as q2·b8 (b8 / 2); the other parameters are loaded as they are.

        Every entry is checked before any is written: a missing or extra name, or a shape that
        differs from the layer's, raises ValueError naming it; an array that does not hold
        real numbers raises TypeError naming it and its dtype.
        """
        expected = {f"{kind}{i}" for i in range(1, 9) for kind in "Wb"}
        names = set(params.keys())
        if names != expected:
            missing, extra = sorted(expected - names), sorted(names - expected)
            raise ValueError(f"DeepConvNet.load_book_params: expected W1…W8 and b1…b8; "
                             f"missing {missing}, unexpected {extra}")
        w_scale, b_scale = self._book_scales()
        staged = []
        for i, layer in enumerate(self._book_layers(), start=1):
            for kind, param in (("W", layer.weight), ("b", layer.bias)):
                value = np.asarray(params[f"{kind}{i}"])
                if value.dtype.kind not in "fiu":
                    raise TypeError(f"DeepConvNet.load_book_params: {kind}{i} must hold real "
                                    f"numbers, got dtype {value.dtype}")
                if value.shape != param.shape:
                    raise ValueError(f"DeepConvNet.load_book_params: {kind}{i} has shape "
                                     f"{value.shape}, the layer expects {param.shape}")
                if i == 8:
                    value = value * (w_scale if kind == "W" else b_scale)
                staged.append((param, value))
        for param, value in staged:
            param.data = value.astype(param.dtype)
