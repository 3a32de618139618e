"""Figures shared by the labs: image grids, saved figures, a CJK font for Chinese text."""
from __future__ import annotations

import glob
import os
import textwrap
from pathlib import Path

import numpy as np

from gan_course.i18n import _

# Fonts that draw Simplified Chinese, best first: Debian's fonts-noto-cjk (the course's
# image and CI), Adobe's Source Han Sans, WenQuanYi (older Linux), then the fonts Windows
# and macOS ship.
CJK_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "Source Han Sans CN", "Noto Sans SC",
                "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC",
                "Heiti SC", "Hiragino Sans GB", "Arial Unicode MS")
# Where such fonts are installed; files here that matplotlib's font cache does not know yet
# (a font installed after the cache was built) are added when needed.
FONT_FOLDERS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts",
                "/Library/Fonts", "/System/Library/Fonts", "C:/Windows/Fonts")
FONT_FILES = ("*CJK*", "*SourceHan*", "wqy*", "msyh*", "simhei*", "PingFang*", "NotoSansSC*")
INSTALL_CJK = "sudo apt-get install fonts-noto-cjk (Debian/Ubuntu); conda install -c conda-forge font-ttf-noto-cjk"


def find_cjk_font() -> str | None:
    """The family name of an installed font that draws Chinese, or None."""
    from matplotlib import font_manager

    def known():
        names = {f.name for f in font_manager.fontManager.ttflist}
        return next((family for family in CJK_FAMILIES if family in names), None)

    family = known()
    if family is None:
        for folder in FONT_FOLDERS:
            folder = os.path.expanduser(folder)
            for pattern in FONT_FILES:
                for path in glob.glob(os.path.join(folder, "**", pattern), recursive=True):
                    if path.lower().endswith((".ttf", ".otf", ".ttc")):
                        try:
                            font_manager.fontManager.addfont(path)
                        except (OSError, RuntimeError, ValueError):
                            continue
        family = known()
    return family


def use_cjk_font() -> str | None:
    """Let matplotlib draw Chinese: the CJK font right after DejaVu Sans, so
    Latin letters and math keep their usual look and only what DejaVu lacks falls back to it.
    Returns the CJK family (None when none is installed: see `gan-course doctor`)."""
    import matplotlib

    family = find_cjk_font()
    if family is not None:
        rest = [f for f in matplotlib.rcParams["font.sans-serif"] if f not in ("DejaVu Sans", family)]
        matplotlib.rcParams["font.sans-serif"] = ["DejaVu Sans", family, *rest]
        # Glyph by glyph fallback works along the list of named families (a generic name such
        # as "sans-serif" stands for its first installed font only).
        matplotlib.rcParams["font.family"] = ["DejaVu Sans", family, "sans-serif"]
    return family


def cjk_font_report() -> tuple[bool, str, str]:
    """(found, what was found, how to install one): the line `gan-course doctor` prints."""
    family = find_cjk_font()
    if family is not None:
        return True, _("{family}: figures draw Chinese text").format(family=family), ""
    return False, _("no CJK font: Chinese titles and labels in figures show as boxes"), INSTALL_CJK


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
