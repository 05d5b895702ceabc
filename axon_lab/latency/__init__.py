"""Latency experiments: the load baseline, the stage breakdown and before/after comparisons.

Notebooks import the modules: :mod:`~axon_lab.latency.baseline`,
:mod:`~axon_lab.latency.breakdown`, :mod:`~axon_lab.latency.compare` and the figures in
:mod:`~axon_lab.latency.plots`.
"""
