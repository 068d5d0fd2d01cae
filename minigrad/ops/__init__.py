"""Every built-in op, one class each, grouped by family.

``arithmetic``: elementwise maths and the matrix product; ``reduction``: sum, mean, max;
``shape``: reshape, transpose, indexing; ``activation``: ReLU, Sigmoid, Tanh.
"""

from minigrad.ops.activation import ReLU, Sigmoid, Tanh
from minigrad.ops.arithmetic import Add, Div, Exp, Log, MatMul, Mul, Neg, Pow, Sqrt, Sub
from minigrad.ops.reduction import Max, Mean, Sum
from minigrad.ops.shape import GetItem, Reshape, Transpose

__all__ = [
    "Add", "Sub", "Mul", "Div", "Neg", "Pow", "MatMul", "Exp", "Log", "Sqrt",
    "Sum", "Mean", "Max",
    "Reshape", "Transpose", "GetItem",
    "ReLU", "Sigmoid", "Tanh",
]
