"""``python -m polymodal.recipes.data_text_matching {prepare,graph,baselines}``.

# FEBRL 4 originals as a table, their duplicates as sentences (needs pip install 'polymodal[linkage]')
python -m polymodal.recipes.data_text_matching prepare --n 1000 --out runs/dtm/febrl
# the tuple / sentence / value graph, with and without the expand and compress steps
python -m polymodal.recipes.data_text_matching graph --data runs/dtm/febrl --out runs/dtm/febrl/graph.tsv
python -m polymodal.recipes.data_text_matching graph --data runs/dtm/febrl --no-expand \
    --out runs/dtm/febrl/graph_noexpand.tsv
python -m polymodal.recipes.data_text_matching graph --data runs/dtm/febrl --no-compress \
    --out runs/dtm/febrl/graph_nocompress.tsv
# peers: TF-IDF, zero-shot MiniLM, recordlinkage (sentence -> tuple Recall@1 / MRR, seconds)
python -m polymodal.recipes.data_text_matching baselines --data runs/dtm/febrl
"""

from __future__ import annotations

import argparse
import json

from polymodal.cli.lightning import run_script
from polymodal.plugins.graph import write_graph
from polymodal.recipes.data_text_matching.matching import baselines, build_graph, prepare_febrl, read_corpora


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m polymodal.recipes.data_text_matching")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="FEBRL 4 tuples, duplicate sentences and links")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    g = sub.add_parser("graph", help="build the tuple / sentence / value graph")
    g.add_argument("--data", required=True, help="a prepared folder (tuples.tsv, sentences.tsv)")
    g.add_argument("--out", required=True)
    g.add_argument("--no-expand", action="store_true")
    g.add_argument("--no-compress", action="store_true")
    g.add_argument("--max-df", type=float, default=0.05)
    b = sub.add_parser("baselines", help="TF-IDF, zero-shot MiniLM and recordlinkage matchers")
    b.add_argument("--data", required=True)
    b.add_argument("--only", nargs="+", default=["tfidf", "minilm", "recordlinkage"])
    b.add_argument("--cache-dir", default="runs/feature-cache")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        print(json.dumps(prepare_febrl(args.out, args.n, args.seed)))
    elif args.command == "graph":
        tuples, sentences = read_corpora(args.data)
        graph, stats = build_graph(tuples, sentences, not args.no_expand, not args.no_compress, args.max_df)
        write_graph(graph, args.out)
        print(json.dumps({"graph": args.out, **stats}))
    else:
        for name, res in baselines(args.data, args.only, args.cache_dir).items():
            print(json.dumps({"method": name, **{k: round(v, 4) for k, v in res.items()}}))


def cli(argv: list[str] | None = None) -> None:
    """:func:`main` for the command line: bad input exits with one line (``POLYMODAL_TRACEBACK=1``: the traceback)."""
    run_script(main, "python -m polymodal.recipes.data_text_matching", argv)


if __name__ == "__main__":
    cli()
