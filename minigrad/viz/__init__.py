"""Pictures of what happens inside a network.

- :mod:`~minigrad.viz.graph`: ``draw_graph``, the computation graph on the tape;
  :mod:`~minigrad.viz.gradients`: ``record_grads``, the gradient along every edge;
  :mod:`~minigrad.viz.render`: ``render_graph``, ``save_dot``, ``save_graph`` write it.
- :mod:`~minigrad.viz.curves`: ``plot_history`` (learning curves), ``plot_lr_schedule``.
- :mod:`~minigrad.viz.network`: ``show_filters``, ``show_feature_maps``, ``misclassified``,
  ``plot_misclassified``: what a trained CNN has learnt and where it fails.
- :mod:`~minigrad.viz.activations`: ``record_activations`` (forward hooks keeping each
  layer's outputs) and ``plot_activation_histograms``.
"""

from minigrad.viz.activations import (
    ActivationRecord,
    plot_activation_histograms,
    record_activations,
)
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

__all__ = ["ActivationRecord", "DotNotFoundError", "GradRecord", "draw_graph", "misclassified",
           "plot_activation_histograms", "plot_history", "plot_lr_schedule",
           "plot_misclassified", "record_activations", "record_grads", "render_graph",
           "save_dot", "save_graph", "show_feature_maps", "show_filters"]
