"""Layers with parameters, composed into networks: ``Parameter``, ``Module`` and the usual layers.

- :mod:`minigrad.nn.module`: ``Parameter``, ``Module`` (parameters, buffers, forward hooks,
  ``state_dict``), ``ModuleList``, ``Sequential``;
- :mod:`minigrad.nn.layers`: ``Linear``, ``Conv2d``, ``MaxPool2d``, ``AvgPool2d``, ``Flatten``,
  ``Dropout``;
- :mod:`minigrad.nn.activation`: ``ReLU``, ``Sigmoid``, ``Tanh``;
- :mod:`minigrad.nn.init`: ``manual_seed``, ``default_rng`` and the initial weights.

>>> import minigrad
>>> from minigrad import nn
>>> nn.manual_seed(0)
>>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
>>> [(name, p.shape) for name, p in net.named_parameters()]
[('0.weight', (4, 3)), ('0.bias', (3,)), ('2.weight', (3, 2)), ('2.bias', (2,))]
>>> net(minigrad.Tensor(np.ones((5, 4), np.float32))).shape
(5, 2)
"""

import numpy as np  # noqa: F401  (the doctests above use it)

from minigrad.nn.activation import ReLU, Sigmoid, Tanh
from minigrad.nn.init import default_rng, init_std, manual_seed
from minigrad.nn.layers import AvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d
from minigrad.nn.module import (
    IncompatibleKeys,
    Module,
    ModuleList,
    Parameter,
    RemovableHandle,
    Sequential,
    StateDictError,
)

__all__ = [
    "Parameter", "Module", "Sequential", "ModuleList", "StateDictError", "IncompatibleKeys",
    "RemovableHandle",
    "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "ReLU", "Sigmoid", "Tanh", "Flatten",
    "Dropout", "manual_seed", "default_rng", "init_std",
]
