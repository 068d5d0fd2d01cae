"""Pictures of what happens inside a network.

- :mod:`~minigrad.viz.graph`: ``draw_graph``, the computation graph on the tape;
  :mod:`~minigrad.viz.gradients`: ``record_grads``, the gradient along every edge;
  :mod:`~minigrad.viz.render`: ``render_graph``, ``save_dot``, ``save_graph`` write it.
- :mod:`~minigrad.viz.curves`: ``plot_history`` (learning curves), ``plot_lr_schedule``.
- :mod:`~minigrad.viz.network`: ``show_filters``, ``show_feature_maps``, ``misclassified``,
  ``plot_misclassified``: what a trained CNN has learnt and where it fails.
"""

from minigrad.viz.curves import plot_history, plot_lr_schedule
from minigrad.viz.gradients import GradRecord, record_grads
from minigrad.viz.graph import draw_graph
from minigrad.viz.network import (
    misclassified,
    plot_misclassified,
    show_feature_maps,
    show_filters,
)
from minigrad.viz.render import DotNotFoundError, render_graph, save_dot, save_graph

__all__ = ["DotNotFoundError", "GradRecord", "draw_graph", "misclassified",
           "plot_history", "plot_lr_schedule", "plot_misclassified", "record_grads", "render_graph",
           "save_dot", "save_graph", "show_feature_maps", "show_filters"]
