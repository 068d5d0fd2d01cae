"""Pictures of what happens inside a network.

The computation graph on the tape (``draw_graph``, ``render_graph``, ``save_dot``,
``save_graph``, ``record_grads``) and learning curves (``plot_history``, ``plot_lr_schedule``).
"""

from minigrad.viz.curves import plot_history, plot_lr_schedule
from minigrad.viz.graph import (
    DotNotFoundError,
    GradRecord,
    draw_graph,
    record_grads,
    render_graph,
    save_dot,
    save_graph,
)

__all__ = ["DotNotFoundError", "GradRecord", "draw_graph", "plot_history", "plot_lr_schedule",
           "record_grads", "render_graph", "save_dot", "save_graph"]
