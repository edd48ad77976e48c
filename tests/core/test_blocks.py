"""polymodal.data.blocks: token blocks, epoch offsets, resumable order, Batch out, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.contracts import Batch
from polymodal.data.blocks import BlockSampler, TextBlocksDataModule, TokenBlocks, load_tokenizer


class Chars:
    """A tokenizer: one id per character."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]


def module(path, **kw) -> TextBlocksDataModule:
    dm = TextBlocksDataModule(str(path), Chars(), **kw)
    dm.setup("fit")
    return dm


def test_blocks_batches_and_split(tmp_path):
    text = "".join(chr(65 + i % 26) for i in range(1000))
    (tmp_path / "c.txt").write_text(text)
    dm = module(tmp_path / "c.txt", block_size=10, batch_size=4, val_fraction=0.2, max_val_blocks=3)
    assert len(dm.ids["train"]) == 800 and dm.ids["val"].tolist() == [ord(c) for c in text[800:]]
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, Batch) and list(batch.inputs) == ["text"]
    ids = batch.inputs["text"]["input_ids"]
    assert ids.shape == (4, 10) and ids.dtype == torch.int64
    assert torch.equal(batch.inputs["text"]["labels"], ids) and batch.inputs["text"]["attention_mask"].all()
    for row in ids.tolist():  # each block is a contiguous piece of the training text
        assert "".join(map(chr, row)) in text[:800]
    val = [b.inputs["text"]["input_ids"] for b in dm.val_dataloader()]
    assert sum(len(v) for v in val) == 3 and "".join(map(chr, val[0][0].tolist())) == text[800:810]


def test_epochs_shift_and_resume_replays(tmp_path):
    ids = np.arange(1000)
    blocks = TokenBlocks(ids, 16)
    a = BlockSampler(blocks, shuffle=True, shift=True, seed=3)
    b = BlockSampler(blocks, shuffle=True, shift=True, seed=3)
    first = list(a)
    assert sorted(first) == [i * 16 for i in range(len(blocks))]  # epoch 0: offset 0, every block once
    a.set_epoch(1)
    second = list(a)
    assert {s % 16 for s in second} == {37 % 16} and len(second) == len(first)  # another cut
    b.set_epoch(1)
    assert list(b) == second  # a resumed run (fresh sampler, same epoch) draws the same blocks in the same order
    assert all(len(blocks[s]) == 16 for s in second)  # every offset fits
    assert list(BlockSampler(blocks)) == [i * 16 for i in range(len(blocks))]  # validation: in order


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        (b"too short", {"block_size": 16}, "the train part has 8 tokens, fewer than 2 blocks of 16"),
        (b"\xff\xfe bad", {}, "not UTF-8 text"),
        (b"x" * 100, {"val_fraction": 1.5}, "val_fraction must be in"),
        (b"x" * 100, {"block_size": 1}, "block_size must be >= 2"),
    ],
)
def test_bad_inputs_are_one_line(tmp_path, content, kwargs, message):
    (tmp_path / "c.txt").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        module(tmp_path / "c.txt", **kwargs)


def test_tokenizer_specs(tmp_path):
    tok = load_tokenizer("package://glyph_lm/data/tokenizer.json")
    assert tok.encode("ROMEO:", add_special_tokens=False).ids
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a tokenizer.json"):
        load_tokenizer(str(tmp_path / "bad.json"))
    with pytest.raises(FileNotFoundError):
        load_tokenizer(str(tmp_path / "missing.json"))
    with pytest.raises(TypeError, match="encode"):
        load_tokenizer(42)
