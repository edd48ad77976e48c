"""polymodal.data.read_choi: the one reader of Choi JSON lines (recipes and the bench use it)."""

from __future__ import annotations

import gzip
import json

import pytest

from polymodal.data import ChoiRecord, read_choi


def test_records_keep_line_path_group_and_segments(tmp_path):
    path = tmp_path / "choi.jsonl.gz"
    docs = [{"path": "1/3-5/0.ref", "group": "1", "segments": [["a.", "b."], []]}, {"segments": [["c."]]}]
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps(docs[0]) + "\n\n" + json.dumps(docs[1]) + "\n")
    assert list(read_choi(path)) == [
        ChoiRecord(1, "1/3-5/0.ref", "1", [["a.", "b."], []]),
        ChoiRecord(3, "line 3", "", [["c."]]),  # blank line skipped, line numbers kept
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"segments": [["a"]]}\n{not json\n', "line 2: not JSON"),
        ('["a", "b"]\n', "line 1, field 'segments': expected a list of lists of sentences"),
        ('{"segments": [["a", 3]]}\n', "line 1, field 'segments'"),
        ('{"segments": "abc"}\n', "line 1, field 'segments'"),
    ],
)
def test_bad_lines_are_one_error_naming_file_and_line(tmp_path, content, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError) as err:
        list(read_choi(path))
    assert str(err.value).startswith(str(path)) and expected in str(err.value) and "\n" not in str(err.value)
