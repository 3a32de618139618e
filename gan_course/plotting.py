"""Figures shared by the labs: image grids, saved figures."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np


def image_grid(images, ncols: int | None = None, value_range=(-1.0, 1.0), pad: int = 1) -> np.ndarray:
    """Tile a batch (N, H, W, C) into one uint8 image, pixels mapped from `value_range` to [0, 255]."""
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    lo, hi = value_range
    scaled = np.clip((images - lo) / (hi - lo), 0, 1)
    grid = np.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), np.float32)
    for i in range(n):
        r, col = divmod(i, ncols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = scaled[i]
    out = (grid * 255).round().astype(np.uint8)
    return out[..., 0] if c == 1 else out


def show_images(images, title: str, ncols: int | None = None, value_range=(-1.0, 1.0), ax=None, save: Path | None = None):
    """Draw a grid of images with a title; optionally save the figure as PNG."""
    import matplotlib.pyplot as plt

    grid = image_grid(images, ncols, value_range)
    own = ax is None
    if own:
        size = max(3.0, min(8.0, grid.shape[1] / 40))
        fig, ax = plt.subplots(figsize=(size, size * grid.shape[0] / grid.shape[1] + 0.4))
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255)
    # Long dataset titles wrap to the grid's width instead of running off the figure.
    width = max(20, int(ax.get_position().width * ax.figure.get_figwidth() * 72 / 7))
    ax.set_title(textwrap.fill(title, width))
    ax.axis("off")
    if own:
        fig.tight_layout()
        if save is not None:
            fig.savefig(save, dpi=120)
        plt.show()
    return ax


def save_figure(fig, path: Path) -> Path:
    """Save a figure as PNG (the labs keep their key figures next to their outputs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path
