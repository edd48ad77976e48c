"""``python -m polymodal.recipes.sesa concepts``: derive the concept vocabulary from the training captions;
``zero-shot``: the test retrieval of the frozen model's own vectors (no training), the reference row.

    python -m polymodal.recipes.sesa concepts --captions data://captions/captions.tsv --k 100 \
        --out recipes/sesa/data/concepts.txt

The training images are those of the recipe's hash split (``Split(sizes=[800, 100, 100], key=image)``), so no
validation or test caption shapes the vocabulary.
"""

from __future__ import annotations

import argparse
import sys

from polymodal.cli.lightning import run_script
from polymodal.data.sources import Split
from polymodal.recipes.sesa.model import derive_concepts, write_concepts


def zero_shot(captions: str, sizes: list[int], model: str, cache_dir: str | None) -> dict[str, float]:
    """The reference without training: the test split's retrieval with the frozen model's vectors."""
    import json

    from polymodal.data.embedded import text_features
    from polymodal.data.groups import GroupedPairs
    from polymodal.metrics.step import grouped_retrieval

    rows = GroupedPairs(Split(sizes=sizes, part="test", path=captions, key="image"), "image", "caption", "eval").frame()
    q = text_features(rows["a"].tolist(), model, cache_dir)
    d = text_features(rows["b"].tolist(), model, cache_dir)
    out = grouped_retrieval(q, d, rows["group_id"].to_numpy(), (1, 5, 10), ("q", "d"))
    print(json.dumps({"model": model, **{k: round(v, 4) for k, v in out.items()}}))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m polymodal.recipes.sesa")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("concepts", help="the K most frequent content words of the training captions")
    c.add_argument("--captions", required=True, help="caption table (image, caption columns)")
    c.add_argument("--k", type=int, default=100)
    c.add_argument("--sizes", type=int, nargs=3, default=[800, 100, 100], help="hash split by image")
    c.add_argument("--out", required=True)
    z = sub.add_parser("zero-shot", help="caption->caption retrieval with the frozen model's own vectors")
    z.add_argument("--captions", required=True)
    z.add_argument("--sizes", type=int, nargs=3, default=[800, 100, 100])
    z.add_argument("--model", default="minilm-l6")
    z.add_argument("--cache-dir", default="runs/feature-cache")
    args = parser.parse_args(argv)
    if args.command == "zero-shot":
        zero_shot(args.captions, args.sizes, args.model, args.cache_dir)
        return
    df = Split(sizes=args.sizes, part="train", path=args.captions, key="image").frame()
    concepts = derive_concepts(df["caption"].tolist(), args.k)
    header = (
        f"SESA concepts: the {len(concepts)} most frequent content words (document frequency) of the captions of the\n"
        f"{df['image'].nunique()} training images of {args.captions} (hash split {args.sizes} by image)\n"
        "python -m polymodal.recipes.sesa " + " ".join(argv if argv is not None else sys.argv[1:])
    )
    write_concepts(concepts, args.out, header)
    print(f"{len(concepts)} concepts -> {args.out}: {', '.join(concepts[:20])}, ...")


def cli(argv: list[str] | None = None) -> None:
    """:func:`main` for the command line: bad input exits with one line (``POLYMODAL_TRACEBACK=1``: the traceback)."""
    run_script(main, "python -m polymodal.recipes.sesa", argv)


if __name__ == "__main__":
    cli()
