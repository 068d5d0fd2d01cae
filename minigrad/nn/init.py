"""Initial values of parameters: the random generator layers draw from, and the standard
deviations of the textbook's initialisations.

``manual_seed`` reseeds the generator that layers (given no ``rng=``) and dropout (given no
``rng=``) use by default; ``default_rng`` returns it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minigrad import functional as F

__all__ = ["manual_seed", "default_rng", "init_std"]

_rng = np.random.default_rng()


def manual_seed(seed: int | None) -> None:
    """Reseed the random draws of nn: initial weights (for layers given no ``rng=``) and
    dropout masks (for dropout given no ``rng=``, as ``minigrad.functional.manual_seed`` does).

    The two get independent streams spawned from one ``np.random.SeedSequence(seed)``.

    Args:
        seed: an int, or None for fresh entropy.

    >>> from minigrad.nn import Linear
    >>> manual_seed(1); a = Linear(2, 2).weight.data
    >>> manual_seed(1); b = Linear(2, 2).weight.data
    >>> bool((a == b).all())
    True
    """
    global _rng
    init_seed, dropout_seed = np.random.SeedSequence(seed).spawn(2)
    _rng = np.random.default_rng(init_seed)
    F.manual_seed(dropout_seed)


def default_rng() -> np.random.Generator:
    """The generator layers use when they are given no ``rng=`` (reseeded by ``manual_seed``)."""
    return _rng


def init_std(init: str | float, fan_in: int) -> float:
    """Standard deviation of the initial weights for an ``init`` choice and a fan-in.

    Args:
        init: ``"he"`` (sqrt(2 / fan_in)), ``"xavier"`` (sqrt(1 / fan_in)) or a positive number
            used as it is.
        fan_in: inputs per output unit.

    Returns:
        The standard deviation.

    >>> init_std("he", 50), init_std("xavier", 100), init_std(0.01, 100)
    (0.2, 0.1, 0.01)
    """
    if isinstance(init, str):
        key = init.lower()
        if key == "he":
            return float(np.sqrt(2.0 / fan_in))
        if key == "xavier":
            return float(np.sqrt(1.0 / fan_in))
        raise ValueError(f"init: expected 'he', 'xavier' or a positive number, got {init!r}")
    if isinstance(init, bool) or not isinstance(init, (int, float, np.floating, np.integer)):
        raise TypeError(f"init: expected 'he', 'xavier' or a positive number, "
                        f"got {type(init).__name__}")
    if not init > 0:
        raise ValueError(f"init: a standard deviation must be positive, got {init}")
    return float(init)


def _normal(shape: tuple[int, ...], std: float, rng: np.random.Generator | None,
            dtype: Any) -> np.ndarray:
    rng = _rng if rng is None else rng
    return (rng.standard_normal(shape) * std).astype(dtype)
