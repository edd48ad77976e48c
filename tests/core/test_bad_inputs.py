"""Bad input, table-driven: every case either raises an error that names what is wrong (file,
row, column, field) or is handled in a documented way that the case asserts.

Text handling (documented in TextProcessor): empty and whitespace-only strings encode to just the
special tokens; over-long strings are truncated to max_length with a warning; lone surrogates are
replaced with U+FFFD; zero-width, bidi-control, emoji, astral and private-use codepoints are
tokenised like any other character (bytes, for the byte-level tokenizer).
"""

from __future__ import annotations

import gzip
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch

from polymodal.cli import main
from polymodal.data import TableDataModule
from polymodal.plugins.text import TextProcessor, byte_tokenizer
from tests.helpers import tiny_text_encoder


@dataclass
class Case:
    id: str
    run: Callable[..., object]
    raises: type[BaseException] | None = None
    match: str = ""


@pytest.fixture(scope="module")
def text_model():
    from polymodal.model import EmbeddingModel

    return EmbeddingModel(tiny_text_encoder(max_length=32))


def _encodes_finite(model, values):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emb = model.encode(values)
    assert emb.shape == (len(values), 32) and np.isfinite(emb).all()
    return emb


TEXT_CASES = [
    Case("empty-string", lambda m, p: _encodes_finite(m, [""])),
    Case("whitespace-only", lambda m, p: _encodes_finite(m, ["   \t\n "])),
    Case("one-megabyte-string", lambda m, p: _encodes_finite(m, ["a" * 1_000_000])),
    Case("lone-surrogate", lambda m, p: _encodes_finite(m, ["bad \ud800 text"])),
    Case("zero-width-and-bidi", lambda m, p: _encodes_finite(m, ["a\u200bb\u200dc\u202ed\u2066e"])),
    Case("emoji-and-astral", lambda m, p: _encodes_finite(m, ["🙂👩‍👩‍👧 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \U0001f600"])),
    Case("private-use", lambda m, p: _encodes_finite(m, ["\ue000\uf8ff\U000f0000"])),
    Case("non-string-value", lambda m, p: m.encode([None]), TypeError, "expects strings, got NoneType"),
    Case("bytes-value", lambda m, p: m.encode([b"\xff\xfe"]), TypeError, "expects strings, got bytes"),
    Case("single-string-not-list", lambda m, p: m.encode("hello"), TypeError, "wrap a single string in a list"),
]


@pytest.mark.parametrize("case", TEXT_CASES, ids=[c.id for c in TEXT_CASES])
def test_text_inputs(case, text_model, tmp_path):
    if case.raises is None:
        case.run(text_model, tmp_path)
    else:
        with pytest.raises(case.raises, match=case.match):
            case.run(text_model, tmp_path)


def test_over_long_text_is_truncated_with_a_warning():
    proc = TextProcessor(byte_tokenizer(), max_length=16)
    with pytest.warns(UserWarning, match="truncated"):
        out = proc(["x" * 1_000_000])
    assert out["input_ids"].shape == (1, 16)


def test_lone_surrogate_becomes_replacement_character():
    proc = TextProcessor(byte_tokenizer(), max_length=16)
    assert torch.equal(proc(["\ud800"])["input_ids"], proc(["\ufffd"])["input_ids"])


def _table_case(tmp_path, content: bytes, name: str, **dm_kwargs):
    path = tmp_path / name
    path.write_bytes(content)
    dm = TableDataModule(train=str(path), inputs=["s1", "s2"], target="score", **dm_kwargs)
    proc = TextProcessor(byte_tokenizer(), 16)
    dm.set_processors([proc, proc])
    dm.setup("fit")
    return dm


DATA_CASES = [
    Case(
        "missing-file",
        lambda t: TableDataModule(train=str(t / "nope.csv"), inputs=["s1"]).setup("fit"),
        FileNotFoundError,
        "data file not found: .*nope.csv",
    ),
    Case("zero-byte-file", lambda t: _table_case(t, b"", "empty.csv"), ValueError, "empty.csv: cannot parse"),
    Case(
        "invalid-utf8",
        lambda t: _table_case(t, b"s1,s2,score\n\xff\xfe,a,1\n", "latin.csv"),
        ValueError,
        "latin.csv: not UTF-8 text at line 2 of the file",
    ),
    Case(
        "truncated-gzip",
        lambda t: _table_case(t, gzip.compress(b"s1,s2,score\na,b,1\n" * 50)[:40], "cut.csv.gz"),
        ValueError,
        "cut.csv.gz: cannot",
    ),
    Case(
        "missing-column",
        lambda t: _table_case(t, b"s1,score\na,1\n", "nocol.csv"),
        KeyError,
        "nocol.csv: missing column\\(s\\) 's2'; available: s1, score",
    ),
    Case(
        "empty-cell",
        lambda t: _table_case(t, b"s1,s2,score\na,b,1\nc,,2\n", "hole.csv"),
        ValueError,
        "hole.csv: row 2, column 's2': missing value",
    ),
    Case(
        "string-in-numeric-field",
        lambda t: _table_case(t, b"s1,s2,score\na,b,1\nc,d,high\n", "str.csv"),
        ValueError,
        "str.csv: row 2, column 'score': not a finite number: 'high'",
    ),
    Case(
        "nan-target",
        lambda t: _table_case(t, b"s1,s2,score\na,b,nan\n", "nan.csv"),
        ValueError,
        "nan.csv: row 1, column 'score': not a finite number",
    ),
    Case(
        "inf-target",
        lambda t: _table_case(t, b"s1,s2,score\na,b,inf\n", "inf.csv"),
        ValueError,
        "inf.csv: row 1, column 'score': not a finite number",
    ),
    Case("header-only", lambda t: _table_case(t, b"s1,s2,score\n", "hdr.csv"), ValueError, "hdr.csv: no rows to use"),
    Case(
        "ragged-rows",
        lambda t: _table_case(t, b"s1,s2,score\na,b,1\nc,d,2,extra,more\n", "ragged.csv"),
        ValueError,
        "ragged.csv: cannot parse",
    ),
]


@pytest.mark.parametrize("case", DATA_CASES, ids=[c.id for c in DATA_CASES])
def test_table_inputs(case, tmp_path):
    with pytest.raises(case.raises, match=case.match):
        case.run(tmp_path)


def test_bad_rows_can_be_skipped_with_a_count(tmp_path):
    dm = _table_case(tmp_path, b"s1,s2,score\na,b,1\nc,,2\ne,f,x\ng,h,3\n", "mixed.csv", skip_bad_rows=True)
    assert len(dm.datasets["train"]) == 2 and dm.skipped == {"train": 2}


CONFIG_CASES = [
    Case("unknown-key", ["--model.init_args.no_such_option=1"], SystemExit, "no_such_option"),
    Case("wrong-type", ["--data.init_args.batch_size=many"], SystemExit, "batch_size"),
    Case("unknown-class", ["--model.init_args.pooler=MedianPooler"], SystemExit, "MedianPooler"),
    Case("unknown-trainer-key", ["--trainer.max_epocs=1"], SystemExit, "max_epocs"),
]


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c.id for c in CONFIG_CASES])
def test_config_errors_name_the_field(case, tmp_path, capsys):
    with pytest.raises(case.raises):
        main(["fit", "--config", "recipes/sbert/tiny.yaml", f"--trainer.default_root_dir={tmp_path}", *case.run])
    assert case.match in capsys.readouterr().err


def test_unknown_modality_lists_valid_names():
    import polymodal

    with pytest.raises(KeyError, match="unknown modality 'audio'; registered: .*text"):
        polymodal.get_modality("audio")


def test_unknown_pretrained_name_lists_valid_names():
    import polymodal

    with pytest.raises(ValueError, match="known: .*minilm-l6"):
        polymodal.load("minilm-l12")


def test_csv_with_non_numeric_column_is_not_silently_coerced(tmp_path):
    pd.DataFrame({"s1": ["a"], "s2": ["b"], "score": ["1,5"]}).to_csv(tmp_path / "comma.csv", index=False)
    with pytest.raises(ValueError, match="row 1, column 'score': not a finite number: '1,5'"):
        _table_case(tmp_path, (tmp_path / "comma.csv").read_bytes(), "comma2.csv")
