"""Bad token-task inputs through the data module: one line naming the file and the line or row."""

from __future__ import annotations

import json

import pytest

from polymodal.cli import main


def _fit(tmp_path, train: str, extra: list[str] | None = None):
    return main(
        [
            "fit",
            "--config",
            "recipes/ner_tagger/tiny.yaml",
            f"--trainer.default_root_dir={tmp_path}",
            "--data.init_args.sources.train.init_args.paths=[" + train + "]",
            *(extra or []),
        ]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("EU\tB-organisation\nrejects\n", r"bad\.txt:2: expected 'token<TAB>tag'"),
        ("EU\tO\nx\tI-person\n", r"bad\.txt:2: tag 'I-person' follows 'O'"),
        ("EU\tB-\n", r"bad\.txt:1: tag 'B-' is not BIO"),
        ("EU\tO\n\tO\n", r"bad\.txt:2: empty token"),
        ("EU\tB-alien\n", r"bad\.txt:1: unknown entity type 'alien'"),
        ("\n\n", r"bad\.txt:2: no sentence in the file"),
    ],
)
def test_malformed_bio_files_and_unknown_labels_name_file_and_line(tmp_path, capsys, text, expected):
    bad = tmp_path / "bad.txt"
    bad.write_text(text)
    types = "--data.init_args.sources.train.init_args.types=[location, misc, organisation, person]"
    with pytest.raises(ValueError, match=expected) as info:
        _fit(tmp_path, str(bad), [types])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [([], "row 2, column 'tokens': empty sentence"), (["a", ""], "row 2, column 'tokens': word 2 is ''")],
)
def test_empty_sentences_in_a_table_name_file_and_row(tmp_path, tokens, expected):
    table = tmp_path / "rows.jsonl"
    rows = [{"tokens": ["EU", "rejects"], "tags": ["B-organisation", "O"], "domain": "conll2003"}]
    rows.append({"tokens": tokens, "tags": ["O"] * len(tokens), "domain": "conll2003"})
    table.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ValueError) as info:
        main(
            [
                "fit",
                "--config",
                "recipes/ner_tagger/tiny.yaml",
                f"--trainer.default_root_dir={tmp_path}",
                "--data.init_args.sources.train="
                + json.dumps({"class_path": "polymodal.data.sources.Table", "init_args": {"path": str(table)}}),
            ]
        )
    err = str(info.value)
    assert "rows.jsonl" in err and expected in err and "\n" not in err, err


def test_unknown_label_in_test_data_under_the_loss_is_one_line(tmp_path):
    cli = _fit(tmp_path, "package://ner_tagger/data/conll_train.txt.gz", ["--trainer.max_epochs=1"])
    assert cli.trainer.global_step > 0
    with pytest.raises(ValueError) as info:
        main(
            [
                "test",
                "--config",
                "recipes/ner_tagger/tiny.yaml",
                f"--trainer.default_root_dir={tmp_path}",
                "--model.init_args.objectives.tags.init_args.stages=[train, val, test]",
            ]
        )
    err = str(info.value)
    assert "tag 'B-algorithm' is not one of the head's labels" in err and "row 41" in err and "\n" not in err
