"""Notebook display of figures, shared by every experiment's ``plots`` module.

Plot functions (``axon_lab.<experiment>.plots``) take frames and return plain
``matplotlib.figure.Figure`` objects (no pyplot state), never touch files. Each plots module
calls :func:`enable_notebook_display` on import: inside IPython it registers the PNG formatter
for figures, so a figure returned by a notebook cell is shown exactly once (and embedded in
HTML exports), without ``%matplotlib inline``.
"""

from __future__ import annotations


def enable_notebook_display() -> None:
    """Register the PNG formatter for Figure objects when running inside IPython (idempotent)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        return
    shell = get_ipython()
    if shell is None:
        return
    from IPython.core.pylabtools import select_figure_formats

    select_figure_formats(shell, {"png"}, bbox_inches="tight", dpi=100)
