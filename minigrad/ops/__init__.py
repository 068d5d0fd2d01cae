"""Every built-in op, one class each, grouped by family.

``arithmetic``: elementwise maths and the matrix product; ``reduction``: sum, mean, max;
``shape``: reshape, transpose, indexing; ``activation``: ReLU, Sigmoid, Tanh; ``conv``:
Conv2d, ConvTranspose2d with the im2col/col2im helpers; ``pooling``: MaxPool2d, AvgPool2d,
AdaptiveAvgPool2d; ``linear``: Affine;
``loss``: Softmax, LogSoftmax, SoftmaxCrossEntropy (and the losses with options: CrossEntropy,
NLLLoss, MSELoss, L1Loss, BinaryCrossEntropy, BinaryCrossEntropyWithLogits); ``dropout``:
Dropout; ``elementwise``: Abs, Clip, Sin, Cos, Maximum, Minimum, Where, LeakyReLU, ELU,
Softplus; ``statistics``: Min, Var, Std, LogSumExp; ``join``: Concatenate, Stack, Pad,
BroadcastTo, SumTo; ``normalization``: BatchNorm, LayerNorm, GroupNorm.
The lowercase functions users call are in ``minigrad.functional``.
"""

from minigrad.ops.activation import ReLU, Sigmoid, Tanh
from minigrad.ops.arithmetic import Add, Div, Exp, Log, MatMul, Mul, Neg, Pow, Sqrt, Sub
from minigrad.ops.conv import Conv2d, ConvTranspose2d
from minigrad.ops.dropout import Dropout
from minigrad.ops.elementwise import (
    ELU,
    Abs,
    Clip,
    Cos,
    LeakyReLU,
    Maximum,
    Minimum,
    Sin,
    Softplus,
    Where,
)
from minigrad.ops.join import BroadcastTo, Concatenate, Pad, Stack, SumTo
from minigrad.ops.linear import Affine
from minigrad.ops.loss import (
    BinaryCrossEntropy,
    BinaryCrossEntropyWithLogits,
    CrossEntropy,
    L1Loss,
    LogSoftmax,
    MSELoss,
    NLLLoss,
    Softmax,
    SoftmaxCrossEntropy,
)
from minigrad.ops.normalization import BatchNorm, GroupNorm, LayerNorm
from minigrad.ops.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from minigrad.ops.reduction import Max, Mean, Sum
from minigrad.ops.shape import GetItem, Reshape, Transpose
from minigrad.ops.statistics import LogSumExp, Min, Std, Var

__all__ = [
    "Add", "Sub", "Mul", "Div", "Neg", "Pow", "MatMul", "Exp", "Log", "Sqrt",
    "Sum", "Mean", "Max",
    "Reshape", "Transpose", "GetItem",
    "ReLU", "Sigmoid", "Tanh",
    "Conv2d", "MaxPool2d", "AvgPool2d", "Affine",
    "ConvTranspose2d", "AdaptiveAvgPool2d",
    "Softmax", "LogSoftmax", "SoftmaxCrossEntropy", "Dropout",
    "Abs", "Clip", "Sin", "Cos", "Maximum", "Minimum", "Where", "LeakyReLU", "ELU", "Softplus",
    "Min", "Var", "Std", "LogSumExp",
    "Concatenate", "Stack", "Pad", "BroadcastTo", "SumTo",
    "CrossEntropy", "NLLLoss", "MSELoss", "L1Loss", "BinaryCrossEntropy",
    "BinaryCrossEntropyWithLogits",
    "BatchNorm", "LayerNorm", "GroupNorm",
]
