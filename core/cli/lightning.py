"""The Lightning subcommands (``fit``/``validate``/``test``/``predict``) through LightningCLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

__all__ = [
    "FitGuard",
    "alias_lightning_paths",
    "NoTrainingBatches",
    "check_config_file",
    "config_paths",
    "describe_exception",
    "fit_lock",
    "lightning_cli",
    "pop_flag",
    "reduce_parse_error",
    "resolve_config_args",
    "yaml_location",
    "yaml_syntax_error",
]

#: ``polymodal predict`` refuses to run without this flag when no weights were loaded.
ALLOW_RANDOM_FLAG = "--allow-random-weights"


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


# ----------------------------------------------------------------------------- error reduction
def config_paths(args: list[str]) -> list[Path]:
    """The YAML files named by ``--config`` / ``-c`` in ``args``, in order."""
    out = []
    for i, a in enumerate(args):
        if a in ("--config", "-c") and i + 1 < len(args):
            out.append(Path(args[i + 1]))
        elif a.startswith("--config="):
            out.append(Path(a.split("=", 1)[1]))
    return [p for p in out if p.is_file()]


def yaml_location(token: str, configs: list[Path]) -> str:
    """``"FILE line N"`` of the last config line where ``token`` is a key or a value, or ``""``."""
    if not token:
        return ""
    key = re.compile(rf"^\s*-?\s*{re.escape(token)}\s*:")
    value = re.compile(rf":\s*['\"]?[\w.]*{re.escape(token)}['\"]?\s*(#.*)?$")
    found = ""
    for path in configs:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for n, line in enumerate(lines, 1):
            if key.search(line) or value.search(line):
                found = f"{path} line {n}"
                break
    return found


def _known_class_names(base_hint: str = "") -> list[str]:
    """Short names of the classes a YAML ``class_path`` may name (already-imported polymodal modules)."""
    import inspect

    base = None
    m = re.search(r"<class '([\w.]+)'>", base_hint)
    if m and m.group(1) != "NoneType":
        mod, _, name = m.group(1).rpartition(".")
        base = getattr(sys.modules.get(mod), name, None)
    names = set()
    for mod_name, module in list(sys.modules.items()):
        if module is None or not (mod_name.startswith("polymodal") or mod_name.startswith("torch.optim")):
            continue
        for attr, obj in list(vars(module).items()):
            if attr.startswith("_") or not inspect.isclass(obj):
                continue
            if base is None or (isinstance(base, type) and issubclass(obj, base)):
                names.add(attr)
    return sorted(names)


def _init_arg_names(class_path: str) -> list[str]:
    import importlib
    import inspect

    mod, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(mod), name)
        return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]
    except Exception:  # noqa: BLE001 - suggestions are best effort
        return []


_STRUCTURAL = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Given value",
    "- Expected a <class 'NoneType'>",
    "Problem with given class_path",
    "Parser key",
)


def yaml_syntax_error(configs: list[Path]) -> str:
    """``"FILE line L, column C: YAML syntax error: ..."`` for the first config that does not parse."""
    import yaml

    for path in configs:
        try:
            yaml.safe_load(path.read_text(errors="replace"))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            context = f" ({exc.context})" if exc.context else ""
            return f"{path}{where}: YAML syntax error: {exc.problem}{context}"
        except (yaml.YAMLError, OSError) as exc:
            return f"{path}: cannot read the config: {str(exc).splitlines()[0]}"
    return ""


def reduce_parse_error(message: str, configs: list[Path]) -> str:
    """Turn a jsonargparse error (often dozens of nested lines) into one line: the failing key, what
    was wrong, the config file and line it came from, and a "did you mean" where one is close.
    """
    from polymodal.cli import suggest

    if syntax := yaml_syntax_error(configs):
        return syntax
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    keys = re.findall(r'Parser key "([^"]+)"', message)
    classes = re.findall(r"Problem with given class_path '([^']+)'", message)
    subtypes = [ln for ln in lines if ln.startswith("Subtypes:")]
    leaves = [ln.lstrip("- ") for ln in lines if not ln.lstrip("- ").startswith(_STRUCTURAL)]
    leaf = leaves[0] if leaves else (lines[0] if lines else "")
    token, hint = "", ""
    if m := re.search(r"Expected a dot import path string: ([\w.]+)", leaf):
        token = m.group(1)
        hint = suggest(token, _known_class_names(subtypes[-1] if subtypes else ""))
        leaf = f"unknown class {token!r}"
    elif m := re.search(r"Option '([\w.]+)' is not accepted", leaf):
        token = m.group(1)
        hint = suggest(token, _init_arg_names(classes[-1])) if classes else ""
        keys.append(token)
    elif m := re.search(r"does not accept option '([\w.]+)'", leaf):
        token = m.group(1)
        group, _, opt = token.rpartition(".")
        if group == "trainer":
            import inspect

            import pytorch_lightning as pl

            hint = suggest(opt, [p for p in inspect.signature(pl.Trainer.__init__).parameters if p != "self"])
            hint = hint.replace("'", "'trainer.", 1) if hint else ""
        token = opt or token
        leaf = f"unknown option {m.group(1)!r}"
    elif keys:
        token = keys[-1]
    where = yaml_location(token, configs)
    key = ".".join(keys)
    cls = f" ({classes[-1].rsplit('.', 1)[-1]})" if classes else ""
    head = f"{key}{cls}: " if key else ""
    return f"{head}{leaf}{hint}" + (f"  [{where}]" if where else "")


def run_script(main: Callable[[list[str] | None], Any], prog: str, argv: list[str] | None = None) -> None:
    """Run a recipe's ``python -m`` command: bad input exits with one line ``<prog>: error: ...`` (the innermost
    cause, as :func:`describe_exception` words it); ``POLYMODAL_TRACEBACK=1`` re-raises for the traceback."""
    try:
        main(argv)
    except (ValueError, KeyError, FileNotFoundError, ImportError, OSError) as exc:
        if os.environ.get("POLYMODAL_TRACEBACK"):
            raise
        sys.exit(f"{prog}: error: {describe_exception(exc, [])}")


def describe_exception(exc: BaseException, configs: list[Path]) -> str:
    """One line for an exception raised while building or running a config: the innermost cause,
    the class being built when jsonargparse wrapped it, and where that class is named in the YAML.
    """
    root = exc
    seen = {id(root)}
    while (nxt := root.__cause__ or root.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        root = nxt
    text = str(exc)
    building = re.search(r"class_path='([\w.]+)'", text)
    message = str(root.args[0]) if isinstance(root, KeyError) and root.args else str(root)
    message = message.strip().splitlines()[0] if message.strip() else type(root).__name__
    if building and root is not exc:
        short = building.group(1).rsplit(".", 1)[-1]
        where = yaml_location(short, configs)
        return f"building {short}: {type(root).__name__}: {message}" + (f"  [{where}]" if where else "")
    return f"{type(root).__name__}: {message}" if root is not exc or not isinstance(exc, OSError) else message


def pop_flag(args: list[str], flag: str) -> tuple[list[str], bool]:
    """``args`` without ``flag`` (also spelled with underscores), and whether it was there."""
    spellings = {flag, flag.replace("-", "_").replace("__", "--", 1)}
    kept = [a for a in args if a not in spellings]
    return kept, len(kept) != len(args)


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

    text = os.fspath(path)
    p = Path(text) if len(text) < 4096 and "\n" not in text else None
    if p is not None and not p.is_file():
        return
    if p is None:  # YAML text given inline (e.g. a config rewritten by alias_lightning_paths)
        p, size, body = Path("<inline config>"), len(text.encode()), text
    else:
        size = p.stat().st_size
        body = None
    if size > MAX_CONFIG_BYTES:
        raise SystemExit(f"polymodal: error: config {p} is {size:,} bytes; configs are limited to {MAX_CONFIG_BYTES:,}")
    try:
        root = yaml.compose(p.read_text(encoding="utf-8") if body is None else body, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, UnicodeDecodeError):
        return  # the parser reports syntax errors itself
    except RecursionError:
        raise SystemExit(f"polymodal: error: config {p} is nested too deeply to parse") from None
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

    try:
        total = expanded(root) if root is not None else 0
    except RecursionError:
        raise SystemExit(f"polymodal: error: config {p} is nested too deeply to parse") from None
    if total > MAX_CONFIG_VALUES:
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

    if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking or getattr(trainer, "fast_dev_run", False):
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


def _launched_rank() -> int:
    """This process's rank as its launcher set it (Lightning's subprocess launcher sets ``LOCAL_RANK``,
    torchrun ``RANK`` too); 0 for a process nobody launched."""
    for var in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(var, "0")
        if value.strip() not in ("", "0"):
            return int(value) if value.strip().isdigit() else 1
    return 0


@contextlib.contextmanager
def fit_lock(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on an output folder for the length of a fit.

    A second fit on the same folder fails at once in one line naming the holder (pid, host, start
    time, command). The lock is an ``flock`` on ``<folder>/.polymodal-fit.lock``: the kernel drops it
    when the holder exits, even after ``kill -9``, so a stale lock never blocks.
    """
    import fcntl
    import socket

    if _launched_rank() != 0:
        # A DDP worker started by the launcher (or torchrun) of a fit that already holds the lock.
        yield
        return
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


# ----------------------------------------------------------------------------- the CLI class
def _is_tty() -> bool:
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def _cli_classes() -> tuple[type, type]:
    """Our LightningCLI and argument-parser subclasses (built lazily: Lightning imports are heavy)."""
    from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

    class PolymodalParser(LightningArgumentParser):
        """Parse errors are one line (key, problem, file and line, did you mean) instead of a wall."""

        def error(self, message: str, ex: Exception | None = None):  # type: ignore[override]
            from jsonargparse._common import debug_mode_active

            if not self.exit_on_error or debug_mode_active():
                return super().error(message, ex)
            line = reduce_parse_error(message, config_paths(sys.argv[1:] if _CURRENT_ARGS is None else _CURRENT_ARGS))
            sys.stderr.write(f"polymodal: error: {line}\n(polymodal {_subcommand()} --help lists the options)\n")
            raise SystemExit(2)

    class PolymodalCLI(LightningCLI):
        """LightningCLI with polymodal's defaults for every run (see :func:`add_default_callbacks`) and its
        guarantees (docs/security.md): a checkpoint cannot choose code (``--ckpt_path`` is read with
        ``weights_only=True`` and its hyper-parameters may name only already-imported polymodal / torch /
        Lightning classes); ``--ckpt_path`` on a missing, truncated or foreign file, or ``last`` with no
        ``last.ckpt``, is one line; a huge or alias-bomb YAML config is refused before parsing; ``fit`` holds a
        lock on its output folder and runs :class:`FitGuard`."""

        allow_random_weights = False

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

        def before_instantiate_classes(self) -> None:
            super().before_instantiate_classes()
            check_data_present(self.config[self.subcommand] if self.subcommand else self.config)
            trainer = self.config[self.subcommand]["trainer"] if self.subcommand else self.config["trainer"]
            if not _is_tty() and trainer.get("enable_progress_bar") in (None, True):
                trainer["enable_progress_bar"] = False  # ProgressLog prints lines instead of \r-bars

        def instantiate_trainer(self, **kwargs: Any):
            trainer_cfg = self._get(self.config_init, "trainer", default={})
            if "logger" not in kwargs and trainer_cfg.get("logger") in (None, True):
                kwargs["logger"] = default_logger(trainer_cfg.get("default_root_dir"))
            trainer = super().instantiate_trainer(**kwargs)
            add_default_callbacks(trainer, self.subcommand)
            return trainer

        def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[pl.Callback]) -> pl.Trainer:
            if self.subcommand == "fit":
                callbacks = [*callbacks, FitGuard()]
            return super()._instantiate_trainer(config, callbacks)

        def _run_subcommand(self, subcommand: str) -> None:
            if subcommand == "predict":
                check_weights_for_predict(self, self.allow_random_weights)
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
                        f"{', '.join(d for d in dirs if d) or 'no checkpoint folder'}); drop --ckpt_path to train "
                        "from scratch, or name a checkpoint file"
                    ) from None
            return None

    return PolymodalCLI, PolymodalParser


_CURRENT_ARGS: list[str] | None = None


def _subcommand() -> str:
    args = sys.argv[1:] if _CURRENT_ARGS is None else _CURRENT_ARGS
    return next((a for a in args if a in ("fit", "validate", "test", "predict")), "fit")


def check_data_present(config: Any) -> None:
    """Fail in seconds, before any model loads, when a ``data://`` dataset the config names is absent
    (one line with the ``polymodal data fetch`` command) instead of after minutes of model loading."""
    from polymodal.callbacks import _config_strings
    from polymodal.datasets import DATA_SCHEME, resolve_data_uri

    for text in _config_strings(config):
        if text.startswith(DATA_SCHEME):
            resolve_data_uri(text)


def default_logger(root: str | None):
    """Lightning's CSVLogger under the run folder: ``<root>/lightning_logs/version_N/metrics.csv``."""
    from pytorch_lightning.loggers import CSVLogger

    return CSVLogger(save_dir=root or os.getcwd(), name="lightning_logs")


def add_default_callbacks(trainer, subcommand: str | None) -> None:
    """Every run gets ProgressLog; every fit gets MetricsReport (curves.png, summary); predict gets
    PredictionWriter unless the config has a prediction writer. A callback of the same class the
    config already lists is kept, not doubled.
    """
    from pytorch_lightning.callbacks import BasePredictionWriter

    from polymodal.callbacks import MetricsReport, PredictionWriter, ProgressLog

    wanted = [ProgressLog()]
    if subcommand == "fit":
        wanted.append(MetricsReport())
    if subcommand == "predict" and not any(isinstance(c, BasePredictionWriter) for c in trainer.callbacks):
        wanted.append(PredictionWriter())  # a config's own writer (e.g. cg_vlm's CaptionWriter) is kept alone
    present = {type(c) for c in trainer.callbacks}
    for cb in wanted:
        if not any(issubclass(p, type(cb)) for p in present):
            trainer.callbacks.append(cb)


def check_weights_for_predict(cli, allow_random: bool) -> None:
    """Refuse ``predict`` on random weights (see :func:`polymodal.callbacks.weights_source`)."""
    from polymodal.callbacks import weights_source

    ckpt = cli.config[cli.subcommand].get("ckpt_path") if cli.subcommand else None
    source = weights_source(cli.trainer, cli.model, ckpt)
    if source is None and not allow_random:
        raise SystemExit(
            "polymodal predict: refusing to predict with random weights: pass --ckpt_path CKPT, load weights "
            f"(LoadEncoderWeights callback or a pretrained encoder in the config), or add {ALLOW_RANDOM_FLAG}"
        )
    print(f"polymodal: predicting with weights from {source or 'random initialisation (--allow-random-weights)'}")


def lightning_cli(args: list[str] | None) -> Any:
    """Run a Lightning subcommand; ``args=None`` reads ``sys.argv`` (console script)."""
    global _CURRENT_ARGS
    import pytorch_lightning as pl

    import polymodal.callbacks  # noqa: F401 - short names for callbacks
    import polymodal.checkpoint  # noqa: F401 - the default checkpoint IO
    import polymodal.data  # noqa: F401 - short names for data modules
    import polymodal.heads  # noqa: F401 - short names for heads
    import polymodal.losses  # noqa: F401
    import polymodal.metrics.step  # noqa: F401 - short names for metrics
    import polymodal.objectives  # noqa: F401 - short names for objectives
    import polymodal.poolers  # noqa: F401
    import polymodal.presets  # noqa: F401 - ContrastiveSystem, PredictionSystem, ... by short name
    import polymodal.system  # noqa: F401
    import polymodal.vector  # noqa: F401 - FeatureMLP by its short name

    argv = list(sys.argv[1:] if args is None else args)
    argv, allow_random = pop_flag(argv, ALLOW_RANDOM_FLAG)
    if args is None:
        sys.argv[1:] = argv
    _CURRENT_ARGS = None if args is None else argv
    cli_class, parser_class = _cli_classes()
    cli_class.allow_random_weights = allow_random  # type: ignore[attr-defined]
    try:
        return cli_class(
            pl.LightningModule,
            pl.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=None if args is None else argv,
            parser_class=parser_class,
            parser_kwargs={"prog": "polymodal"},
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            trainer_defaults={"plugins": [{"class_path": "polymodal.checkpoint.AtomicCheckpointIO"}]},
        )
    except (ValueError, TypeError, KeyError, FileNotFoundError, ImportError, OSError) as exc:
        if args is not None or os.environ.get("POLYMODAL_TRACEBACK"):
            raise  # tests and POLYMODAL_TRACEBACK=1 see the full exception
        sys.stderr.write(
            f"polymodal {_subcommand()}: error: {describe_exception(exc, config_paths(argv))}\n"
            "(POLYMODAL_TRACEBACK=1 shows the full traceback)\n"
        )
        raise SystemExit(2) from None
    finally:
        _CURRENT_ARGS = None


#: ``lightning.pytorch.X`` (the unified ``lightning`` package) where a class path starts.
_UNIFIED = re.compile(r"(?<![\w.])lightning\.pytorch\.")


def alias_lightning_paths(args: list[str]) -> list[str]:
    """Accept ``lightning.pytorch.*`` class paths next to ``pytorch_lightning.*`` ones.

    The ``lightning`` package ships the same classes as ``pytorch_lightning`` under another module
    tree; a Trainer of one rejects callbacks, loggers and modules of the other. So whether or not
    ``lightning`` is installed, every ``lightning.pytorch.`` prefix in ``--config`` files and in
    command-line values is rewritten to ``pytorch_lightning.`` before parsing: the objects built are
    always the ``pytorch_lightning`` ones that polymodal's Trainer uses. A rewritten config file is
    passed on as YAML text (the file itself is never modified).
    """
    out = list(args)
    for i, a in enumerate(out):
        if a == "--config" and i + 1 < len(out) and Path(out[i + 1]).is_file():
            text = Path(out[i + 1]).read_text()
            if _UNIFIED.search(text):
                out[i + 1] = _UNIFIED.sub("pytorch_lightning.", text)
        elif a.startswith("--config=") and Path(a.split("=", 1)[1]).is_file():
            text = Path(a.split("=", 1)[1]).read_text()
            if _UNIFIED.search(text):
                out[i] = "--config=" + _UNIFIED.sub("pytorch_lightning.", text)
        elif i == 0 or out[i - 1] != "--config":
            out[i] = _UNIFIED.sub("pytorch_lightning.", a)
    return out
