"""A handful of generated shape images with 5 captions each: the data of ``tiny.yaml`` and tests.

``python -m polymodal.recipes.cg_vlm.tiny_data FOLDER`` writes ``captions.tsv`` and
``images/*.png`` (the shipped copy in ``recipes/cg_vlm/data`` was made this way, flat).
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["make_tiny_dataset"]

_COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 60, 220), "yellow": (235, 210, 40)}
_SHAPES = ("circle", "square", "triangle")


def make_tiny_dataset(folder: str | Path, n_images: int = 12, size: int = 48, flat: bool = False) -> Path:
    """Write ``n_images`` PNGs (a coloured shape on white) and ``captions.tsv``; returns the table.

    Args:
        folder: output folder.
        n_images: number of images (colour x shape combinations, cycled).
        size: image side in pixels.
        flat: images beside the table with a ``tiny_`` prefix, table named ``tiny_captions.tsv``
            (the layout shipped inside the package), instead of ``images/`` + ``captions.tsv``.
    """
    from PIL import Image, ImageDraw

    root = Path(folder)
    images = root if flat else root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = ["image\tcaption_idx\tcaption"]
    combos = [(c, s) for s in _SHAPES for c in _COLOURS]
    for i in range(n_images):
        colour, shape = combos[i % len(combos)]
        img = Image.new("RGB", (size, size), (255, 255, 255))
        d = ImageDraw.Draw(img)
        a, b = size // 5 + (i % 3), size - size // 5 - (i % 2)
        if shape == "circle":
            d.ellipse((a, a, b, b), fill=_COLOURS[colour])
        elif shape == "square":
            d.rectangle((a, a, b, b), fill=_COLOURS[colour])
        else:
            d.polygon([(size // 2, a), (a, b), (b, b)], fill=_COLOURS[colour])
        name = f"{'tiny_' if flat else ''}{i:02d}_{colour}_{shape}.png"
        img.save(images / name)
        caps = [
            f"A {colour} {shape} on a white background .",
            f"A {shape} that is {colour} .",
            f"The picture shows a {colour} {shape} .",
            f"One {colour} {shape} in the middle .",
            f"A simple {colour} {shape} .",
        ]
        rows += [f"{name}\t{k}\t{c}" for k, c in enumerate(caps)]
    table = root / ("tiny_captions.tsv" if flat else "captions.tsv")
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return table


if __name__ == "__main__":  # pragma: no cover
    print(make_tiny_dataset(sys.argv[1] if len(sys.argv) > 1 else ".", flat="--flat" in sys.argv))
