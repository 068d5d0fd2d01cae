"""Tools for testing ops: a numerical gradient checker, an op checker and hypothesis strategies.

``gradcheck`` and ``check_op`` need only NumPy. The strategies (``shapes``, ``arrays``,
``conv_settings``, ...) live in ``minigrad.testing.strategies`` and need hypothesis
(``pip install hypothesis``); they are also reachable from here.

>>> import minigrad
>>> from minigrad.testing import gradcheck
>>> gradcheck(lambda x: (x * x).sum(), [1.0, 2.0])
True
"""

from typing import Any

from minigrad.testing.gradcheck import (
    GradcheckError,
    check_op,
    gradcheck,
    gradgradcheck,
    numerical_grad,
)

_STRATEGIES = ("shapes", "broadcastable_shapes", "arrays", "distinct_arrays", "conv_settings",
               "pool_settings")

__all__ = ["gradcheck", "gradgradcheck", "check_op", "numerical_grad", "GradcheckError",
           *_STRATEGIES]


def __getattr__(name: str) -> Any:
    # The strategies import hypothesis, which the library itself does not need.
    if name in _STRATEGIES:
        from minigrad.testing import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'minigrad.testing' has no attribute {name!r}")
