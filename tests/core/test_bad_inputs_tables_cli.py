"""Tables and the plain subcommands: text keeps its text, bad cells are one line naming file, row, column."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from polymodal.cli import main
from polymodal.data.tables import iter_table, read_table
from polymodal.model import EmbeddingModel
from polymodal.poolers import MeanPooler
from tests.helpers import tiny_text_encoder


@pytest.mark.parametrize("word", ["NA", "null", "None", "NaN", "N/A", "nan", "NULL", "<NA>"])
@pytest.mark.parametrize("ext", [".csv", ".tsv", ".csv.gz"])
def test_na_like_words_stay_text_in_text_columns(tmp_path, word, ext):
    sep = "\t" if ext == ".tsv" else ","
    body = f"text{sep}score\n{word}{sep}1.5\nhello{sep}NA\n{sep}2\n"
    path = tmp_path / f"t{ext}"
    if ext.endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(body)
    else:
        path.write_text(body)
    for df in (read_table(path), next(iter_table(path))):
        assert df["text"].tolist()[:2] == [word, "hello"]
        assert df["text"].isna().tolist() == [False, False, True]  # only the empty cell is missing
        assert df["score"].dtype == np.float64 and np.isnan(df["score"].iloc[1])  # numeric column: NA -> NaN


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("text,score,text\na,1,b\n", "duplicate column name 'text' in the header (columns 1 and 3)"),
        ("a,b,a,b\n1,2,3,4\n", "duplicate column name 'a'"),
        ("x\tx\n1\t2\n", "duplicate column name 'x'"),
    ],
)
def test_duplicate_headers_are_refused(tmp_path, body, expected):
    path = tmp_path / ("t.tsv" if "\t" in body else "t.csv")
    path.write_text(body)
    for read in (read_table, lambda p: next(iter_table(p))):
        with pytest.raises(ValueError) as err:
            read(path)
        assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("ext", [".jsonl", ".ndjson", ".csv"])
def test_a_byte_order_mark_is_accepted_everywhere(tmp_path, ext):
    path = tmp_path / f"t{ext}"
    body = '{"text": "NA", "score": 1}\n{"text": "b", "score": 2}\n' if ext != ".csv" else "text,score\nNA,1\nb,2\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    df = read_table(path)
    assert list(df.columns) == ["text", "score"] and df["text"].tolist() == ["NA", "b"]


@pytest.mark.parametrize(
    ("name", "raw", "line"),
    [
        ("t.csv", b"text,score\nok,1\nfine,2\nbad \xff here,3\n", 4),
        ("t.csv.gz", gzip.compress(b"text,score\nbad \xfe,1\n"), 2),
        ("t.tsv", b"text\tscore\n\xc3,1\n", 2),
    ],
)
def test_decode_errors_name_the_line(tmp_path, name, raw, line):
    path = tmp_path / name
    path.write_bytes(raw)
    with pytest.raises(ValueError) as err:
        read_table(path)
    msg = str(err.value)
    assert "\n" not in msg and f"not UTF-8 text at line {line} of the file" in msg and str(path) in msg


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return EmbeddingModel(tiny_text_encoder(), MeanPooler()).save(tmp_path_factory.mktemp("m") / "model")


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([("a", "b", "1"), ("c", "d", "")], "row 1, column 'score' is empty"),
        ([("a", "b", "1"), ("c", "d", "high")], "row 1, column 'score' is 'high'"),
        ([("a", "", "1"), ("c", "d", "2")], "row 0, column 'sentence2' is empty"),
        ([("a", "b", "1"), ("3.5", "d", "2")], None),  # a number-like sentence in a text column is text
        ([("1", "2", "1"), ("3", "4", "2")], "row 0, column 'sentence1' holds 1, not text"),
        ([], "no rows to evaluate"),
    ],
)
def test_evaluate_bad_cells_are_one_line(tiny_model, tmp_path, capsys, rows, expected):
    path = tmp_path / "pairs.csv"
    path.write_text("sentence1,sentence2,score\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    if expected is None:
        assert main(["evaluate", "--model", str(tiny_model), "--data", str(path)]) == 0
        return
    with pytest.raises(ValueError) as err:
        main(["evaluate", "--model", str(tiny_model), "--data", str(path)])
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert capsys.readouterr().err.strip().count("\n") == 0


@pytest.mark.parametrize("gold", [["2", "2", "2"], ["1", "1", "1"]])
def test_evaluate_writes_valid_json_when_correlation_is_undefined(tiny_model, tmp_path, capsys, gold):
    path = tmp_path / "pairs.csv"
    path.write_text("sentence1,sentence2,score\n" + "".join(f"s{i},t{i},{g}\n" for i, g in enumerate(gold)))
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(path)]) == 0
    out = capsys.readouterr()
    record = json.loads(out.out.strip().splitlines()[-1])  # strict JSON: a bare NaN would fail here
    assert record["cosine_spearman"] is None and "correlation undefined" in out.err


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("text\na\n\nc\n", None),  # a blank line is skipped by the CSV reader, not an empty cell
        ('text\na\n""\nc\n', "row 1, column 'text' is empty"),
        ("text,n\na,1\n,2\n", "row 1, column 'text' is empty"),
        ("n\n1\n2\n", "row 0, column 'n': expected a string"),
    ],
)
def test_encode_bad_cells_are_one_line(tiny_model, tmp_path, body, expected):
    path = tmp_path / "in.csv"
    path.write_text(body)
    out = tmp_path / "out.npy"
    column = body.split("\n", 1)[0].split(",")[0]
    args = ["encode", "--model", str(tiny_model), "--input", str(path), "--column", column, "--output", str(out)]
    if expected is None:
        assert main(args) == 0 and np.load(out).shape == (2, 32)
        return
    with pytest.raises(ValueError) as err:
        main(args)
    assert expected in str(err.value) and "\n" not in str(err.value) and str(path) in str(err.value)
    assert not out.exists()  # nothing half-written
