"""Contact sheets: images laid out on a grid of equal cells, with optional labels, for eyes rather than metrics.

Used for `adain eval --sheet` (rows contents, columns styles) and for the sample grids that
`adain train` writes while it runs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .images import resize_to

BACKGROUND = 255
_GAP = 2


def fit_cell(rgb: np.ndarray, cell: int) -> np.ndarray:
    """Scale an RGB image to fit a cell x cell square (aspect kept), centred on a white background."""
    height, width = rgb.shape[:2]
    scale = cell / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    out = np.full((cell, cell, 3), BACKGROUND, np.uint8)
    top, left = (cell - new_h) // 2, (cell - new_w) // 2
    out[top:top + new_h, left:left + new_w] = resize_to(rgb, new_w, new_h)
    return out


def compose_grid(rows: Sequence[Sequence[np.ndarray | None]], cell: int,
                 labels: Sequence[str | None] | None = None) -> np.ndarray:
    """A grid of cell x cell tiles (None leaves a tile blank); labels[i] is written on row i's first tile."""
    n_cols = max(len(row) for row in rows)
    sheet = np.full((len(rows) * (cell + _GAP) - _GAP, n_cols * (cell + _GAP) - _GAP, 3), BACKGROUND, np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            if image is not None:
                y, x = r * (cell + _GAP), c * (cell + _GAP)
                sheet[y:y + cell, x:x + cell] = fit_cell(image, cell)
    if not labels:
        return sheet
    canvas = Image.fromarray(sheet)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(10, cell // 10))
    for r, label in enumerate(labels):
        if label:
            y = r * (cell + _GAP)
            box = draw.textbbox((4, y + 2), label, font=font)
            draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=(0, 0, 0))
            draw.text((4, y + 2), label, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)
