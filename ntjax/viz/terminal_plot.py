"""A loss curve drawn in the terminal (plotext 5.3.2, the classic module API), so a person sees the shape
before reading the verdict."""
from __future__ import annotations

import re
import sys

import numpy as np

from ntjax.diagnostics.runtable import RunTable

TERMINAL_POINTS = 400  # more points than a terminal has columns only blurs the line
WIDTH, HEIGHT = 90, 18
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes, dropped when the output is not a terminal


def _thin(step: np.ndarray, value: np.ndarray) -> tuple[list[float], list[float]]:
    idx = np.unique(np.linspace(0, step.size - 1, min(step.size, TERMINAL_POINTS)).astype(int))
    return step[idx].astype(float).tolist(), value[idx].astype(float).tolist()


def render(table: RunTable, title: str = "", width: int = WIDTH, height: int = HEIGHT,
           color: bool | None = None) -> str:
    """The train and eval loss curves as terminal text (empty string when no loss was logged). Colours
    only on a terminal (by default), so piped output stays plain text."""
    import plotext as plt
    plt.clear_figure()
    plt.plot_size(width, height)
    drawn = False
    for name, line_color in (("train/loss", "blue"), ("eval/loss", "orange")):
        s = table.get(name)
        if s is not None and len(s.finite()) >= 2:
            plt.plot(*_thin(s.finite().step, s.finite().value), label=name, color=line_color)
            drawn = True
    if not drawn:
        return ""
    plt.title(title)
    plt.xlabel("step")
    text = plt.build()
    plt.clear_figure()
    return text if (sys.stdout.isatty() if color is None else color) else ANSI.sub("", text)
