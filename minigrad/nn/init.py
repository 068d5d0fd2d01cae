"""Initial values of parameters: PyTorch's ``torch.nn.init`` functions, the textbook's
initialisations, and the random generator layers draw from.

Every function fills a :class:`~minigrad.nn.Parameter` (or a plain ``np.ndarray``) in place and
returns it, drawing from ``rng`` (a ``np.random.Generator``, or an int that seeds a new one);
without ``rng`` from the generator that :func:`manual_seed` reseeds and layers use.

Fans follow minigrad's layouts. An affine weight is (in, out), the textbook's layout (PyTorch's
``Linear.weight`` is (out, in)), so for a 2-D array fan_in = shape[0] and fan_out = shape[1];
a convolution weight (FN, C, FH, FW) has fan_in = C·FH·FW and fan_out = FN·FH·FW, as PyTorch.
The same layer therefore gets the same spread in both.

The three standard deviations of normal draws, side by side:

- the textbook's "Xavier": sqrt(1 / fan_in) — :func:`book_xavier_normal_`, ``init="xavier"``;
- Glorot / Xavier: gain·sqrt(2 / (fan_in + fan_out)) — :func:`xavier_normal_`,
  ``init="glorot"``;
- He / Kaiming: gain / sqrt(fan), sqrt(2 / fan_in) for ReLU — :func:`kaiming_normal_`,
  ``init="he"`` (the layers' default).

>>> import numpy as np
>>> w = np.empty((400, 300))
>>> round(float(kaiming_normal_(w, nonlinearity="relu", rng=0).std()), 3)  # sqrt(2/400)
0.071
>>> bool(np.abs(xavier_uniform_(w, rng=0)).max() <= np.sqrt(6 / 700))
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minigrad import functional as F
from minigrad.tensor import Tensor

__all__ = [
    "manual_seed", "default_rng", "init_std", "calculate_gain", "uniform_", "normal_",
    "constant_", "ones_", "zeros_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
    "kaiming_normal_", "book_xavier_normal_",
]

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


_INIT_CHOICES = "'he', 'xavier' (the textbook's), 'book-xavier', 'glorot' or a positive number"


def init_std(init: str | float, fan_in: int, fan_out: int | None = None) -> float:
    """Standard deviation of a layer's initial (normal) weights for an ``init`` choice.

    Args:
        init: ``"he"``: sqrt(2 / fan_in) (He / Kaiming for ReLU);
            ``"xavier"`` or ``"book-xavier"``: sqrt(1 / fan_in) (the textbook's Xavier);
            ``"glorot"``: sqrt(2 / (fan_in + fan_out)) (Glorot & Bengio, PyTorch's
            ``xavier_normal_``); or a positive number used as it is.
        fan_in: inputs per output unit.
        fan_out: outputs per input unit (needed by ``"glorot"`` only).

    Returns:
        The standard deviation.

    >>> init_std("he", 50), init_std("xavier", 100), init_std(0.01, 100)
    (0.2, 0.1, 0.01)
    >>> init_std("glorot", 30, 70)
    0.1414213562373095
    """
    if isinstance(init, str):
        key = init.lower()
        if key == "he":
            return float(np.sqrt(2.0 / fan_in))
        if key in ("xavier", "book-xavier"):
            return float(np.sqrt(1.0 / fan_in))
        if key == "glorot":
            if fan_out is None:
                raise ValueError("init: 'glorot' needs the layer's fan_out")
            return float(np.sqrt(2.0 / (fan_in + fan_out)))
        raise ValueError(f"init: expected {_INIT_CHOICES}, got {init!r}")
    if isinstance(init, bool) or not isinstance(init, (int, float, np.floating, np.integer)):
        raise TypeError(f"init: expected {_INIT_CHOICES}, got {type(init).__name__}")
    if not init > 0:
        raise ValueError(f"init: a standard deviation must be positive, got {init}")
    return float(init)


def _normal(shape: tuple[int, ...], std: float, rng: np.random.Generator | None,
            dtype: Any) -> np.ndarray:
    rng = _rng if rng is None else rng
    return (rng.standard_normal(shape) * std).astype(dtype)


# ----------------------------------------------------------------------------------------------
# PyTorch's torch.nn.init


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table): the factor by which the
    initial standard deviation is scaled so that the activations keep their spread.

    ============================================  ==============================
    linear, conv1d/2d/3d, conv_transpose*, sigmoid  1
    tanh                                            5/3
    relu                                            sqrt(2)
    leaky_relu                                      sqrt(2 / (1 + negative_slope²))
    selu                                            3/4
    ============================================  ==============================

    Args:
        nonlinearity: one of the names above.
        param: the negative slope for ``leaky_relu`` (default 0.01).

    >>> calculate_gain("relu"), calculate_gain("tanh"), calculate_gain("leaky_relu", 0.2)
    (1.4142135623730951, 1.6666666666666667, 1.3867504905630728)
    """
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float, np.integer, np.floating)) and not isinstance(
                param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one "
                     f"of {', '.join(linear)}, tanh, relu, leaky_relu, selu")


def _calculate_fan_in_and_fan_out(tensor: Any) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight in minigrad's layouts.

    2-D (in, out), the affine layout: (shape[0], shape[1]). ≥3-D (FN, C, FH, FW...), the
    convolution layout: (C·FH·FW, FN·FH·FW), as PyTorch.

    >>> _calculate_fan_in_and_fan_out(np.empty((784, 100)))
    (784, 100)
    >>> _calculate_fan_in_and_fan_out(np.empty((30, 1, 5, 5)))
    (25, 750)
    """
    shape = np.shape(tensor.data if isinstance(tensor, Tensor) else tensor)
    if len(shape) < 2:
        raise ValueError(f"init: fan in and fan out need at least 2 dimensions, got a weight "
                         f"of shape {shape}")
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    receptive = math.prod(shape[2:])
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def _calculate_correct_fan(tensor: Any, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    if rng is None:
        return _rng
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"init: rng must be a np.random.Generator, an int seed or None, "
                    f"got {type(rng).__name__}")


def _fill(tensor: Any, values: Any, what: str) -> Any:
    """Write ``values`` into the tensor's array in place, in its own dtype; return the tensor."""
    if isinstance(tensor, Tensor):
        array = tensor._writable()  # an in-place change, as an optimiser's step
    elif isinstance(tensor, np.ndarray):
        array = tensor
    else:
        raise TypeError(f"{what}: expected a Parameter, a Tensor or an np.ndarray, "
                        f"got {type(tensor).__name__}")
    if array.dtype.kind not in "fc":
        raise TypeError(f"{what}: the array must be floating point, got dtype {array.dtype}")
    array[...] = values
    return tensor


def _shape(tensor: Any) -> tuple[int, ...]:
    return tuple(np.shape(tensor.data if isinstance(tensor, Tensor) else tensor))


def uniform_(tensor: Any, a: float = 0.0, b: float = 1.0, *,
             rng: np.random.Generator | int | None = None) -> Any:
    """Fill with draws from U(a, b).

    >>> w = uniform_(np.empty(1000), -2.0, 2.0, rng=0)
    >>> bool(w.min() >= -2.0 and w.max() < 2.0)
    True
    """
    if not a <= b:
        raise ValueError(f"uniform_: expected a <= b, got a={a}, b={b}")
    return _fill(tensor, _generator(rng).uniform(a, b, _shape(tensor)), "uniform_")


def normal_(tensor: Any, mean: float = 0.0, std: float = 1.0, *,
            rng: np.random.Generator | int | None = None) -> Any:
    """Fill with draws from N(mean, std²).

    >>> round(float(normal_(np.empty(10000), 3.0, 0.5, rng=0).mean()), 1)
    3.0
    """
    if not std >= 0:
        raise ValueError(f"normal_: std must be non-negative, got {std}")
    values = mean + std * _generator(rng).standard_normal(_shape(tensor))
    return _fill(tensor, values, "normal_")


def constant_(tensor: Any, val: float) -> Any:
    """Fill with ``val``.

    >>> constant_(np.empty(3), 0.5)
    array([0.5, 0.5, 0.5])
    """
    return _fill(tensor, val, "constant_")


def ones_(tensor: Any) -> Any:
    """Fill with 1."""
    return _fill(tensor, 1.0, "ones_")


def zeros_(tensor: Any) -> Any:
    """Fill with 0."""
    return _fill(tensor, 0.0, "zeros_")


def xavier_uniform_(tensor: Any, gain: float = 1.0, *,
                    rng: np.random.Generator | int | None = None) -> Any:
    """Glorot & Bengio (2010): U(−bound, bound), bound = gain·sqrt(6 / (fan_in + fan_out)).

    >>> w = xavier_uniform_(np.empty((30, 70)), rng=0)
    >>> bool(np.abs(w).max() <= np.sqrt(6 / 100))
    True
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _fill(tensor, _generator(rng).uniform(-bound, bound, _shape(tensor)),
                 "xavier_uniform_")


def xavier_normal_(tensor: Any, gain: float = 1.0, *,
                   rng: np.random.Generator | int | None = None) -> Any:
    """Glorot & Bengio (2010): N(0, std²), std = gain·sqrt(2 / (fan_in + fan_out)).

    >>> round(float(xavier_normal_(np.empty((300, 500)), rng=0).std()), 3)   # sqrt(2/800)
    0.05
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill(tensor, std * _generator(rng).standard_normal(_shape(tensor)), "xavier_normal_")


def kaiming_uniform_(tensor: Any, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", *,
                     rng: np.random.Generator | int | None = None) -> Any:
    """He et al. (2015): U(−bound, bound), bound = gain·sqrt(3 / fan), gain =
    ``calculate_gain(nonlinearity, a)``, fan = fan_in or fan_out by ``mode``.

    Args:
        a: the negative slope of the leaky ReLU that follows (0 for ReLU).
        mode: ``"fan_in"`` keeps the forward activations' spread, ``"fan_out"`` the
            backward gradients'.
        nonlinearity: ``"relu"`` or ``"leaky_relu"`` (PyTorch's default).

    >>> w = kaiming_uniform_(np.empty((50, 10)), rng=0)
    >>> bool(np.abs(w).max() <= np.sqrt(2) * np.sqrt(3 / 50))
    True
    """
    fan = _calculate_correct_fan(tensor, mode)
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return _fill(tensor, _generator(rng).uniform(-bound, bound, _shape(tensor)),
                 "kaiming_uniform_")


def kaiming_normal_(tensor: Any, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", *,
                    rng: np.random.Generator | int | None = None) -> Any:
    """He et al. (2015): N(0, std²), std = gain / sqrt(fan); with ``nonlinearity="relu"`` and
    ``mode="fan_in"`` that is the textbook's He initialisation sqrt(2 / fan_in). Arguments as
    :func:`kaiming_uniform_`.

    >>> round(float(kaiming_normal_(np.empty((200, 1000)), rng=0).std()), 3)   # sqrt(2/200)
    0.1
    """
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return _fill(tensor, std * _generator(rng).standard_normal(_shape(tensor)),
                 "kaiming_normal_")


def book_xavier_normal_(tensor: Any, *, rng: np.random.Generator | int | None = None) -> Any:
    """The textbook's "Xavier" initialisation: N(0, 1 / fan_in), std = sqrt(1 / fan_in)
    (a layer's ``init="xavier"``). Glorot and Bengio's own formula, with fan_in + fan_out,
    is :func:`xavier_normal_`.

    >>> round(float(book_xavier_normal_(np.empty((100, 2000)), rng=0).std()), 3)   # sqrt(1/100)
    0.1
    """
    fan_in, _ = _calculate_fan_in_and_fan_out(tensor)
    std = math.sqrt(1.0 / fan_in)
    return _fill(tensor, std * _generator(rng).standard_normal(_shape(tensor)),
                 "book_xavier_normal_")
