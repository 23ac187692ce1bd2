"""Figures and measurements made from runs and benchmarks; the only part of bixt that imports matplotlib."""

from bixt.analysis.plots import plot_learning_curve, plot_scaling

__all__ = ["plot_learning_curve", "plot_scaling"]
