"""Evaluate the sentence-level reasoner against token-level chain of thought (issue 19, parts (a)-(d)).

    python -m polymodal.recipes.sentence_lm.evaluate --autoencoder runs/sentence_lm-autoencoder/model \\
        --predictor runs/sentence_lm-predictor/model --cot runs/sentence_lm-cot/model

On problems of the held-out TEST templates (:class:`~polymodal.recipes.sentence_lm.reasoning.ReasoningProblems`,
``part="test"``) it prints:

1. (a) reconstruction of the test-template sentences by the semantic autoencoder: exact match, BLEU-1/4, CER;
2. (b) the predictor's teacher-forced cosine between predicted and true next-sentence vectors (against the
   "the next sentence is like the previous one" baseline: cosine of consecutive true vectors);
3. (c) final-answer accuracy and forward FLOPs per problem of: ``continuous`` inference (each predicted vector is
   fed back), ``discretised`` inference (each predicted vector is decoded to text by the autoencoder and
   re-encoded by the frozen sentence encoder), both decoding only their last vector for the answer, and the
   ``cot`` model (token-level chain of thought, greedy). The sentence-level modes run for the gold number of
   solution sentences (an oracle step count; the chain-of-thought model stops at its end token). Beside the
   decoded answer, ``accuracy (nearest answer)`` reads the final predicted vector as the nearest of the answer
   sentences "The answer is X." for X in -100..1000, yes, no (no decoder involved). FLOPs are
   counted by ``torch.utils.flop_counter.FlopCounterMode`` over everything each mode runs for a problem (LM,
   adapter, head, decoder, re-encoder; matrix products and attention, forward only);
4. (d) SentenceLens: hidden states of intermediate predictor layers (final norm + regression head) decoded to
   text by the autoencoder, for ``--lens`` problems.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.recipes.sentence_lm.predictor import SentenceChainProcessor, SentencePredictor
from polymodal.recipes.sentence_lm.reasoning import ReasoningProblems, ReasoningSentences, answer_sentence, parse_answer

__all__ = ["answer_candidates", "evaluate", "main", "reconstruction", "sentence_lens", "solve", "teacher_forced_cosine"]


def _load(path: str, kind: type | None = None) -> Any:
    import polymodal

    model = polymodal.load(path)
    if kind is not None and not isinstance(model, kind):
        raise SystemExit(f"{path}: expected a {kind.__name__} folder, got a {type(model).__name__}")
    return model.eval()


def reconstruction(autoencoder: Any, sentences: Sequence[str], max_new_tokens: int = 32) -> dict[str, float]:
    """Exact match, BLEU-1..4, CIDEr-D and CER of the autoencoder's greedy reconstructions of ``sentences``."""
    from polymodal.evaluation.captioning import caption_scores
    from polymodal.metrics.captioning import exact_match_scores

    out = autoencoder.generate(list(sentences), max_new_tokens=max_new_tokens)
    hyps, refs = dict(enumerate(out)), {i: [s] for i, s in enumerate(sentences)}
    return {**caption_scores(hyps, refs).as_dict(), **exact_match_scores(hyps, refs), "n": len(sentences)}


@torch.no_grad()
def teacher_forced_cosine(predictor: SentencePredictor, problems: Any, batch_size: int = 16) -> dict[str, float]:
    """Mean cosine of predicted vs true next-sentence vectors (teacher forcing) and of consecutive true vectors."""
    processor = SentenceChainProcessor(predictor)
    pred_cos, prev_cos = [], []
    pairs = list(zip(problems.question, problems.solution))
    for start in range(0, len(pairs), batch_size):
        inputs = processor(pairs[start : start + batch_size])
        feats = predictor(inputs)
        mask, steps = inputs["step_mask"], inputs["steps"]
        pred_cos.append(F.cosine_similarity(feats.sequence.float(), steps, dim=-1)[mask])
        both = mask[:, 1:] & mask[:, :-1]
        prev_cos.append(F.cosine_similarity(steps[:, 1:], steps[:, :-1], dim=-1)[both])
    p, q = torch.cat(pred_cos), torch.cat(prev_cos)
    return {"cosine": float(p.mean()), "previous_sentence_cosine": float(q.mean()), "sentences": len(p)}


def _decode(autoencoder: Any, vector: torch.Tensor, max_new_tokens: int) -> str:
    return str(autoencoder.generate(vector.reshape(1, -1).float(), max_new_tokens=max_new_tokens)[0])


def answer_candidates(predictor: SentencePredictor, low: int = -100, high: int = 1000) -> tuple[list[str], Tensor]:
    """The answers ``low..high``, ``yes``, ``no`` and the frozen encoder's unit vectors of their answer sentences
    ("The answer is X."): the nearest-answer readout of a predicted final vector, which does not need the decoder."""
    answers = [str(i) for i in range(low, high + 1)] + ["yes", "no"]
    vectors = predictor.sentence_vectors([answer_sentence(a) for a in answers])
    return answers, F.normalize(vectors, dim=-1)


def solve(
    mode: str, question: str, steps: int, predictor: Any, autoencoder: Any, cot: Any, max_new_tokens: int = 32
) -> tuple[str, list[str], Tensor | None]:
    """One problem in one mode: ``(final sentence, the decoded sentences, the final predicted vector or None)``."""
    if mode == "cot":
        text = cot.generate([question], prompt=question, max_new_tokens=max_new_tokens)[0]
        lines = [s.strip() for s in text.split("\n") if s.strip()]
        return (lines[-1] if lines else ""), lines, None
    decoded: list[str] = []
    feed: Callable[[torch.Tensor], torch.Tensor] | None = None
    if mode == "discretised":

        def feed(v: torch.Tensor) -> torch.Tensor:
            decoded.append(_decode(autoencoder, v, max_new_tokens))
            return predictor.sentence_vectors([decoded[-1]])[0]

    elif mode != "continuous":
        raise ValueError(f"mode must be continuous, discretised or cot, got {mode!r}")
    vectors = predictor.rollout(question, steps, feed=feed)
    final = _decode(autoencoder, vectors[-1], max_new_tokens)
    return final, [*decoded, final], vectors[-1]


def evaluate(
    predictor: Any, autoencoder: Any, cot: Any, problems: Any, modes: Sequence[str], cot_tokens: int = 160
) -> dict[str, dict[str, float]]:
    """Accuracy, FLOPs and seconds per problem of each mode over the rows of ``problems``."""
    from torch.utils.flop_counter import FlopCounterMode

    out: dict[str, dict[str, float]] = {}
    answers, candidates = answer_candidates(predictor)
    for mode in modes:
        correct, nearest, flops, seconds, examples = 0, 0, 0, 0.0, []
        by_task: dict[str, list[bool]] = {}
        near_task: dict[str, list[bool]] = {}
        for row in problems.itertuples():
            n = len([s for s in str(row.solution).split("\n") if s.strip()])
            counter = FlopCounterMode(display=False)
            t0 = time.perf_counter()
            with counter, torch.no_grad():
                final, lines, vector = solve(mode, str(row.question), n, predictor, autoencoder, cot,
                                     cot_tokens if mode == "cot" else 32)  # fmt: skip
            seconds += time.perf_counter() - t0
            flops += counter.get_total_flops()
            if vector is not None:  # nearest answer sentence to the predicted final vector (outside the FLOP count)
                sims = candidates @ F.normalize(vector.float(), dim=-1)
                near_hit = answers[int(sims.argmax())] == str(row.answer)
                nearest += near_hit
                near_task.setdefault(str(row.task), []).append(near_hit)
            hit = parse_answer(final) == str(row.answer)
            correct += hit
            by_task.setdefault(str(row.task), []).append(hit)
            if len(examples) < 2:
                examples.append({"question": str(row.question), "gold": str(row.solution), "output": lines})
        k = len(problems)
        near = nearest / k if mode != "cot" else float("nan")
        out[mode] = {"accuracy": correct / k, "nearest_answer_accuracy": near, "gflops_per_problem": flops / k / 1e9,
                     "s_per_problem": seconds / k, "problems": k, "examples": examples}  # type: ignore[dict-item]  # fmt: skip
        for task in ("arithmetic", "reachability"):
            hits = by_task.get(task, [])
            out[mode][f"accuracy_{task}"] = sum(hits) / len(hits) if hits else float("nan")
            near_hits = near_task.get(task, [])
            near_acc = sum(near_hits) / len(near_hits) if near_hits else float("nan")
            out[mode][f"nearest_answer_accuracy_{task}"] = near_acc
    return out


@torch.no_grad()
def sentence_lens(
    predictor: SentencePredictor, autoencoder: Any, problems: Any, layers: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """SentenceLens: each chosen layer's hidden state at every step position, through the LM's final norm and the
    regression head, decoded to text by the autoencoder (teacher-forced chains)."""
    processor = SentenceChainProcessor(predictor)
    norm = getattr(predictor.lm.get_decoder(), "norm", None)
    out = []
    for row in problems.itertuples():
        inputs = processor([(str(row.question), str(row.solution))])
        states = predictor.hidden_chain(inputs, all_layers=True)  # embeddings + every layer, each (1, S, D)
        chosen = list(layers) if layers else sorted({1, len(states) // 4, len(states) // 2, 3 * len(states) // 4})
        chosen = [i for i in chosen if 0 < i < len(states) - 1] + [len(states) - 1]
        gold = SentenceChainProcessor.sentences(str(row.solution))
        decoded: dict[int, list[str]] = {}
        for i in chosen:
            h = states[i] if i == len(states) - 1 or norm is None else norm(states[i])  # the last is normed already
            vectors = predictor.rescale(predictor.to_vector(h))[0]  # (S, C)
            decoded[i] = [_decode(autoencoder, v, 32) for v in vectors]
        out.append({"question": str(row.question), "gold": gold, "layers": decoded})
    return out


def _table(rows: list[list[Any]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The CLI (see the module docstring); returns the results as a dict."""
    parser = argparse.ArgumentParser(prog="python -m polymodal.recipes.sentence_lm.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--autoencoder", required=True, help="model folder of autoencoder.yaml (PrefixLM)")
    parser.add_argument("--predictor", required=True, help="model folder of predictor.yaml (SentencePredictor)")
    parser.add_argument("--cot", help="model folder of cot.yaml (PrefixLM); without it the cot row is skipped")
    parser.add_argument("--per-template", type=int, default=20, help="test problems per task (one test template)")
    parser.add_argument("--steps", type=int, nargs=2, default=[2, 4])
    parser.add_argument("--nodes", type=int, nargs=2, default=[3, 5])
    parser.add_argument("--sentences", type=int, default=128, help="test-template sentences for reconstruction")
    parser.add_argument("--lens", type=int, default=2, help="SentenceLens problems (0: none)")
    parser.add_argument("--cot-tokens", type=int, default=160, help="generation cap of the cot model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated test problems")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.per_template < 1 or args.sentences < 1 or args.lens < 0:
        parser.error("--per-template and --sentences must be >= 1, --lens >= 0")
    predictor = _load(args.predictor, SentencePredictor)
    from polymodal.prefix_lm import PrefixLM

    autoencoder = _load(args.autoencoder, PrefixLM)
    cot = _load(args.cot, PrefixLM) if args.cot else None
    gen = {"steps": args.steps, "nodes": args.nodes, "seed": args.seed}
    problems = ReasoningProblems("test", per_template=args.per_template, **gen).frame()
    sentences = ReasoningSentences("test", per_template=40, limit=args.sentences, **gen).frame()
    results: dict[str, Any] = {"reconstruction": reconstruction(autoencoder, list(sentences.sentence))}
    r = results["reconstruction"]
    print("## (a) semantic autoencoder: reconstruction of test-template sentences\n")
    print(_table([[r["n"], r["exact"], r["bleu1"], r["bleu4"], r["cer"]]], ["sentences", "exact", "BLEU-1", "BLEU-4",
                                                                            "CER"]))  # fmt: skip
    results["predictor"] = teacher_forced_cosine(predictor, problems)
    p = results["predictor"]
    print("\n## (b) contextual predictor: teacher-forced next-sentence cosine on test-template problems\n")
    print(_table([[p["sentences"], p["cosine"], p["previous_sentence_cosine"]]],
                 ["sentences", "cos(predicted, true)", "cos(previous, true) baseline"]))  # fmt: skip
    modes = ["continuous", "discretised"] + (["cot"] if cot is not None else [])
    results["inference"] = evaluate(predictor, autoencoder, cot, problems, modes, args.cot_tokens)
    print(f"\n## (c) final-answer accuracy on {len(problems)} test-template problems\n")
    rows = [[mode, m["accuracy"], m["accuracy_arithmetic"], m["accuracy_reachability"], m["nearest_answer_accuracy"],
             m["nearest_answer_accuracy_arithmetic"], m["nearest_answer_accuracy_reachability"],
             m["gflops_per_problem"], m["s_per_problem"]] for mode, m in results["inference"].items()]  # fmt: skip
    print(_table(rows, ["mode", "accuracy (decoded)", "arithmetic", "reachability", "accuracy (nearest answer)",
                        "arithmetic", "reachability", "GFLOPs / problem (FlopCounterMode)",
                        "s / problem"]))  # fmt: skip
    reach = problems[problems.task == "reachability"]
    print(f"\nreachability answer base rate: {float((reach.answer == 'yes').mean()):.3f} yes "
          f"({len(reach)} problems; a constant answer scores max(yes, 1 - yes))")  # fmt: skip
    for mode, m in results["inference"].items():
        ex = m["examples"][0]
        print(f"\n{mode} example: {ex['question'][:160]}\n  gold: {ex['gold']!r}\n  output: {ex['output']!r}")
    if args.lens:
        results["lens"] = sentence_lens(predictor, autoencoder, problems.head(args.lens))
        print("\n## (d) SentenceLens: intermediate predictor layers decoded by the autoencoder\n")
        for ex in results["lens"]:
            print(f"question: {ex['question'][:200]}")
            for j, gold in enumerate(ex["gold"]):
                print(f"  step {j + 1} gold: {gold}")
                for layer, texts in ex["layers"].items():
                    print(f"    layer {layer:>2}: {texts[j]}")
    if args.out:
        from polymodal.io import atomic_path

        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(results, indent=2, default=str))
    return results


if __name__ == "__main__":  # pragma: no cover
    main()
