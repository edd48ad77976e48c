"""Table reading and the table data module: formats, gzip, and errors naming file/row/column."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from polymodal.data import TableDataModule, read_table
from polymodal.plugins.text import TextProcessor, byte_tokenizer


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"a": ["x y", "z", "w"], "b": ["p", "q r", "s"], "score": [1.0, 2.5, 4.0]})


@pytest.mark.parametrize("name", ["t.csv", "t.tsv", "t.jsonl", "t.parquet", "t.csv.gz", "t.tsv.gz", "t.jsonl.gz"])
def test_read_table_formats(tmp_path, frame, name):
    path = tmp_path / name
    if ".parquet" in name:
        pytest.importorskip("pyarrow")
        frame.to_parquet(path)
    elif ".jsonl" in name:
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, sep="\t" if ".tsv" in name else ",", index=False)
    out = read_table(path)
    assert out["a"].tolist() == frame["a"].tolist() and out["score"].tolist() == frame["score"].tolist()


def test_read_table_stsb_layout_detected(tmp_path):
    path = tmp_path / "sts-dev.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write('g\tf\t2012\t1\t5.000\tA "quoted" one.\tOther\n')
        fh.write("g\tf\t2012\t2\t1.5\tNA\tnull\textra1\textra2\n")
    out = read_table(path)
    assert out["sentence1"].tolist() == ['A "quoted" one.', "NA"]  # no quote handling, no NA conversion
    assert out["score"].tolist() == [5.0, 1.5]


def test_read_table_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="data file not found: .*missing.csv"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(ValueError, match=r"t.xlsx: unknown table format \.xlsx"):
        read_table(tmp_path / "t.xlsx")
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="bad.csv.gz: cannot"):
        read_table(tmp_path / "bad.csv.gz")
    with pytest.raises(ValueError, match="unknown layout 'nope'; known: stsb"):
        read_table(tmp_path / "bad.csv.gz", layout="nope")


def _dm(tmp_path, df, **kw):
    path = tmp_path / "train.csv"
    df.to_csv(path, index=False)
    dm = TableDataModule(train=str(path), inputs=["a", "b"], target="score", batch_size=2, **kw)
    proc = TextProcessor(byte_tokenizer(), 16)
    dm.set_processors([proc, proc])
    return dm, path


def test_datamodule_batches(tmp_path, frame):
    dm, _ = _dm(tmp_path, frame)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.columns == ["a", "b"] and batch.targets["score"].shape == (2,)
    assert set(batch.inputs["a"]) == {"input_ids", "attention_mask"} and len(batch.rows) == 2


def test_missing_column_lists_available(tmp_path, frame):
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    dm = TableDataModule(train=str(path), inputs=["a", "sentence2"], target="score")
    with pytest.raises(KeyError, match="t.csv: missing column\\(s\\) 'sentence2'; available: a, b, score"):
        dm.setup("fit")


def test_bad_row_error_names_file_row_column(tmp_path, frame):
    frame.loc[1, "b"] = None
    frame["score"] = frame["score"].astype(object)
    frame.loc[2, "score"] = "high"
    dm, path = _dm(tmp_path, frame)
    with pytest.raises(ValueError, match=r"train.csv: row 2, column 'b': missing value \(2 bad row"):
        dm.setup("fit")


def test_bad_rows_skipped_on_request_with_count(tmp_path, frame):
    frame.loc[1, "b"] = None
    dm, _ = _dm(tmp_path, frame, skip_bad_rows=True)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 2 and dm.skipped == {"train": 1}


def test_infinite_target_is_rejected(tmp_path, frame):
    frame.loc[0, "score"] = float("inf")
    dm, _ = _dm(tmp_path, frame)
    with pytest.raises(ValueError, match="row 1, column 'score': not a finite number"):
        dm.setup("fit")


def test_datamodule_requires_inputs():
    with pytest.raises(ValueError, match="needs inputs"):
        TableDataModule(train="x.csv")


def test_iter_table_streams_chunks_with_file_row_numbers(tmp_path):
    import pandas as pd

    from polymodal.data import iter_table

    df = pd.DataFrame({"a": range(11), "b": [f"t{i}" for i in range(11)]})
    df.to_csv(tmp_path / "t.csv.gz", index=False)
    df.to_json(tmp_path / "t.json", orient="records")
    for name in ("t.csv.gz", "t.json"):
        chunks = list(iter_table(tmp_path / name, columns=["b"], chunk_rows=4))
        assert [len(c) for c in chunks] == [4, 4, 3]
        assert list(chunks[2].index) == [8, 9, 10] and list(chunks[2].columns) == ["b"]
        assert pd.concat(chunks)["b"].tolist() == df["b"].tolist()
    (tmp_path / "bad.csv").write_text('a,b\n1,"x\n2,y\n' + "3,z\n" * 5)
    with pytest.raises(ValueError, match=r"bad\.csv: cannot parse"):
        list(iter_table(tmp_path / "bad.csv", chunk_rows=2))
    with pytest.raises(ValueError, match="chunk_rows must be >= 1"):
        list(iter_table(tmp_path / "t.json", chunk_rows=0))


def test_stratified_training_batches_for_a_continuous_target(tmp_path):
    import pandas as pd

    from polymodal.data import TableDataModule
    from polymodal.plugins.glyph import CodepointTokenizer, GlyphProcessor

    pd.DataFrame({"text": [f"t{i}" for i in range(40)], "y": [float(i) for i in range(40)]}).to_csv(
        tmp_path / "t.csv", index=False
    )

    def batches(**kw):
        dm = TableDataModule(train=str(tmp_path / "t.csv"), inputs=["text"], target="y", batch_size=8, **kw)
        dm.set_processors([GlyphProcessor(CodepointTokenizer())])
        return [sorted(int(v) // 10 for v in b.targets["y"].tolist()) for b in dm.train_dataloader()]

    assert batches(stratify_bins=4) == [[0, 0, 1, 1, 2, 2, 3, 3]] * 5  # every batch holds each quartile twice
    plain = batches()
    assert sorted(sum(plain, [])) == sorted(sum(batches(stratify_bins=4), []))  # same rows, other order
    assert plain != [[0, 0, 1, 1, 2, 2, 3, 3]] * 5
    with pytest.raises(ValueError, match="stratify_bins must be >= 2"):
        TableDataModule(train="x.csv", inputs=["text"], stratify_bins=1)
    dm = TableDataModule(train=str(tmp_path / "t.csv"), inputs=["text"], batch_size=8, stratify_bins=4)
    dm.set_processors([GlyphProcessor(CodepointTokenizer())])
    with pytest.raises(ValueError, match="needs exactly one target column"):
        dm.train_dataloader()


@pytest.mark.parametrize(
    ("train_target", "val_targets"),
    [
        ("t1", ["t1"]),  # one training target: val's gold column keeps the training target's name
        (["t1", "t2"], ["score"]),  # several (teacher scores per candidate): val's only target, under its own name
    ],
)
def test_eval_target_reads_the_gold_column_in_val(tmp_path, train_target, val_targets):
    import pandas as pd

    pd.DataFrame({"a": ["x", "y"], "b": ["u", "v"], "t1": [0.1, 0.2], "t2": [0.3, 0.4]}).to_csv(tmp_path / "tr.csv")
    pd.DataFrame({"s1": ["x", "y"], "s2": ["u", "v"], "score": [1.0, 4.0]}).to_csv(tmp_path / "va.csv")
    dm = TableDataModule(
        train=str(tmp_path / "tr.csv"),
        val=str(tmp_path / "va.csv"),
        inputs=["a", "b"],
        eval_inputs=["s1", "s2"],
        target=train_target,
        eval_target="score",
        batch_size=2,
    )
    proc = TextProcessor(byte_tokenizer(), 16)
    dm.set_processors({c: proc for c in ("a", "b", "s1", "s2")})
    dm.setup("fit")
    assert sorted(next(iter(dm.train_dataloader())).targets) == sorted(
        [train_target] if isinstance(train_target, str) else train_target
    )
    val = next(iter(dm.val_dataloader()))
    assert list(val.targets) == val_targets and val.targets[val_targets[0]].tolist() == [1.0, 4.0]


def test_eval_meta_replaces_meta_in_val_and_test(tmp_path):
    pd.DataFrame({"anchor": ["a1", "a2"], "positive": ["p1", "p2"]}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"sentence1": ["s", "t"], "sentence2": ["u", "v"], "score": [1.0, 2.0]}).to_csv(
        tmp_path / "val.csv", index=False
    )
    common = dict(train=str(tmp_path / "train.csv"), val=str(tmp_path / "val.csv"), inputs=["anchor", "positive"])
    common.update(eval_inputs=["sentence1", "sentence2"], eval_target="score", meta=["anchor", "positive"])
    dm = TableDataModule(**common, eval_meta=[])
    assert dm.load_split("train").meta == {"anchor": ["a1", "a2"], "positive": ["p1", "p2"]}
    assert dm.load_split("val").meta == {}
    with pytest.raises(KeyError, match="missing column.s. .anchor"):  # without eval_meta: val needs them
        TableDataModule(**common).load_split("val")
