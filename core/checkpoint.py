"""Checkpoints that survive a kill at any moment, and loading that never executes code."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from polymodal.io import atomic_path

__all__ = [
    "SAFE_CLASS_PREFIXES",
    "AtomicCheckpointIO",
    "SafeCheckpointLoading",
    "check_class_paths",
    "read_checkpoint",
]

#: Packages whose classes a checkpoint's hyper-parameters may name (``class_path``), provided the
#: class is already imported by the running program: reading a checkpoint never imports a module.
SAFE_CLASS_PREFIXES = (
    "polymodal.",
    "torch.nn.",
    "torch.optim.",
    "pytorch_lightning.",
    "lightning.",
    "lightning_fabric.",
    "torchmetrics.",
)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes to a temporary file beside the target, fsyncs it,
    and renames it into place (then fsyncs the folder), so a ``kill -9`` or power loss leaves
    the previous checkpoint intact. Loading uses ``torch.load(weights_only=True)``: a checkpoint
    can only hold tensors and plain containers and cannot run code.

    Remote (fsspec URL) paths fall back to Lightning's own saving.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        text = os.fspath(path)
        if "://" in text and not text.startswith("file://"):
            return super().save_checkpoint(checkpoint, path, storage_options)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)  # serialise fully before touching the disk
        with atomic_path(Path(text.removeprefix("file://"))) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(buffer.getbuffer())
        return None

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> Any:
        text = os.fspath(path)
        if not Path(text).exists() and "://" not in text:
            raise FileNotFoundError(f"checkpoint not found: {text}")
        try:
            return super().load_checkpoint(
                path, map_location=map_location, weights_only=True if weights_only is None else weights_only
            )
        except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise RuntimeError(
                f"{text}: corrupt, truncated or unsafe checkpoint ({str(exc).splitlines()[0]})"
            ) from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def read_checkpoint(path: str | os.PathLike[str], *, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a Lightning checkpoint with ``weights_only=True``; every fault is one line naming the file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: truncated or corrupt, unsafe (holds objects beyond tensors and plain containers),
            or not a Lightning checkpoint (no ``state_dict``).
    """
    text = os.fspath(path)
    p = Path(text)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {text}" + (" (it is a folder)" if p.is_dir() else ""))
    try:
        ckpt = torch.load(text, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _weights_only_reason(str(exc))
        if "GLOBAL" in detail or "global" in detail:
            raise ValueError(
                f"{text}: refused: the checkpoint holds objects other than tensors and plain containers "
                f"(loading it would run code: {detail})"
            ) from None
        raise ValueError(f"{text}: corrupt or truncated checkpoint (not a torch file: {detail})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{text}: corrupt or truncated checkpoint ({_short(exc)})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        kind = type(ckpt).__name__ if not isinstance(ckpt, dict) else "dict without 'state_dict'"
        raise ValueError(f"{text}: not a Lightning checkpoint (found a {kind}; expected one written by polymodal fit)")
    return ckpt


def _weights_only_reason(message: str) -> str:
    """The informative line of torch's multi-paragraph ``weights_only`` error."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or line.startswith(("Unsupported", "Trying to load", "Unpickling")):
            return line[:200]
    return (lines[-2] if len(lines) > 1 else lines[0] if lines else "unreadable")[:200]


def check_class_paths(obj: Any, where: str, key: str = "hyper_parameters") -> None:
    """Refuse class names in checkpoint hyper-parameters that would make a loader import code.

    Every ``class_path`` / ``_class_path`` / ``_instantiator`` value must name a class (or the
    Lightning instantiator) that is **already imported** and lives in :data:`SAFE_CLASS_PREFIXES`
    (or is registered in :mod:`polymodal.registry`). Nothing is imported here.

    Raises:
        ValueError: one line naming the file, the key path and the class name.
    """
    import sys

    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{key}.{k}"
            if k in ("class_path", "_class_path", "_instantiator"):
                if not isinstance(v, str):
                    raise ValueError(f"{where}: {path} must be a class name string, got {v!r:.60}")
                module, _, name = v.rpartition(".")
                loaded = sys.modules.get(module)
                found = getattr(loaded, name, None) if loaded is not None else None
                allowed = v.startswith(SAFE_CLASS_PREFIXES) or _registered(v)
                if k == "_instantiator":
                    ok = loaded is not None and callable(found) and v.startswith(("pytorch_lightning.", "lightning."))
                else:
                    ok = allowed and isinstance(found, type)
                if not ok:
                    raise ValueError(
                        f"{where}: {path} names {v!r:.120}, which is not an already-imported polymodal, torch.nn/optim "
                        "or Lightning class; a checkpoint may not choose code to import"
                    )
            else:
                check_class_paths(v, where, path)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_class_paths(v, where, f"{key}[{i}]")


def _registered(name: str) -> bool:
    from polymodal import registry

    with registry._lock:
        return any(name in table for table in registry._classes.values())


class SafeCheckpointLoading:
    """Mixin for LightningModules: ``load_from_checkpoint`` that cannot be made to import code.

    The checkpoint is read with ``weights_only=True`` (one-line errors for truncated, foreign or
    unsafe files) and its hyper-parameters are checked with :func:`check_class_paths` before
    Lightning builds the module from them. Put it first in the bases:
    ``class System(SafeCheckpointLoading, pl.LightningModule)``.
    """

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, map_location: Any = None, **kwargs: Any) -> Any:
        where = os.fspath(checkpoint_path)
        ckpt = read_checkpoint(where)
        check_class_paths(ckpt.get("hyper_parameters") or {}, where)
        kwargs.setdefault("weights_only", True)
        return super().load_from_checkpoint(checkpoint_path, map_location=map_location, **kwargs)  # type: ignore[misc]
