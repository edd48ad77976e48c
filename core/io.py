"""File helpers: atomic writes, package resources, clear path errors."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

__all__ = ["PACKAGE_SCHEME", "atomic_dir", "atomic_path", "ensure_writable_dir", "inside", "resolve_path"]

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


# ----------------------------------------------------------------------------------- whole folders
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_LIBC: object | None = None
_STALE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]+\.(?:new|old)$")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directory entries (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(None, use_errno=True)
            _LIBC.renameat2  # noqa: B018 - glibc >= 2.28
        except (OSError, AttributeError):
            _LIBC = False
    if not _LIBC:
        return False
    rc = _LIBC.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)  # type: ignore[attr-defined]
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # the file system cannot swap: fall back to two renames
    raise OSError(err, os.strerror(err), str(b))


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every OS can fsync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_siblings(target: Path) -> None:
    """Delete ``.<name>.<pid>.*.new|old`` folders left by writers that were killed (their pid is gone)."""
    with contextlib.suppress(OSError):
        for entry in target.parent.iterdir():
            m = _STALE.match(entry.name)
            if m and m.group("name") == target.name and not _pid_alive(int(m.group("pid"))):
                _remove(entry)


@contextlib.contextmanager
def atomic_dir(
    target: str | os.PathLike[str], *, what: str = "folder", replaceable: Sequence[str] = ()
) -> Iterator[Path]:
    """Yield a new, empty sibling folder; on success it replaces ``target`` as a whole.

    Everything is written into a fresh folder beside ``target`` (so no write can follow a link
    that an old folder holds), fsynced, then swapped in with one atomic ``renameat2`` exchange
    (Linux; elsewhere two renames a few microseconds apart). A ``kill -9``, a full disk or an
    exception at any moment leaves ``target`` as it was or as the new folder, never a mix; the
    old folder is deleted after the swap. A symlink at ``target`` is replaced, never written through.

    Args:
        target: the folder to write.
        what: name used in errors (``"model folder"``).
        replaceable: an existing non-empty ``target`` is replaced only if it holds one of these
            files (e.g. ``polymodal.json``); anything else is refused rather than deleted.

    Raises:
        FileExistsError: ``target`` exists and is not a folder this call may replace (one line).
        OSError: the write failed (one line naming ``target``); the old folder is untouched.
    """
    target = Path(target).expanduser()
    parent = ensure_writable_dir(target.parent, what=f"parent of the {what}")
    if target.is_symlink() or target.exists():
        if not target.is_dir():
            raise FileExistsError(f"{what} {target} exists and is not a folder; refusing to replace it")
        if replaceable and any(target.iterdir()) and not any((target / m).is_file() for m in replaceable):
            raise FileExistsError(
                f"{what} {target} exists, is not empty and holds none of {', '.join(replaceable)}; "
                "refusing to replace it (choose a new or empty folder)"
            )
    _remove_stale_siblings(target)
    tag = f".{target.name}.{os.getpid()}."
    tmp = Path(tempfile.mkdtemp(prefix=tag, suffix=".new", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; look like any other folder
    try:
        yield tmp
        _fsync_tree(tmp)
        if not (target.is_symlink() or target.exists()):
            os.rename(tmp, target)
        elif _exchange(tmp, target):
            old = tmp.with_name(tmp.name[: -len(".new")] + ".old")
            os.rename(tmp, old)  # ``tmp`` now names the old folder
            _fsync_dir(parent)
            _remove(old)
        else:  # pragma: no cover - file systems without RENAME_EXCHANGE
            old = tmp.with_name(tmp.name[: -len(".new")] + ".old")
            os.rename(target, old)
            os.rename(tmp, target)
            _remove(old)
        _fsync_dir(parent)
    except OSError as exc:
        _remove(tmp)
        raise OSError(
            exc.errno, f"could not write {what} {target}: {exc.strerror or exc}; the previous one is unchanged"
        ) from None
    except BaseException:
        _remove(tmp)
        raise


def inside(root: str | os.PathLike[str], relative: str, *, what: str = "path", where: str = "") -> Path:
    """``root / relative`` after checking that ``relative`` stays inside ``root`` (no ``..``, not absolute).

    The check is on the name as written (a file's say-so), so folders that use symlinks for their
    own files (the Hugging Face cache) keep working; ``..`` or an absolute path is refused.

    Raises:
        ValueError: one line naming ``where``, ``what`` and the offending path.
    """
    if not isinstance(relative, str):
        raise ValueError(f"{where or root}: {what} must be a string, got {relative!r:.60}")
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (relative[1:3] == ":/" or relative[1:3] == ":\\"):
        raise ValueError(f"{where or root}: {what} {relative!r:.120} points outside the folder; refusing to follow it")
    return Path(root) / pure
