"""Diagnostics: what an auxiliary weight does to training, measured.

Probes (``update / compute / reset``, keyed by task) read per-task gradients every ``n``
steps and the weights every step: :class:`GradientFlow` (each task's weighted gradient
reaching each layer), :class:`Alignment` (cosine of main and auxiliary gradients on the
shared parameters, fraction of steps in conflict), :class:`Influence` (each task's share of
the shared update, and the first-order change of the main loss the auxiliary step causes),
:class:`WeightTrace` (effective weights over time) and :class:`Generalisation` (the main
task's train/validation gap per epoch). :class:`Diagnostics` runs them in your loop or in
``fit``; see its module docstring for the call order.
"""

from auxlab.diagnostics._diagnostics import Diagnostics, ProbedBalancer, layer_groups
from auxlab.diagnostics._probes import (
    Alignment,
    Generalisation,
    GradientFlow,
    Influence,
    Observation,
    Probe,
    WeightTrace,
    alignment_values,
    flow_values,
    gap_values,
    influence_values,
)

__all__ = [
    "Alignment",
    "Diagnostics",
    "Generalisation",
    "GradientFlow",
    "Influence",
    "Observation",
    "Probe",
    "ProbedBalancer",
    "WeightTrace",
    "alignment_values",
    "flow_values",
    "gap_values",
    "influence_values",
    "layer_groups",
]
