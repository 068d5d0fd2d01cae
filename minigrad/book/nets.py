"""The book's networks built from its layers: ``TwoLayerNet`` (chapters 4 – 5) and
``SimpleConvNet`` (chapter 7), as :class:`minigrad.nn.Module` s holding the book's parameters
W1, b1, … under the book's names, so ``minigrad.optim`` trains them and ``minigrad.viz`` draws
them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minigrad import nn
from minigrad.book.gradient import numerical_gradient
from minigrad.book.layers import Affine, Convolution, Pooling, Relu, SoftmaxWithLoss
from minigrad.tensor import Tensor, no_grad

__all__ = ["TwoLayerNet", "SimpleConvNet"]


def _tensor(x: Any) -> Any:
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


class _BookNet(nn.Module):
    """What the book's networks share: ``params``, ``loss``, ``accuracy`` and the two
    gradients, ``numerical_gradient`` (chapter 4) and ``gradient`` (backpropagation, 5.7)."""

    _names: tuple[str, ...] = ()
    #: The δ of the loss's log(y + δ) (``SoftmaxWithLoss``): the book's 1e-7; 0 for the exact
    #: log-likelihood, whose numerical gradient backpropagation then matches to ~1e-10.
    loss_delta: float = 1e-7

    @property
    def params(self) -> dict[str, nn.Parameter]:
        """The parameters under the book's names (the Parameters themselves, not copies)."""
        return {name: getattr(self, name) for name in self._names}

    def loss(self, x: Any, t: Any) -> Tensor:
        """The mean cross-entropy of softmax(predict(x)) against labels or one-hot rows."""
        return SoftmaxWithLoss(self.loss_delta)(self.predict(x), t)

    def forward(self, x: Any) -> Tensor:
        return self.predict(x)

    def accuracy(self, x: Any, t: Any) -> float:
        """The fraction of samples whose highest score is their label."""
        with no_grad():
            y = self.predict(x).data.argmax(axis=1)
        t = np.asarray(t.data if isinstance(t, Tensor) else t)
        if t.ndim != 1:
            t = t.argmax(axis=1)
        return float(np.mean(y == t))

    def numerical_gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """∂loss/∂param by the book's central differences, one parameter element at a time:
        two forward passes per element (slow: chapter 4's lesson)."""
        def loss_W(W: np.ndarray) -> float:  # noqa: N802, N803  (the book's name)
            with no_grad():
                return float(self.loss(x, t).data)

        # _writable: the parameter's own array, moved in place and restored by the loop.
        return {name: numerical_gradient(loss_W, p._writable()) for name, p in
                self.params.items()}

    def gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """∂loss/∂param by backpropagation: one forward and one backward pass on the tape."""
        for p in self.params.values():
            p.grad = None
        self.loss(x, t).backward()
        return {name: p.grad.copy() for name, p in self.params.items()}


class TwoLayerNet(_BookNet):
    """The book's two-layer network (``ch05/two_layer_net.py``):

    Affine1 (W1, b1) → Relu1 → Affine2 (W2, b2) → SoftmaxWithLoss

    W1 (input_size, hidden_size) and W2 (hidden_size, output_size) are drawn from
    N(0, weight_init_std²) and the biases start at 0, as in the book. float64 by default, as
    the book's NumPy arrays are (``numerical_gradient`` needs it).

    Args:
        input_size, hidden_size, output_size: the layer widths (784, 50, 10 in the book).
        weight_init_std: the standard deviation of the initial weights.
        rng: a ``np.random.Generator`` (default: the one ``minigrad.nn.manual_seed`` seeds).
        dtype: of the parameters.

    >>> nn.manual_seed(0)
    >>> net = TwoLayerNet(4, 3, 2)
    >>> sorted((k, p.shape) for k, p in net.params.items())
    [('W1', (4, 3)), ('W2', (3, 2)), ('b1', (3,)), ('b2', (2,))]
    >>> x, t = np.ones((5, 4)), np.array([0, 1, 0, 1, 1])
    >>> grad, num = net.gradient(x, t), net.numerical_gradient(x, t)
    >>> max(float(np.abs(grad[k] - num[k]).max()) for k in grad) < 1e-7
    True
    """

    _names = ("W1", "b1", "W2", "b2")

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 weight_init_std: float = 0.01, *, rng: np.random.Generator | None = None,
                 dtype: Any = np.float64) -> None:
        super().__init__()
        rng = nn.default_rng() if rng is None else rng
        self.W1 = nn.Parameter(weight_init_std * rng.standard_normal((input_size, hidden_size)),
                               dtype=dtype)
        self.b1 = nn.Parameter(np.zeros(hidden_size), dtype=dtype)
        self.W2 = nn.Parameter(weight_init_std * rng.standard_normal((hidden_size, output_size)),
                               dtype=dtype)
        self.b2 = nn.Parameter(np.zeros(output_size), dtype=dtype)

    def predict(self, x: Any) -> Tensor:
        """The class scores (N, output_size), before the softmax."""
        h = Relu()(Affine()(_tensor(x), self.W1, self.b1))
        return Affine()(h, self.W2, self.b2)


class SimpleConvNet(_BookNet):
    """The book's convolutional network (``ch07/simple_convnet.py``):

    Convolution (W1, b1) → Relu → Pooling 2×2 stride 2 → Affine (W2, b2) → Relu →
    Affine (W3, b3) → SoftmaxWithLoss

    The same network as :class:`minigrad.models.SimpleConvNet`, layer by layer, with the
    book's layers and parameter names instead of the fast ops.

    Args:
        input_dim: (C, H, W) of one image.
        conv_param: the book's dict of ``filter_num``, ``filter_size``, ``pad``, ``stride``.
        hidden_size, output_size: the widths of the affine layers.
        weight_init_std: the standard deviation of the initial weights (0.01 in the book).
        rng, dtype: as for :class:`TwoLayerNet`.

    >>> nn.manual_seed(0)
    >>> net = SimpleConvNet()
    >>> [(k, p.shape) for k, p in net.params.items()][:3]
    [('W1', (30, 1, 5, 5)), ('b1', (30,)), ('W2', (4320, 100))]
    >>> net.predict(np.zeros((2, 1, 28, 28))).shape
    (2, 10)
    """

    _names = ("W1", "b1", "W2", "b2", "W3", "b3")

    def __init__(self, input_dim: tuple[int, int, int] = (1, 28, 28),
                 conv_param: dict | None = None, hidden_size: int = 100,
                 output_size: int = 10, weight_init_std: float = 0.01, *,
                 rng: np.random.Generator | None = None, dtype: Any = np.float64) -> None:
        super().__init__()
        conv_param = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1,
                      **(conv_param or {})}
        filter_num, filter_size = conv_param["filter_num"], conv_param["filter_size"]
        self.pad, self.stride = conv_param["pad"], conv_param["stride"]
        C, input_size = input_dim[0], input_dim[1]
        conv_output_size = (input_size - filter_size + 2 * self.pad) // self.stride + 1
        pool_output_size = filter_num * (conv_output_size // 2) ** 2
        rng = nn.default_rng() if rng is None else rng
        std = weight_init_std
        self.W1 = nn.Parameter(std * rng.standard_normal((filter_num, C, filter_size,
                                                          filter_size)), dtype=dtype)
        self.b1 = nn.Parameter(np.zeros(filter_num), dtype=dtype)
        self.W2 = nn.Parameter(std * rng.standard_normal((pool_output_size, hidden_size)),
                               dtype=dtype)
        self.b2 = nn.Parameter(np.zeros(hidden_size), dtype=dtype)
        self.W3 = nn.Parameter(std * rng.standard_normal((hidden_size, output_size)),
                               dtype=dtype)
        self.b3 = nn.Parameter(np.zeros(output_size), dtype=dtype)

    def predict(self, x: Any) -> Tensor:
        """The class scores (N, output_size), before the softmax."""
        h = Convolution(self.stride, self.pad)(_tensor(x), self.W1, self.b1)
        h = Pooling(2, 2, stride=2)(Relu()(h))
        h = Relu()(Affine()(h, self.W2, self.b2))
        return Affine()(h, self.W3, self.b3)
