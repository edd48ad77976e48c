"""Generated reasoning data of sentence_lm: every answer re-derived independently from the text of the problem."""

from __future__ import annotations

import re

import pytest

from polymodal.recipes.sentence_lm.reasoning import ARITHMETIC_TEMPLATES, REACHABILITY_TEMPLATES, ReasoningProblems


def _pattern(template: str, **groups: str) -> re.Pattern[str]:
    """A template sentence as a regex: each {name} becomes the named group (?P<name>...), the rest is literal."""
    parts = re.split(r"\{(\w+)\}", template)
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{groups[p]})" for i, p in enumerate(parts)))


def _check_arithmetic(row) -> None:
    t = ARITHMETIC_TEMPLATES[row.template]
    start = _pattern(t["start"], v=r"-?\d+").match(row.question)
    assert start, row.question
    value = int(start.group("v"))
    for line in row.steps.split("\n"):
        hits = [(op, m) for op, s in t["ops"].items() if (m := _pattern(s, n=r"\d+", r=r"-?\d+").fullmatch(line))]
        assert len(hits) == 1, line
        op, m = hits[0]
        n, stated = int(m.group("n")), int(m.group("r"))
        value = {"+": value + n, "-": value - n, "*": value * n}[op]
        assert stated == value, (line, value)  # every intermediate value in the text is right
    assert row.answer == str(value)


def _check_reachability(row) -> None:
    t = REACHABILITY_TEMPLATES[row.template]
    edges = [(m["a"], m["b"]) for m in _pattern(t["edge"], a="[A-Z]", b="[A-Z]").finditer(row.question)]
    (q,) = list(_pattern(t["question"], s="[A-Z]", t="[A-Z]").finditer(row.question))
    s, target = q["s"], q["t"]
    nodes = {x for e in edges for x in e} | {s, target}
    reach = {(a, b) for a, b in edges} | {(x, x) for x in nodes}
    for k in nodes:  # Warshall's transitive closure (independent of the generator's breadth-first search)
        reach |= {(i, j) for i in nodes for j in nodes if (i, k) in reach and (k, j) in reach}
    assert row.answer == ("yes" if (s, target) in reach else "no")
    assert row.steps, "at least the source is expanded"


@pytest.mark.parametrize("part", ["train", "test"])
def test_every_generated_answer_is_correct(part):
    frame = ReasoningProblems(part, per_template=30, seed=3).frame()
    for row in frame.itertuples():
        (_check_arithmetic if row.task == "arithmetic" else _check_reachability)(row)
    reach = frame[frame.task == "reachability"]
    assert 0.2 < (reach.answer == "yes").mean() < 0.8  # both answers occur: not a constant-answer task


def test_split_by_template_and_determinism():
    train = ReasoningProblems("train", per_template=20).frame()
    test = ReasoningProblems("test", per_template=20).frame()
    for task, templates in (("arithmetic", ARITHMETIC_TEMPLATES), ("reachability", REACHABILITY_TEMPLATES)):
        a = set(train[train.task == task].template)
        b = set(test[test.task == task].template)
        assert a == set(range(len(templates) - 1)) and b == {len(templates) - 1}
    held = ARITHMETIC_TEMPLATES[-1]["question"]
    assert not train.question.str.contains(held, regex=False).any()  # test phrasing never seen in training
    assert test.question.str.contains(held, regex=False).any()
    assert ReasoningProblems("train", per_template=20).frame().equals(train)
    assert not ReasoningProblems("train", per_template=20, seed=1).frame().equals(train)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"part": "val"}, "part must be train or test"),
        ({"tasks": ["sorting"]}, "tasks must be arithmetic and/or reachability"),
        ({"tasks": []}, "tasks must be arithmetic and/or reachability"),
        ({"per_template": 0}, "need per_template >= 1"),
        ({"steps": [3, 2]}, "need per_template >= 1"),
        ({"nodes": [1, 3]}, "need per_template >= 1"),
        ({"test_templates": 4}, "test_templates must be in 1..3"),
    ],
)
def test_bad_settings_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        ReasoningProblems(**kwargs).frame()
    assert "\n" not in str(err.value)
