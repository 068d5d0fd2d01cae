"""Tools for testing ops: a numerical gradient checker and hypothesis strategies.

>>> import minigrad
>>> from minigrad.testing import gradcheck
>>> gradcheck(lambda x: (x * x).sum(), [1.0, 2.0])
True
"""

from minigrad.testing.gradcheck import GradcheckError, gradcheck, numerical_grad

__all__ = ["gradcheck", "numerical_grad", "GradcheckError"]
