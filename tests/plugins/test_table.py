"""Table plugin: typed columns read against a schema, one-line errors, serialised and field-by-field views."""

from __future__ import annotations

import pytest

from polymodal.plugins.table import TableSchema, field_values, normalise_value, read_rows, serialize

SCHEMA = TableSchema({"name": "name", "born": "date", "number": "int", "code": "code"}, key="id")


def _table(tmp_path, text):
    path = tmp_path / "people.tsv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_rows_are_normalised_per_type(tmp_path):
    path = _table(
        tmp_path, "id\tname\tborn\tnumber\tcode\textra\nr1\t  Ann  LEE \t19651013\t007\tAB-1\tx\nr2\t\t\t\t\t\n"
    )
    rows = read_rows(path, SCHEMA)
    assert list(rows.columns) == ["id", "name", "born", "number", "code"]
    assert rows.iloc[0].to_dict() == {
        "id": "r1",
        "name": "ann lee",
        "born": "1965-10-13",
        "number": "7",
        "code": "AB-1",
    }
    assert serialize(rows.iloc[0], SCHEMA) == "name: ann lee; born: 1965-10-13; number: 7; code: AB-1"
    assert serialize(rows.iloc[1], SCHEMA) == ""  # missing values are left out
    assert field_values(rows.iloc[0], SCHEMA) == [
        ("name", "ann"),
        ("name", "lee"),
        ("born", "1965"),
        ("born", "october"),
        ("born", "13"),
        ("number", "7"),
        ("code", "ab-1"),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("id\tname\tborn\tnumber\nr1\ta\t19650101\t1\n", "line 1 (header): missing column(s) ['code']"),
        ("name\tborn\tnumber\tcode\na\t19650101\t1\tc\n", "line 1 (header): missing column(s) ['id']"),
        ("id\tname\tborn\tnumber\tcode\nr1\ta\t19650231\t1\tc\n", "line 2, column 'born': '19650231' is not a date"),
        (
            "id\tname\tborn\tnumber\tcode\nr1\ta\t19650101\t1\tc\nr2\tb\t19650101\tx1\tc\n",
            "line 3, column 'number': 'x1' is not an integer",
        ),
        ("id\tname\tborn\tnumber\tcode\nr1\ta\t\t1\tc\nr1\tb\t\t2\tc\n", "line 3, column 'id': duplicate key 'r1'"),
        ("id\tname\tborn\tnumber\tcode\n", "line 2: the table has no rows"),
    ],
)
def test_bad_tables_give_one_line(tmp_path, text, message):
    path = _table(tmp_path, text)
    with pytest.raises(ValueError) as err:
        read_rows(path, SCHEMA)
    assert str(err.value).startswith(path) and message in str(err.value) and "\n" not in str(err.value)


def test_bad_values_can_be_blanked_and_counted(tmp_path):
    path = _table(tmp_path, "id\tname\tborn\tnumber\tcode\nr1\ta\t19650231\t1\tc\n")
    rows = read_rows(path, SCHEMA, skip_bad_values=True)
    assert rows.iloc[0]["born"] == "" and rows.attrs["bad_values"] == 1


def test_schema_and_value_checks():
    with pytest.raises(ValueError, match="unknown column type"):
        TableSchema({"a": "money"})  # type: ignore[dict-item]
    assert normalise_value("1965-10-13", "date") == "1965-10-13"
    assert normalise_value(float("nan"), "text") == ""
    assert normalise_value("3.50", "float") == "3.5"
