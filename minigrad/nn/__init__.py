"""Layers with parameters, composed into networks: ``Parameter``, ``Module`` and the usual layers.

- :mod:`minigrad.nn.module`: ``Parameter``, ``Module`` (parameters, buffers, forward hooks,
  ``state_dict``), ``ModuleList``, ``ModuleDict``, ``Sequential``;
- :mod:`minigrad.nn.layers`: ``Linear``, ``Conv2d``, ``ConvTranspose2d``, ``MaxPool2d``,
  ``AvgPool2d``, ``AdaptiveAvgPool2d``, ``Flatten``, ``Unflatten``, ``Identity``, ``Dropout``;
- :mod:`minigrad.nn.activation`: ``ReLU``, ``Sigmoid``, ``Tanh``, ``LeakyReLU``, ``ELU``,
  ``Softplus``, ``Softmax``, ``LogSoftmax``;
- :mod:`minigrad.nn.normalization`: ``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm``,
  ``GroupNorm``;
- :mod:`minigrad.nn.loss`: ``MSELoss``, ``L1Loss``, ``BCELoss``, ``BCEWithLogitsLoss``,
  ``CrossEntropyLoss``, ``NLLLoss``;
- :mod:`minigrad.nn.init`: ``manual_seed``, ``default_rng`` and PyTorch's initialisers
  (``kaiming_normal_``, ``xavier_uniform_``, ...);
- :mod:`minigrad.nn.utils`: ``clip_grad_norm_``, ``clip_grad_value_``;
- :func:`summary` (:mod:`minigrad.nn.info`): every layer's output shape and parameter count.

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

from minigrad.nn import init, utils
from minigrad.nn.activation import (
    ELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from minigrad.nn.info import ModelSummary, summary
from minigrad.nn.init import default_rng, init_std, manual_seed
from minigrad.nn.layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Flatten,
    Identity,
    Linear,
    MaxPool2d,
    Unflatten,
)
from minigrad.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
)
from minigrad.nn.module import (
    IncompatibleKeys,
    Module,
    ModuleDict,
    ModuleList,
    Parameter,
    RemovableHandle,
    Sequential,
    StateDictError,
)
from minigrad.nn.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm

__all__ = [
    "Parameter", "Module", "Sequential", "ModuleList", "ModuleDict", "StateDictError",
    "IncompatibleKeys", "RemovableHandle",
    "Linear", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
    "Flatten", "Unflatten", "Identity", "Dropout",
    "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "ELU", "Softplus", "Softmax", "LogSoftmax",
    "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss",
    "manual_seed", "default_rng", "init_std", "init", "utils", "summary", "ModelSummary",
    "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm",
]
