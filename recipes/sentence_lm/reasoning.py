"""Multi-step reasoning problems generated in code, one sentence per reasoning step (issue 19, part (c) data).

Two tasks, each written with several sentence *templates*; a split is made by template, so the templates of the
test problems never occur in training (``split_templates``):

* ``arithmetic``: a start value and a chain of operations (add, subtract, multiply by small integers), all stated
  in the question; each step sentence states the operation and the intermediate value; the answer is the final
  value.
* ``reachability``: a random directed graph given as edge sentences; the question asks whether a target node can
  be reached from a source node; the steps are a breadth-first search, one sentence per expanded frontier; the
  answer is ``yes`` or ``no``.

Every problem is a row: ``question`` (the problem statement), ``steps`` (the reasoning sentences joined by
``\\n``), ``answer``, ``solution`` (the steps followed by the answer sentence ``The answer is <answer>.``: what
the sentence-level predictor and the chain-of-thought baseline learn to produce), ``task``, ``template`` (its
index within the task) and ``id``. The generator is deterministic in ``seed``. :class:`ReasoningSentences` gives
the distinct solution sentences one per row, the same text as input ``sentence`` and ``target`` (the training
data of the semantic autoencoder).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal

from polymodal.data.sources import Source

__all__ = [
    "ARITHMETIC_TEMPLATES",
    "REACHABILITY_TEMPLATES",
    "ReasoningProblems",
    "ReasoningSentences",
    "answer_sentence",
    "arithmetic",
    "parse_answer",
    "reachability",
]

# (start sentence, step sentence per op, instruction per op (stated in the question), question); {v} value,
# {n} operand, {r} result
ARITHMETIC_TEMPLATES: list[dict[str, Any]] = [
    {
        "start": "Start with {v}.",
        "ops": {"+": "Add {n} to get {r}.", "-": "Subtract {n} to get {r}.", "*": "Multiply by {n} to get {r}."},
        "do": {"+": "add {n}", "-": "subtract {n}", "*": "multiply by {n}"},
        "question": "What is the final number?",
    },
    {
        "start": "A box holds {v} marbles.",
        "ops": {
            "+": "Someone puts in {n} more, so it holds {r}.",
            "-": "Someone takes out {n}, so it holds {r}.",
            "*": "The count becomes {n} times as large: {r}.",
        },
        "do": {"+": "put in {n} more", "-": "take out {n}", "*": "make the count {n} times as large"},
        "question": "How many marbles are in the box at the end?",
    },
    {
        "start": "Let x be {v}.",
        "ops": {"+": "x plus {n} is {r}.", "-": "x minus {n} is {r}.", "*": "x times {n} is {r}."},
        "do": {"+": "add {n} to x", "-": "subtract {n} from x", "*": "multiply x by {n}"},
        "question": "What is x at the end?",
    },
    {
        "start": "The counter shows {v}.",
        "ops": {
            "+": "It goes up by {n} and shows {r}.",
            "-": "It goes down by {n} and shows {r}.",
            "*": "It is scaled by {n} and shows {r}.",
        },
        "do": {"+": "count up by {n}", "-": "count down by {n}", "*": "scale it by {n}"},
        "question": "What does the counter show last?",
    },
]

# (edge sentence, question, frontier step sentence, final step sentence)
REACHABILITY_TEMPLATES: list[dict[str, str]] = [
    {
        "edge": "There is a road from {a} to {b}.",
        "question": "Can one travel from {s} to {t}?",
        "step": "From {a} one reaches {bs}.",
        "dead": "From {a} no new town is reached.",
    },
    {
        "edge": "{a} links to {b}.",
        "question": "Is {t} reachable from {s}?",
        "step": "{a} leads to {bs}.",
        "dead": "{a} leads nowhere new.",
    },
    {
        "edge": "Node {a} has an arrow to node {b}.",
        "question": "Is there a path from node {s} to node {t}?",
        "step": "Following the arrows of node {a} gives {bs}.",
        "dead": "Node {a} adds no new node.",
    },
    {
        "edge": "A message sent to {a} is forwarded to {b}.",
        "question": "Does a message sent to {s} arrive at {t}?",
        "step": "{a} forwards it to {bs}.",
        "dead": "{a} forwards it to no one new.",
    },
]

_NAMES = [chr(ord("A") + i) for i in range(26)]
ANSWER = "The answer is {answer}."


def answer_sentence(answer: str) -> str:
    """The final sentence of every solution."""
    return ANSWER.format(answer=answer)


def parse_answer(sentence: str) -> str | None:
    """The answer a (decoded) final sentence states: the last integer, else ``yes``/``no``; ``None`` if neither."""
    import re

    numbers = re.findall(r"-?\d+", sentence)
    if numbers:
        return str(int(numbers[-1]))
    words = re.findall(r"\b(yes|no)\b", sentence.lower())
    return words[-1] if words else None


def arithmetic(rng: random.Random, template: int, steps: int) -> dict[str, Any]:
    """One arithmetic chain of ``steps`` operations in template ``template``."""
    t = ARITHMETIC_TEMPLATES[template]
    value = rng.randint(1, 20)
    sentences = [t["start"].format(v=value)]
    lines, todo = [], []
    for _ in range(steps):
        op = rng.choice("+-*") if abs(value) < 200 else rng.choice("+-")
        n = rng.randint(2, 4) if op == "*" else rng.randint(1, 20)
        value = value + n if op == "+" else value - n if op == "-" else value * n
        lines.append(t["ops"][op].format(n=n, r=value))
        todo.append(t["do"][op].format(n=n))
    sentences.append("Then " + ", then ".join(todo) + ".")  # the question states every operation, in order
    return {"question": " ".join([*sentences, t["question"]]), "steps": "\n".join(lines), "answer": str(value)}


def reachability(rng: random.Random, template: int, nodes: int, edges: int) -> dict[str, Any]:
    """One reachability question on a random directed graph of ``nodes`` nodes and ``edges`` distinct edges."""
    t = REACHABILITY_TEMPLATES[template]
    names = rng.sample(_NAMES, nodes)
    pairs = [(a, b) for a in names for b in names if a != b]
    chosen = rng.sample(pairs, min(edges, len(pairs)))
    source, target = rng.sample(names, 2)
    out: dict[str, list[str]] = {n: [] for n in names}
    for a, b in chosen:
        out[a].append(b)
    seen, frontier, lines = {source}, [source], []
    while frontier and target not in seen:  # breadth-first, one sentence per expanded node
        nxt = []
        for a in frontier:
            new = [b for b in sorted(out[a]) if b not in seen]
            seen.update(new)
            nxt += new
            lines.append(t["step"].format(a=a, bs=" and ".join(new)) if new else t["dead"].format(a=a))
            if target in seen:
                break
        frontier = nxt
    facts = " ".join(t["edge"].format(a=a, b=b) for a, b in chosen)
    question = f"{facts} {t['question'].format(s=source, t=target)}"
    return {"question": question, "steps": "\n".join(lines), "answer": "yes" if target in seen else "no"}


def split_templates(count: int, part: Literal["train", "test"], test_templates: int) -> list[int]:
    """Template indices of a part: the last ``test_templates`` of ``count`` are the test templates."""
    if not 0 < test_templates < count:
        raise ValueError(f"test_templates must be in 1..{count - 1}, got {test_templates}")
    return list(range(count - test_templates)) if part == "train" else list(range(count - test_templates, count))


class ReasoningProblems(Source):
    """Generated reasoning problems as rows (see the module docstring).

    Args:
        part: ``"train"`` (the first templates of each task) or ``"test"`` (the last ``test_templates``).
        per_template: problems per template and task.
        tasks: ``arithmetic`` and/or ``reachability``.
        steps: arithmetic chain length range ``[min, max]``.
        nodes: reachability graph size range ``[min, max]``.
        test_templates: templates per task held out for ``test``.
        seed: generator seed (train and test draw from different streams).
    """

    def __init__(
        self,
        part: Literal["train", "test"] = "train",
        per_template: int = 100,
        tasks: Sequence[str] = ("arithmetic", "reachability"),
        steps: Sequence[int] = (2, 5),
        nodes: Sequence[int] = (4, 7),
        test_templates: int = 1,
        seed: int = 0,
    ) -> None:
        if part not in ("train", "test"):
            raise ValueError(f"part must be train or test, got {part!r}")
        unknown = sorted(set(tasks) - {"arithmetic", "reachability"})
        if unknown or not tasks:
            raise ValueError(f"tasks must be arithmetic and/or reachability, got {list(tasks)}")
        if per_template < 1 or steps[0] < 1 or steps[1] < steps[0] or nodes[0] < 2 or nodes[1] < nodes[0]:
            raise ValueError(f"need per_template >= 1, 1 <= steps[0] <= steps[1], 2 <= nodes[0] <= nodes[1]; got "
                             f"{per_template}, {list(steps)}, {list(nodes)}")  # fmt: skip
        self.part, self.per_template, self.tasks = part, int(per_template), list(tasks)
        self.steps, self.nodes = (int(steps[0]), int(steps[1])), (int(nodes[0]), int(nodes[1]))
        self.test_templates, self.seed = int(test_templates), int(seed)

    def describe(self) -> str:
        return f"ReasoningProblems({self.part}, {','.join(self.tasks)}, seed {self.seed})"

    def read(self) -> Any:
        import pandas as pd

        rng = random.Random(f"{self.seed}:{self.part}")
        rows = []
        for task in self.tasks:
            count = len(ARITHMETIC_TEMPLATES if task == "arithmetic" else REACHABILITY_TEMPLATES)
            for template in split_templates(count, self.part, self.test_templates):
                for _ in range(self.per_template):
                    if task == "arithmetic":
                        row = arithmetic(rng, template, rng.randint(*self.steps))
                    else:
                        n = rng.randint(*self.nodes)
                        row = reachability(rng, template, n, rng.randint(n - 1, 2 * n))
                    solution = "\n".join([row["steps"], answer_sentence(row["answer"])]).strip("\n")
                    rows.append({**row, "solution": solution, "task": task, "template": template, "id": len(rows)})
        return pd.DataFrame(rows)


class ReasoningSentences(ReasoningProblems):
    """The distinct solution sentences of :class:`ReasoningProblems` (same arguments), one per row:
    ``sentence`` and ``target`` hold the same text (input and reconstruction target of the semantic
    autoencoder), plus ``task``, ``template`` and ``id``; ``limit`` keeps the first rows of a seeded shuffle."""

    def __init__(self, *args: Any, limit: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be >= 1 or None, got {limit}")
        self.limit = limit

    def describe(self) -> str:
        return f"ReasoningSentences({self.part}, {','.join(self.tasks)}, seed {self.seed})"

    def read(self) -> Any:
        import pandas as pd

        seen: dict[str, tuple[str, int]] = {}
        for problem in super().read().itertuples():
            for sentence in str(problem.solution).split("\n"):
                if sentence.strip():
                    seen.setdefault(sentence.strip(), (str(problem.task), int(problem.template)))
        keys = list(seen)
        random.Random(f"{self.seed}:{self.part}:sentences").shuffle(keys)
        keys = keys[: self.limit] if self.limit is not None else keys
        rows = [{"sentence": k, "target": k, "task": seen[k][0], "template": seen[k][1], "id": i}
                for i, k in enumerate(keys)]  # fmt: skip
        return pd.DataFrame(rows)
