"""matplotlib figures from result frames: functions take frames and return figures, never touch files.

Figures are plain ``matplotlib.figure.Figure`` objects (no pyplot state). Importing this package
inside IPython registers the PNG formatter for them, so a figure returned by a notebook cell is
shown exactly once (and embedded in HTML exports), without ``%matplotlib inline``.
"""

from __future__ import annotations


def _enable_notebook_display() -> None:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        return
    shell = get_ipython()
    if shell is None:
        return
    from IPython.core.pylabtools import select_figure_formats

    select_figure_formats(shell, {"png"}, bbox_inches="tight", dpi=100)


_enable_notebook_display()
