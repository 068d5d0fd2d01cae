"""Graph files: ``render_graph`` (SVG/PNG/PDF through Graphviz's ``dot``), ``save_dot`` (the DOT
text, which needs no ``dot``) and ``save_graph`` (the picture when ``dot`` is installed, else the
DOT text with a warning that says how to install Graphviz)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from minigrad.viz._files import _atomic_write
from minigrad.viz.graph import draw_graph

__all__ = ["DotNotFoundError", "render_graph", "save_dot", "save_graph"]


class DotNotFoundError(RuntimeError):
    """Graphviz's ``dot`` program, which renders graphs to SVG/PNG, is not installed."""


_INSTALL_DOT = (
    "render_graph: Graphviz's 'dot' program was not found on PATH, so the graph cannot be "
    "rendered to {fmt}. Install Graphviz: 'sudo apt-get install graphviz' (Debian/Ubuntu), "
    "'brew install graphviz' (macOS) or 'conda install -c conda-forge graphviz', then make "
    "sure 'dot -V' works. Without it, minigrad.viz.save_dot(graph, 'graph.dot') still writes "
    "the DOT text, which any Graphviz viewer opens.")


def render_graph(graph: Any, path: str | os.PathLike, format: str | None = None,
                 dpi: int | None = None) -> Path:
    """Render a graph from ``draw_graph`` to an SVG or PNG file with Graphviz's ``dot``.

    Args:
        graph: a ``graphviz.Digraph`` (as ``draw_graph`` returns).
        path: the file to write; written to a temporary file beside it, then renamed.
        format: "svg", "png" or "pdf"; by default taken from the suffix of ``path`` (".svg"
            if it has none of these).
        dpi: resolution of a PNG (Graphviz's default is 96); ignored for SVG and PDF.

    Returns:
        The path written.

    Raises:
        DotNotFoundError: ``dot`` is not installed (the message says how to install it).
    """
    import graphviz

    path = Path(path)
    if format is None:
        suffix = path.suffix.lstrip(".").lower()
        format = suffix if suffix in ("svg", "png", "pdf") else "svg"
    if format not in ("svg", "png", "pdf"):
        raise ValueError(f"render_graph: format must be 'svg', 'png' or 'pdf', got {format!r}")
    if not isinstance(graph, (graphviz.Digraph, graphviz.Graph)):
        raise TypeError(f"render_graph: expected a graphviz graph from draw_graph, got "
                        f"{type(graph).__name__}")
    if dpi is not None and format == "png":
        graph = graph.copy()
        graph.graph_attr["dpi"] = str(int(dpi))
    try:
        data = graph.pipe(format=format)
    except graphviz.ExecutableNotFound as error:
        raise DotNotFoundError(_INSTALL_DOT.format(fmt=format.upper())) from error
    return _atomic_write(path, lambda f: f.write(data))


def save_dot(graph_or_outputs: Any, path: str | os.PathLike) -> Path:
    """Write the DOT text of a graph (or of ``draw_graph(*outputs)``) atomically; no ``dot``.

    Args:
        graph_or_outputs: a ``graphviz.Digraph``, or a Tensor or list of Tensors to draw with
            the default options.
        path: the ``.dot`` file to write.

    Returns:
        The path written.
    """
    import graphviz

    if isinstance(graph_or_outputs, (graphviz.Digraph, graphviz.Graph)):
        source = graph_or_outputs.source
    else:
        outputs = graph_or_outputs
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        source = draw_graph(*outputs).source
    return _atomic_write(path, lambda f: f.write(source.encode("utf-8")))


def save_graph(graph: Any, path: str | os.PathLike, dpi: int | None = None) -> Path:
    """Render a graph to ``path`` when Graphviz's ``dot`` is installed, else write its DOT text.

    ``render_graph`` when it can; without ``dot`` the DOT text goes to ``path`` with the suffix
    ``.dot`` instead (a ``UserWarning`` says so and how to install Graphviz), so a script that
    draws a graph runs on any machine.

    Args:
        graph: a ``graphviz.Digraph`` (as ``draw_graph`` returns).
        path: the picture to write (``.svg``, ``.png`` or ``.pdf``).
        dpi: resolution of a PNG.

    Returns:
        The path written: ``path``, or ``path`` with the suffix ``.dot``.

    Example:
        >>> import tempfile, warnings
        >>> import minigrad
        >>> y = (minigrad.Tensor([1.0, 2.0], requires_grad=True) * 3).sum()
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     written = save_graph(draw_graph(y), Path(tempfile.mkdtemp()) / "y.svg")
        >>> written.suffix in (".svg", ".dot")
        True
    """
    import warnings

    path = Path(path)
    try:
        written = render_graph(graph, path, dpi=dpi)
    except DotNotFoundError as error:
        written = save_dot(graph, path.with_suffix(".dot"))
        warnings.warn(f"save_graph: wrote the DOT text to {written} instead of {path.name}. "
                      f"{error}", UserWarning, stacklevel=2)
    return written
