"""Writes the tiny generated image-caption set that ``tiny.yaml`` trains on (shipped in ``data/``).

Twelve 48x48 PNGs, one coloured shape each on white (4 colours x 3 shapes), two captions each.
Run ``python -m polymodal.recipes.grounded_sentence.tiny_data <folder>`` to regenerate; the
output is deterministic.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

__all__ = ["write_tiny_data"]

COLOURS = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (40, 60, 220), "yellow": (230, 200, 20)}
SHAPES = ("circle", "square", "triangle")


def write_tiny_data(folder: str | Path, size: int = 48) -> Path:
    """Write ``shape_<colour>_<shape>.png`` images and ``tiny_captions.tsv`` into ``folder``."""
    from PIL import Image, ImageDraw

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    m = size // 6
    for colour, rgb in COLOURS.items():
        for shape in SHAPES:
            img = Image.new("RGB", (size, size), (255, 255, 255))
            draw = ImageDraw.Draw(img)
            box = (m, m, size - m, size - m)
            if shape == "circle":
                draw.ellipse(box, fill=rgb)
            elif shape == "square":
                draw.rectangle(box, fill=rgb)
            else:
                draw.polygon([(size // 2, m), (size - m, size - m), (m, size - m)], fill=rgb)
            name = f"shape_{colour}_{shape}.png"
            img.save(out / name, optimize=True)
            rows.append((name, 0, f"A {colour} {shape} on a white background ."))
            rows.append((name, 1, f"There is one {shape} and it is {colour} ."))
    with open(out / "tiny_captions.tsv", "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["image", "caption_idx", "caption"])
        writer.writerows(rows)
    return out


if __name__ == "__main__":  # pragma: no cover
    print(write_tiny_data(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "data"))
