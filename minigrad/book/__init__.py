"""The textbook's layers, written the book's way under the book's names.

"Deep Learning from Scratch" (Saito) builds every layer as a class with ``forward`` and
``backward``; this package keeps those layers as minigrad ops, step for step, so a reader can
hold the code beside the book's page and still run it on minigrad's tape (draw it with
``minigrad.viz``, train it with ``minigrad.optim``):

- :mod:`minigrad.book.util`: ``im2col``, ``col2im`` (rows are windows, chapter 7.4.3)
- :mod:`minigrad.book.functions`: ``softmax``, ``cross_entropy_error``
- :mod:`minigrad.book.gradient`: ``numerical_gradient`` (central differences, chapter 4)
- :mod:`minigrad.book.layers`: ``Relu``, ``Sigmoid``, ``Affine``, ``SoftmaxWithLoss``,
  ``Convolution``, ``Pooling``, ``Dropout``, ``BatchNormalization`` (and ``Im2col``,
  ``Col2im``: im2col and col2im as ops, which the layers' second derivatives record)
- :mod:`minigrad.book.nets`: ``TwoLayerNet``, ``SimpleConvNet``

The fast ops of :mod:`minigrad.functional` compute the same values and gradients; the tests
hold each pair equal, and ``docs/book.md`` maps the book's chapters to both.

>>> import numpy as np
>>> from minigrad import Tensor, book
>>> x = Tensor(np.array([[1.0, -2.0]]), requires_grad=True)
>>> W = Tensor(np.array([[1.0], [1.0]]), requires_grad=True)
>>> y = book.Relu()(book.Affine()(x, W, np.zeros(1)))
>>> y.sum().backward()
>>> y.data, W.grad.ravel()
(array([[0.]]), array([0., 0.]))
"""

from minigrad.book.functions import cross_entropy_error, softmax
from minigrad.book.gradient import numerical_gradient
from minigrad.book.layers import (
    Affine,
    BatchNormalization,
    Col2im,
    Convolution,
    Dropout,
    Im2col,
    Pooling,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
)
from minigrad.book.nets import SimpleConvNet, TwoLayerNet
from minigrad.book.util import col2im, im2col

__all__ = ["im2col", "col2im", "softmax", "cross_entropy_error", "numerical_gradient",
           "Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Convolution", "Pooling",
           "Dropout", "BatchNormalization", "Im2col", "Col2im", "TwoLayerNet", "SimpleConvNet"]
