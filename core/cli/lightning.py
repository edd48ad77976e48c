"""The Lightning subcommands (``fit``/``validate``/``test``/``predict``) through LightningCLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningCLI

__all__ = [
    "FitGuard",
    "NoTrainingBatches",
    "PolymodalCLI",
    "check_config_file",
    "fit_lock",
    "lightning_cli",
    "resolve_config_args",
]


def resolve_config_args(args: list[str]) -> list[str]:
    """Let ``--config recipes/<name>/<cfg>.yaml`` find the installed recipe outside a checkout."""
    from polymodal.recipes import recipe_root

    out = list(args)
    for i, a in enumerate(out):
        value = None
        if a == "--config" and i + 1 < len(out):
            value, idx = out[i + 1], i + 1
        elif a.startswith("--config="):
            value, idx = a.split("=", 1)[1], i
        if value is None or Path(value).exists():
            continue
        rel = Path(value)
        if rel.parts and rel.parts[0] == "recipes":
            candidate = recipe_root().joinpath(*rel.parts[1:])
            if candidate.exists():
                out[idx] = str(candidate) if idx != i else f"--config={candidate}"
            else:
                raise SystemExit(f"polymodal: config not found: {value} (see `polymodal recipes`)")
        else:
            raise SystemExit(f"polymodal: config not found: {value}")
    return out


# ------------------------------------------------------------------------------ config bounds
#: A config larger than this, or whose YAML aliases expand to more values, is refused before parsing.
MAX_CONFIG_BYTES = 8 << 20
MAX_CONFIG_VALUES = 200_000


def check_config_file(path: str | os.PathLike[str]) -> None:
    """Refuse a YAML config that is huge or expands through aliases (the "billion laughs" shape).

    The node graph is composed (aliases stay shared, nothing is expanded) and its expanded size is
    counted with memoisation, so a file of a few hundred bytes that would expand to 10^9 values is
    measured in microseconds.

    Raises:
        SystemExit: one line naming the file and the bound.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        return
    size = p.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise SystemExit(f"polymodal: error: config {p} is {size:,} bytes; configs are limited to {MAX_CONFIG_BYTES:,}")
    try:
        root = yaml.compose(p.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, UnicodeDecodeError):
        return  # the parser reports syntax errors itself
    memo: dict[int, int] = {}

    def expanded(node: Any) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        memo[key] = MAX_CONFIG_VALUES + 1  # a cycle counts as unbounded
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(expanded(k) + expanded(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(expanded(v) for v in node.value)
        else:
            total = 1
        memo[key] = min(total, 10 * MAX_CONFIG_VALUES)
        return memo[key]

    if root is not None and expanded(root) > MAX_CONFIG_VALUES:
        raise SystemExit(
            f"polymodal: error: config {p} expands to more than {MAX_CONFIG_VALUES:,} values through YAML "
            "aliases (a 'billion laughs' file?); refusing to parse it"
        )


def _config_paths(args: list[str]) -> list[str]:
    out = []
    for i, a in enumerate(args):
        if a == "--config" and i + 1 < len(args):
            out.append(args[i + 1])
        elif a.startswith("--config="):
            out.append(a.split("=", 1)[1])
    return out


# ---------------------------------------------------------------------------------- fit guards
class NoTrainingBatches(ValueError):
    """A fit whose training data yields no batch (it would export an untrained model)."""


def _batch_size(trainer: pl.Trainer) -> int | None:
    for owner in (getattr(trainer, "datamodule", None), getattr(trainer, "train_dataloader", None)):
        value = getattr(owner, "batch_size", None)
        if isinstance(value, int):
            return value
    return None


def _train_rows(trainer: pl.Trainer) -> int | None:
    loader = getattr(trainer, "train_dataloader", None)
    with contextlib.suppress(TypeError, AttributeError, NotImplementedError):
        return len(loader.dataset)  # type: ignore[union-attr, arg-type]
    return None


def refuse_empty_training(trainer: pl.Trainer) -> None:
    """Raise :class:`NoTrainingBatches` (one line) when the fit has zero training batches."""
    if trainer.limit_train_batches == 0 or trainer.num_training_batches == 0:
        rows, size = _train_rows(trainer), _batch_size(trainer)
        detail = ", ".join(
            x
            for x in (
                f"{rows} training rows" if rows is not None else "",
                f"batch_size {size}" if size is not None else "",
            )
            if x
        )
        raise NoTrainingBatches(
            f"the training data yields 0 batches ({detail or 'empty training set'}; limit_train_batches="
            f"{trainer.limit_train_batches}); nothing would be trained, so nothing is exported"
        )


def _keep_last_latest(callback: Any) -> None:
    """Make a ``ModelCheckpoint(save_last=True)`` rewrite ``last.ckpt`` whenever it is not the latest step.

    Lightning 2.6 refreshes ``last.ckpt`` at a validation only when a top-k checkpoint was saved at the
    same step, so with ``monitor`` set, ``last.ckpt`` can hold a step from half an epoch back.
    """
    if getattr(callback, "_polymodal_latest_last", False) or not callback.save_last:
        return
    callback._polymodal_latest_last = True
    save_last = callback._save_last_checkpoint

    def recorded(trainer: pl.Trainer, monitor_candidates: dict[str, Any]) -> None:
        save_last(trainer, monitor_candidates)
        callback._polymodal_last_step = trainer.global_step

    callback._save_last_checkpoint = recorded
    for hook in ("on_validation_end", "on_train_epoch_end"):
        original = getattr(callback, hook)

        def wrapped(trainer: pl.Trainer, pl_module: pl.LightningModule, _original: Any = original) -> None:
            _original(trainer, pl_module)
            save_last_if_stale(callback, trainer)

        setattr(callback, hook, wrapped)


def save_last_if_stale(callback: Any, trainer: pl.Trainer) -> None:
    """Write ``callback``'s ``last.ckpt`` unless it already holds ``trainer.global_step``."""
    from pytorch_lightning.trainer.states import TrainerFn

    if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking or trainer.fast_dev_run:
        return
    if trainer.global_step == 0 or getattr(callback, "_polymodal_last_step", None) == trainer.global_step:
        return
    saved_step = callback._last_global_step_saved  # keep Lightning's own top-k bookkeeping untouched
    callback._save_last_checkpoint(trainer, callback._monitor_candidates(trainer))
    callback._last_global_step_saved = saved_step
    callback._polymodal_last_step = trainer.global_step


class FitGuard(pl.Callback):
    """Added to every ``polymodal fit``: refuses a fit with zero training batches, keeps
    ``last.ckpt`` at the latest step, and warns when a resumed fit uses another batch size."""

    def __init__(self) -> None:
        self.resumed_batch_size: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from pytorch_lightning.callbacks import ModelCheckpoint

        if stage == "fit":
            for cb in trainer.checkpoint_callbacks:
                if isinstance(cb, ModelCheckpoint):
                    _keep_last_latest(cb)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.fit_loop.setup_data()  # builds the train loader now (Lightning reuses it) to count batches
        refuse_empty_training(trainer)
        size = _batch_size(trainer)
        if self.resumed_batch_size is not None and size is not None and size != self.resumed_batch_size:
            warnings.warn(
                f"resuming a fit saved with batch_size {self.resumed_batch_size} at batch_size {size}: steps, "
                "schedules and the data order no longer line up with the interrupted run",
                UserWarning,
                stacklevel=2,
            )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from pytorch_lightning.callbacks import ModelCheckpoint

        for cb in trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint) and cb.save_last:
                save_last_if_stale(cb, trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"batch_size": self._size}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        value = state_dict.get("batch_size")
        self.resumed_batch_size = value if isinstance(value, int) else None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, i: int) -> None:
        self._size = _batch_size(trainer)

    _size: int | None = None


# ------------------------------------------------------------------------------------ the lock
LOCK_NAME = ".polymodal-fit.lock"


@contextlib.contextmanager
def fit_lock(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on an output folder for the length of a fit.

    A second fit on the same folder fails at once in one line naming the holder (pid, host, start
    time, command). The lock is an ``flock`` on ``<folder>/.polymodal-fit.lock``: the kernel drops it
    when the holder exits, even after ``kill -9``, so a stale lock never blocks.
    """
    import fcntl
    import socket

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            try:
                info = json.loads(holder)
                who = (
                    f"pid {info.get('pid')} on {info.get('host')}, started "
                    f"{info.get('started')}: {info.get('command', '')[:120]}"
                )
            except (json.JSONDecodeError, AttributeError):
                who = "another process"
            raise SystemExit(
                f"polymodal fit: error: output folder {folder} is in use by another fit ({who}); "
                "wait for it or choose another --trainer.default_root_dir"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


_NO_LAST = r'.*ckpt_path="last"\) is set, but there is no last checkpoint'


class PolymodalCLI(LightningCLI):
    """LightningCLI with polymodal's guarantees (see docs/security.md):

    * a checkpoint cannot choose code: ``--ckpt_path`` is read with ``weights_only=True`` and its
      hyper-parameters may name only already-imported polymodal / torch / Lightning classes;
    * ``--ckpt_path`` on a missing, truncated or foreign file, or ``last`` with no ``last.ckpt``, is one line;
    * a huge or alias-bomb YAML config is refused before parsing;
    * ``fit`` holds a lock on its output folder and runs :class:`FitGuard`.
    """

    def parse_arguments(self, parser: Any, args: Any) -> None:
        for path in _config_paths(list(sys.argv[1:] if args is None else args)):
            check_config_file(path)
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        from polymodal.checkpoint import check_class_paths, read_checkpoint

        sub = self.config.get("subcommand")
        ckpt_path = self.config[sub].get("ckpt_path") if sub else None
        if ckpt_path and ckpt_path not in ("last", "best", "hpc") and "://" not in str(ckpt_path):
            try:
                ckpt = read_checkpoint(ckpt_path)
                check_class_paths(ckpt.get("hyper_parameters") or {}, str(ckpt_path))
            except (FileNotFoundError, ValueError) as exc:
                raise SystemExit(f"polymodal {sub}: error: --ckpt_path {exc}") from None
            del ckpt
        super()._parse_ckpt_path()

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[pl.Callback]) -> pl.Trainer:
        if self.subcommand == "fit":
            callbacks = [*callbacks, FitGuard()]
        return super()._instantiate_trainer(config, callbacks)

    def _run_subcommand(self, subcommand: str) -> None:
        if subcommand != "fit":
            return super()._run_subcommand(subcommand)
        with fit_lock(self.trainer.default_root_dir), warnings.catch_warnings():
            warnings.filterwarnings("error", message=_NO_LAST)
            try:
                super()._run_subcommand(subcommand)
            except NoTrainingBatches as exc:
                raise SystemExit(f"polymodal fit: error: {exc}") from None
            except UserWarning as exc:
                if not re.match(_NO_LAST, str(exc)):
                    raise
                dirs = [str(getattr(cb, "dirpath", "")) for cb in self.trainer.checkpoint_callbacks]
                raise SystemExit(
                    f"polymodal fit: error: --ckpt_path last, but there is no last.ckpt (looked in "
                    f"{', '.join(d for d in dirs if d) or 'no checkpoint folder'}); drop --ckpt_path to train from "
                    "scratch, or name a checkpoint file"
                ) from None
        return None


def lightning_cli(args: list[str] | None) -> Any:
    import polymodal.callbacks  # noqa: F401 - short names for callbacks
    import polymodal.checkpoint  # noqa: F401 - the default checkpoint IO
    import polymodal.data  # noqa: F401 - short names for data modules
    import polymodal.losses  # noqa: F401
    import polymodal.poolers  # noqa: F401
    import polymodal.systems  # noqa: F401
    import polymodal.vector  # noqa: F401 - FeatureMLP by its short name

    return PolymodalCLI(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        parser_kwargs={"prog": "polymodal"},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        trainer_defaults={"plugins": [{"class_path": "polymodal.checkpoint.AtomicCheckpointIO"}]},
    )
