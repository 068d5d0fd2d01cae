"""Ready-made networks: the textbook's ``SimpleConvNet``, built from :mod:`minigrad.nn` layers."""

from __future__ import annotations

from typing import Any

import numpy as np

from minigrad import functional as F
from minigrad import nn
from minigrad.tensor import Tensor, no_grad

__all__ = ["SimpleConvNet"]


def _as_data(x: Any) -> np.ndarray:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


class SimpleConvNet(nn.Module):
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

    def loss(self, x: Any, t: Any) -> Tensor:
        """Mean softmax cross-entropy of the logits against labels (N,) or one-hot (N, K)."""
        return F.softmax_cross_entropy(self(x), t)

    def predict(self, x: Any, batch_size: int = 1000) -> np.ndarray:
        """The logits as an array, computed in batches without recording a graph."""
        x = _as_data(x)
        with no_grad():
            outs = [self(x[i:i + batch_size]).data for i in range(0, len(x), batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0, self.affine2.out_features),
                                                          np.float32)

    def accuracy(self, x: Any, t: Any, batch_size: int = 1000) -> float:
        """The fraction of images whose highest score is their label (t: (N,) or one-hot)."""
        t = _as_data(t)
        if t.ndim == 2:
            t = t.argmax(axis=1)
        x = _as_data(x)
        if len(x) != len(t):
            raise ValueError(f"SimpleConvNet.accuracy: {len(x)} images but {len(t)} labels; "
                             f"x.shape={x.shape}, t.shape={t.shape}")
        if len(x) == 0:
            raise ValueError("SimpleConvNet.accuracy: no images")
        return float((self.predict(x, batch_size).argmax(axis=1) == t).mean())
