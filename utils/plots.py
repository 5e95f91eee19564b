"""Figures the notebooks share: every one has a title, axis labels and units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def _require_labels(title: str, xlabel: str, ylabel: str) -> None:
    for what, text in (("title", title), ("xlabel", xlabel), ("ylabel", ylabel)):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"every course figure needs a {what}; got {text!r}")


def line_plot(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """One line per entry of `series` against `x`, with markers, legend and grid."""
    _require_labels(title, xlabel, ylabel)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for label, ys in series.items():
        if len(ys) != len(x):
            raise ValueError(f"series {label!r} has {len(ys)} points but x has {len(x)}")
        ax.plot(x, ys, marker="o", label=label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax


def heatmap(
    matrix: torch.Tensor | np.ndarray,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    xticklabels: Sequence[str] | None = None,
    yticklabels: Sequence[str] | None = None,
    overlay: Sequence[tuple[int, int]] = (),
    colorbar_label: str = "weight",
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """A (rows, cols) matrix as an image; `overlay` marks (row, col) cells with a box,
    e.g. the grammar's true word alignment over an attention map."""
    _require_labels(title, xlabel, ylabel)
    data = matrix.detach().float().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix)
    if data.ndim != 2:
        raise ValueError(f"heatmap needs a 2-D matrix (rows, cols), got shape {data.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * data.shape[1] + 2, 0.4 * data.shape[0] + 1.5))
    image = ax.imshow(data, cmap="viridis", aspect="auto")
    ax.figure.colorbar(image, ax=ax, label=colorbar_label)
    if xticklabels is not None:
        ax.set_xticks(range(len(xticklabels)), xticklabels, rotation=60, ha="right")
    if yticklabels is not None:
        ax.set_yticks(range(len(yticklabels)), yticklabels)
    for row, col in overlay:
        ax.add_patch(plt.Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.5))
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return ax
