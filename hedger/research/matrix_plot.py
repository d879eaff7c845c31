"""The hedge-ratio matrix as an annotated heatmap (PNG), with matplotlib.

matplotlib is the optional extra ``hedger[plot]``, loaded only when a plot is asked for (by
:func:`hedger.research.plots.figure_class`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hedger.engine.linalg import FloatArray
from hedger.errors import ConfigError
from hedger.research.plots import figure_class

ANNOTATE_UP_TO = 30
"""Cells carry their value as text up to this many symbols; beyond, only colour."""


def plot_beta_matrix(
    path: Path,
    beta: FloatArray,
    symbols: tuple[str, ...],
    *,
    title: str,
    units: str,
    warm: np.ndarray,
) -> None:
    """Write ``beta`` (N, N) (row = Y hedged, column = X hedge; NaN on the diagonal, drawn
    grey) as a heatmap PNG at ``path``; ``units`` labels the colour bar; values of pairs not
    yet warm (``warm`` (N, N) bool) are in italics."""
    figure_cls = figure_class()
    from matplotlib import colormaps  # noqa: PLC0415 (optional extra, lazily)

    matplotlib_colormap = colormaps.get_cmap
    n = len(symbols)
    side = min(max(4.0, 0.45 * n + 2.0), 40.0)
    figure = figure_cls(figsize=(side + 1.5, side), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    finite = beta[np.isfinite(beta)]
    limit = float(np.max(np.abs(finite))) if finite.size else 1.0
    limit = limit if limit > 0 else 1.0
    shown = np.ma.masked_invalid(beta)
    colours = matplotlib_colormap("RdBu_r").with_extremes(bad="0.85")
    image = axes.imshow(shown, cmap=colours, vmin=-limit, vmax=limit, interpolation="nearest")
    colorbar = figure.colorbar(image, ax=axes, shrink=0.8)
    colorbar.set_label(units)
    axes.set_xticks(range(n), labels=list(symbols), rotation=90)
    axes.set_yticks(range(n), labels=list(symbols))
    axes.set_xlabel("X (the hedge)")
    axes.set_ylabel("Y (the hedged)")
    axes.set_title(title)
    if n <= ANNOTATE_UP_TO:
        size = max(4.0, min(9.0, 120.0 / n))
        for iy in range(n):
            for ix in range(n):
                value = beta[iy, ix]
                if math.isnan(value):
                    continue
                dark = abs(value) > 0.6 * limit
                axes.text(
                    ix,
                    iy,
                    f"{value:.2g}" if abs(value) < 100 else f"{value:.0f}",
                    ha="center",
                    va="center",
                    fontsize=size,
                    color="white" if dark else "black",
                    style="normal" if warm[iy, ix] else "italic",
                )
    try:
        figure.savefig(path, format="png")
    except OSError as exc:
        raise ConfigError("plot", f"{path}: {exc.strerror or exc}") from None
