"""Training throughput: a polymodal fit vs a hand-written PyTorch loop, same model/data/batch.

Both sides train the bundled all-MiniLM-L6-v2 with CoSENT on the embedded STS-B sample
(600 pairs, batch 16, AdamW 2e-5 with the same warm-up/decay schedule) for one epoch, in this
process, alternating A/B/A/B; the median steps/s of each side is compared.

    python benchmarks/train_step.py [--model minilm-l6|tiny] [--repeats 2] [--threads 2]

Prints ``ratio: X`` = polymodal steps/s / hand-written steps/s (goal >= 0.95).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import pytorch_lightning as pl
import torch

from polymodal.data import Collator, TableDataModule
from polymodal.losses import CoSENTLoss
from polymodal.plugins.text import TextEncoder
from polymodal.poolers import MeanPooler
from polymodal.systems import ContrastiveSystem

TRAIN = "package://sbert/data/stsb_train_sample.tsv.gz"
TINY = {
    "model_type": "bert",
    "vocab_size": 261,
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 512,
    "max_position_embeddings": 256,
}


def make_encoder(name: str) -> TextEncoder:
    torch.manual_seed(0)
    if name == "tiny":
        return TextEncoder(model=dict(TINY), tokenizer="bytes", max_length=256)
    return TextEncoder(model=name)


def datamodule(batch_size: int) -> TableDataModule:
    return TableDataModule(train=TRAIN, inputs=["sentence1", "sentence2"], target="score", batch_size=batch_size)


class StepTimer(pl.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.start


def run_polymodal(model_name: str, batch_size: int) -> float:
    system = ContrastiveSystem(
        encoder=make_encoder(model_name),
        pooler=MeanPooler(),
        loss=CoSENTLoss(),
        optimizer=lambda p: torch.optim.AdamW(p, lr=2e-5, weight_decay=0.01),
    )
    timer = StepTimer()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    dm = datamodule(batch_size)
    trainer.fit(system, datamodule=dm)
    return trainer.global_step / timer.seconds


def run_hand_written(model_name: str, batch_size: int) -> float:
    encoder = make_encoder(model_name)
    pooler, loss_fn = MeanPooler(), CoSENTLoss()
    dm = datamodule(batch_size)
    dm.set_processors([encoder.processor, encoder.processor])
    dataset = dm.load_split("train")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, collate_fn=Collator([encoder.processor] * 2)
    )
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=2e-5, weight_decay=0.01)
    total = len(loader)
    warmup = int(total * 0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (warmup + 1) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    encoder.train()
    start = time.perf_counter()
    steps = 0
    for batch in loader:
        a = pooler(encoder(batch["inputs"][0]))
        b = pooler(encoder(batch["inputs"][1]))
        loss = loss_fn([a, b], batch["target"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        steps += 1
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm-l6", help="minilm-l6 (bundled) or tiny (random, no weights)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    ours, hand = [], []
    for r in range(args.repeats):
        ours.append(run_polymodal(args.model, args.batch_size))
        hand.append(run_hand_written(args.model, args.batch_size))
        print(f"repeat {r}: polymodal {ours[-1]:.2f} steps/s, hand-written {hand[-1]:.2f} steps/s", flush=True)
    o, h = statistics.median(ours), statistics.median(hand)
    print(f"model={args.model} batch={args.batch_size} threads={args.threads}")
    print(f"polymodal fit: {o:.3f} steps/s; hand-written loop: {h:.3f} steps/s")
    print(f"ratio: {o / h:.3f}")


if __name__ == "__main__":
    main()
