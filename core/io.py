"""File helpers: atomic writes, package resources, clear path errors."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PACKAGE_SCHEME", "atomic_path", "ensure_writable_dir", "resolve_path"]

#: ``package://sbert/data/x.tsv.gz`` names a file shipped inside :mod:`polymodal.recipes`.
PACKAGE_SCHEME = "package://"


def resolve_path(path: str | os.PathLike[str], *, what: str = "file", must_exist: bool = True) -> Path:
    """Turn a user path (or ``package://...``) into a :class:`Path`, checking it exists.

    Raises:
        FileNotFoundError: one line naming ``what`` and the path.
    """
    text = os.fspath(path)
    if text.startswith("data://"):  # a registered dataset's file: polymodal.datasets
        from polymodal.datasets import resolve_data_uri

        return resolve_data_uri(text, must_exist=must_exist)
    if text.startswith(PACKAGE_SCHEME):
        from importlib.resources import files

        resolved = Path(str(files("polymodal.recipes").joinpath(text[len(PACKAGE_SCHEME) :])))
    else:
        resolved = Path(text).expanduser()
    if must_exist and not resolved.exists():
        raise FileNotFoundError(
            f"{what} not found: {text}" + (f" (resolved to {resolved})" if str(resolved) != text else "")
        )
    return resolved


def ensure_writable_dir(path: str | os.PathLike[str], *, what: str = "output directory") -> Path:
    """Create ``path`` if needed and check it is writable, with a one-line error naming it."""
    p = Path(path).expanduser()
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create {what} {p}: {exc.strerror or exc}") from None
    if not os.access(p, os.W_OK):
        raise PermissionError(f"{what} is not writable: {p}")
    return p


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync it and rename over ``target``.

    A crash at any moment leaves either the old ``target`` or the new one, never a torn file.
    Errors (disk full, permissions) name the target and leave no temporary file behind.
    """
    target = Path(target)
    directory = ensure_writable_dir(target.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result should look like any written file
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        with contextlib.suppress(OSError):  # make the rename durable where the OS allows
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(f"could not write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
