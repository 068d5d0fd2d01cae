"""Tools for testing ops: a numerical gradient checker, an op checker and hypothesis strategies.

>>> import minigrad
>>> from minigrad.testing import gradcheck
>>> gradcheck(lambda x: (x * x).sum(), [1.0, 2.0])
True
"""

from minigrad.testing.gradcheck import GradcheckError, check_op, gradcheck, numerical_grad
from minigrad.testing.strategies import (
    arrays,
    broadcastable_shapes,
    conv_settings,
    distinct_arrays,
    pool_settings,
    shapes,
)

__all__ = [
    "gradcheck", "check_op", "numerical_grad", "GradcheckError",
    "shapes", "broadcastable_shapes", "arrays", "distinct_arrays", "conv_settings",
    "pool_settings",
]
