"""Plots of a run (and, where natural, of its summary) with matplotlib.

Every function takes a Dataset, an optional :class:`matplotlib.axes.Axes` to draw on and
returns the :class:`matplotlib.figure.Figure`. Without ``ax`` a new figure (default size,
constrained layout) is made with :mod:`matplotlib.pyplot`; no backend is chosen here.
Legends sit outside the axes, to the right: when you pass your own ``ax``, give its figure
``layout="constrained"`` or save with ``bbox_inches="tight"`` so that they are not cut off.

Money axes hold CNY and are labelled in readable units (CNY, CNY k, CNY m or CNY bn): the
plotted data stay in CNY, only the tick labels are scaled. Every estimate honours the
per-path likelihood ratio ``weight`` like :mod:`stresslab.estimators`: E[h] is estimated by
``mean(w h)`` and quantiles by :func:`stresslab.estimators.weighted_quantile`.
docs/plots.md shows each plot.

The plots live in modules named after what they draw: :mod:`~stresslab.plots.distribution`
(loss_distribution, exceedance_curve, loss_heatmap), :mod:`~stresslab.plots.delinquency`
(dpd30_fan, state_stack), :mod:`~stresslab.plots.layers` (loss_allocation, capacity_fan,
exhaustion_curve), :mod:`~stresslab.plots.ifrs9` (allowance_fan, stage_mix),
:mod:`~stresslab.plots.capital` (capital_ratio_fan),
:mod:`~stresslab.plots.comparison` (scenario_comparison, sweep_curve)
and :mod:`~stresslab.plots.files` (save_figure); ``stresslab.plots._common`` holds what
they share. Import them from here: ``from stresslab import plots; plots.dpd30_fan(ds)``.
"""

from __future__ import annotations

from stresslab.plots.capital import capital_ratio_fan
from stresslab.plots.comparison import scenario_comparison, sweep_curve
from stresslab.plots.delinquency import dpd30_fan, state_stack
from stresslab.plots.distribution import (
    exceedance_curve,
    loss_distribution,
    loss_heatmap,
)
from stresslab.plots.files import save_figure
from stresslab.plots.ifrs9 import allowance_fan, stage_mix
from stresslab.plots.layers import capacity_fan, exhaustion_curve, loss_allocation

__all__ = [
    "loss_distribution",
    "exceedance_curve",
    "dpd30_fan",
    "state_stack",
    "loss_heatmap",
    "loss_allocation",
    "capacity_fan",
    "exhaustion_curve",
    "scenario_comparison",
    "sweep_curve",
    "save_figure",
    "allowance_fan",
    "stage_mix",
    "capital_ratio_fan",
]
