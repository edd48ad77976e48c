"""Bad input for the pixel and glyph modalities, table-driven (issue 8; text, image, time series
and configs are in tests/core/test_bad_inputs.py and the plugin tests).

Documented handling asserted here:

* pixel: every string renders. Empty -> only the black end-of-sequence patch; characters no font
  covers (lone surrogates, astral emoji, supplementary private use) -> a visible hex box; zero-width
  and bidi controls -> their (possibly blank) glyph cells, left to right; over-long text -> cut at
  ``max_patches`` with one warning. Non-strings -> TypeError naming the item and type.
* glyph (codepoint tokenizer, BMP): every BMP codepoint (controls, surrogates, private use
  included) is its own id; codepoints above U+FFFF -> the ``unk`` id; empty -> one padding position
  with mask 0; over-long -> cut at ``max_length`` with one warning. Non-strings -> TypeError.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from polymodal.data.datamodule import Collator
from polymodal.plugins.glyph import CodepointTokenizer, GlyphProcessor
from polymodal.plugins.pixel import PixelProcessor, TextRenderer


@dataclass
class Case:
    id: str
    value: object
    check: Callable[[dict], None] | None = None
    raises: type[BaseException] | None = None
    match: str = ""
    warns: str = ""


@pytest.fixture(scope="module")
def pixel():
    return PixelProcessor(TextRenderer(max_patches=32))


@pytest.fixture(scope="module")
def glyph():
    return GlyphProcessor(CodepointTokenizer(), max_length=16)


def _patches(n: int) -> Callable[[dict], None]:
    def check(out: dict) -> None:
        assert int(out["attention_mask"].sum()) == n
        assert out["pixel_values"].shape[-1] == 256  # 16 x 16 px patches

    return check


def _inked(out: dict) -> None:  # some ink (0) and some paper (255): the text is visible
    assert int(out["pixel_values"].min()) == 0 and int(out["pixel_values"].max()) == 255


PIXEL_CASES = [
    Case("empty-string", "", _patches(1)),  # the end patch alone
    Case("whitespace-only", "  \t\n ", lambda o: (_patches(4)(o), _inked(o))),
    Case("one-megabyte-string", "a" * 1_000_000, _patches(32), warns="did not fit in max_patches=32"),
    Case("lone-surrogate", "bad \ud800 x", lambda o: (_patches(5)(o), _inked(o))),
    Case("zero-width-and-bidi", "a\u200bb\u202ed", _patches(5)),
    Case("emoji-and-astral", "🙂 \U0001f600 𝔘", lambda o: (_patches(5)(o), _inked(o))),
    Case("private-use", "\ue000\U000f0000", _patches(3)),
    Case("none-value", None, raises=TypeError, match="item 0: the pixel renderer expects strings, got NoneType"),
    Case("bytes-value", b"\xff", raises=TypeError, match="expects strings, got bytes"),
]

GLYPH_CASES = [
    Case(
        "empty-string",
        "",
        lambda o: (
            (o["input_ids"].tolist() == [[65536]] and o["attention_mask"].tolist() == [[0]]) or pytest.fail(str(o))
        ),
    ),
    Case(
        "whitespace-only", "  \t\n ", lambda o: o["input_ids"].tolist() == [[32, 32, 9, 10, 32]] or pytest.fail(str(o))
    ),
    Case(
        "one-megabyte-string",
        "a" * 1_000_000,
        lambda o: tuple(o["input_ids"].shape) == (1, 16) or pytest.fail(str(o)),
        warns="longer than max_length=16",
    ),
    Case("lone-surrogate", "a\ud800", lambda o: o["input_ids"].tolist() == [[97, 0xD800]] or pytest.fail(str(o))),
    Case(
        "zero-width-and-bidi",
        "a\u200bb\u202e",
        lambda o: o["input_ids"].tolist() == [[97, 0x200B, 98, 0x202E]] or pytest.fail(str(o)),
    ),
    Case("astral-is-unk", "🙂𝔘", lambda o: o["input_ids"].tolist() == [[65537, 65537]] or pytest.fail(str(o))),
    Case(
        "private-use", "\ue000\U000f0000", lambda o: o["input_ids"].tolist() == [[0xE000, 65537]] or pytest.fail(str(o))
    ),
    Case("control-characters", "\x00\x07", lambda o: o["input_ids"].tolist() == [[0, 7]] or pytest.fail(str(o))),
    Case("none-value", None, raises=TypeError, match="item 0: the glyph modality expects strings, got NoneType"),
]


def _run(processor, case: Case) -> None:
    if case.raises is not None:
        with pytest.raises(case.raises, match=case.match):
            processor([case.value])
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        processor._warned = False  # each case sees its own first warning
        out = processor([case.value])
    messages = [str(w.message) for w in caught]
    if case.warns:
        assert any(case.warns in m for m in messages), messages
    assert case.check is not None
    case.check(out)


@pytest.mark.parametrize("case", PIXEL_CASES, ids=[c.id for c in PIXEL_CASES])
def test_pixel_inputs(case, pixel):
    _run(pixel, case)


@pytest.mark.parametrize("case", GLYPH_CASES, ids=[c.id for c in GLYPH_CASES])
def test_glyph_inputs(case, glyph):
    _run(glyph, case)


@pytest.mark.parametrize(
    "make", [lambda: PixelProcessor(TextRenderer(max_patches=8)), lambda: GlyphProcessor(CodepointTokenizer())]
)
def test_bad_value_in_a_dataset_names_file_row_and_column(make):
    collate = Collator({"text": make()}, "essays.csv")
    rows = [({"text": "fine"}, {}, {}, 1), ({"text": 3.5}, {}, {}, 2)]  # (values, targets, meta, 1-based row)
    with pytest.raises(TypeError, match=r"essays\.csv: row 2, column 'text': .*float"):
        collate(rows)
    processor = make()
    with pytest.raises(ValueError, match="expected a string, got float"):
        processor.validate(3.5)  # what TableDataModule calls per row at load time
