"""minigrad: a small reverse-mode autograd framework in NumPy whose layers read like the textbook.

>>> import minigrad
>>> x = minigrad.Tensor([2.0, 3.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad
array([4., 6.], dtype=float32)
"""

# tensor first: it binds the ops, which need Function, which needs Tensor.
from minigrad.tensor import Tensor, enable_grad, is_grad_enabled, no_grad  # isort: skip
from minigrad import autograd, data, functional, memory, models, nn, optim, viz
from minigrad.anomaly import AnomalyError, detect_anomaly
from minigrad.autograd import grad
from minigrad.function import Function, unbroadcast
from minigrad.io import load, save
from minigrad.memory import get_keep_freed_memory, set_keep_freed_memory
from minigrad.parallel import get_num_threads, set_num_threads
from minigrad.profiler import profile
from minigrad.routines import concatenate, maximum, minimum, pad, split, stack, where

__version__ = "0.1.0"

memory._at_import()     # keep what a training step frees for the next one (minigrad.memory)

__all__ = [
    "Tensor", "Function", "unbroadcast", "no_grad", "enable_grad", "is_grad_enabled",
    "save", "load", "data", "functional", "nn", "optim", "models", "viz",
    "profile", "detect_anomaly", "AnomalyError", "get_num_threads", "set_num_threads",
    "get_keep_freed_memory", "set_keep_freed_memory",
    "autograd", "grad",
    "concatenate", "stack", "split", "where", "maximum", "minimum", "pad",
]
