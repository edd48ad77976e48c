"""``polymodal caption``: captions (or answers to a prompt) for images from a saved prefix-LM folder."""

from __future__ import annotations

import argparse
import json

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--model", required=True, help="a prefix-LM model folder (a CG-VLM export: prefix_lm.json)")
    parser.add_argument("--prompt", default="", help="text after the image tokens ('\\n' is a newline)")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--json", action="store_true", help="one JSON object per image instead of 'path<TAB>text'")


def run(ns: argparse.Namespace) -> int:
    import polymodal
    from polymodal.prefix_lm import PrefixLM

    if ns.max_new_tokens < 1 or ns.batch_size < 1:
        raise ValueError("--max-new-tokens and --batch-size must be >= 1")
    model = polymodal.load(ns.model, device=ns.device)
    if not isinstance(model, PrefixLM):
        raise ValueError(f"{ns.model} is a {type(model).__name__} folder, not a prefix-LM (captioning) model")
    prompt = ns.prompt.replace("\\n", "\n")
    texts = model.generate(ns.images, prompt=prompt, max_new_tokens=ns.max_new_tokens, batch_size=ns.batch_size)
    for path, text in zip(ns.images, texts):
        print(json.dumps({"image": path, "prompt": prompt, "text": text}) if ns.json else f"{path}\t{text}")
    return 0
