"""``polymodal data`` and ``data://`` paths: fetch from a local HTTP server on 127.0.0.1 (never any
other address), resume with HTTP Range, checksum failure, corrupt and unsafe archives, the
one-line error for a missing dataset, the shared folder as an already-present source."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from polymodal import datasets
from polymodal.cli import main
from polymodal.datasets import Dataset, DatasetMissing
from polymodal.io import resolve_path

TOY_FILES = {"a.txt": b"alpha\n" * 100, "sub/b.tsv": b"x\ty\n1\t2\n", "images/1.bin": b"\x00\x01" * 50}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree(files: dict[str, bytes], prefix: str) -> str:
    lines = "".join(f"{_sha(d)}  {p[len(prefix) :]}\n" for p, d in sorted(files.items()) if p.startswith(prefix))
    return hashlib.sha256(lines.encode()).hexdigest()


def _archive(files: dict[str, bytes], top: str | None = "toy", extra: list[tarfile.TarInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo(f"{top}/{rel}" if top else rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"evil") if info.isfile() else None)
    return buf.getvalue()


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """Register a small dataset 'toy' (hashes of TOY_FILES) and point the cache into tmp_path."""
    ds = Dataset(
        name="toy",
        title="test dataset",
        source="https://example.invalid/toy",
        licence="CC0",
        bytes=sum(len(d) for d in TOY_FILES.values()),
        files={
            "a.txt": _sha(TOY_FILES["a.txt"]),
            "sub/b.tsv": _sha(TOY_FILES["sub/b.tsv"]),
            "images/": _tree(TOY_FILES, "images/"),
        },
    )
    monkeypatch.setitem(datasets.DATASETS, "toy", ds)
    monkeypatch.setenv("POLYMODAL_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("POLYMODAL_SHARED_DATA", str(tmp_path / "no-shared"))
    return ds


@dataclass
class Server:
    url: str
    blobs: dict[str, bytes]
    cut_after: int | None = None  # close the first response after this many bytes
    ranges: list[str] = field(default_factory=list)


@pytest.fixture
def server():
    state = Server(url="", blobs={})

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):  # noqa: N802 - http.server API
            data = state.blobs.get(self.path.lstrip("/"))
            if data is None:
                self.send_error(404)
                return
            start = 0
            if rng := self.headers.get("Range"):
                state.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0])
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cut_after is not None:
                self.wfile.write(body[: state.cut_after])
                state.cut_after = None
                self.close_connection = True
                return
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_missing_dataset_is_one_line_with_the_fetch_command(toy):
    with pytest.raises(DatasetMissing) as info:
        resolve_path("data://toy/a.txt", what="data file")
    message = str(info.value)
    assert "\n" not in message and "polymodal data fetch toy" in message


def test_unknown_dataset_suggests_the_close_name(toy):
    with pytest.raises(KeyError, match="unknown dataset 'tyo'.*did you mean 'toy'"):
        resolve_path("data://tyo/a.txt")


def test_fetch_installs_verified_files_and_data_paths_resolve(toy, server, tmp_path):
    server.blobs["toy.tar.gz"] = _archive(TOY_FILES)
    assert main(["data", "fetch", "toy", "--from", server.url]) == 0
    path = resolve_path("data://toy/sub/b.tsv")
    assert path == tmp_path / "cache" / "toy" / "sub" / "b.tsv" and path.read_bytes() == TOY_FILES["sub/b.tsv"]
    assert main(["data", "verify", "toy"]) == 0
    assert not (tmp_path / "cache" / ".partial" / "toy.tar.gz.part").exists()


def test_fetch_resumes_with_http_range(toy, server, tmp_path):
    blob = _archive(TOY_FILES)
    server.blobs["toy.tar.gz"] = blob
    server.cut_after = len(blob) // 2
    with pytest.raises(OSError, match="connection closed at .* fetch again to resume"):
        datasets.fetch("toy", server.url)
    part = tmp_path / "cache" / ".partial" / "toy.tar.gz.part"
    assert part.stat().st_size == len(blob) // 2
    datasets.fetch("toy", server.url)
    assert server.ranges == [f"bytes={len(blob) // 2}-"]
    assert datasets.verify("toy", tmp_path / "cache" / "toy") == []


def _evil_link() -> tarfile.TarInfo:
    info = tarfile.TarInfo("toy/link")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return info


def _evil_parent() -> tarfile.TarInfo:
    info = tarfile.TarInfo("../escaped.txt")
    info.size = 4
    return info


BAD_ARCHIVES = [
    ("checksum", lambda: _archive({**TOY_FILES, "a.txt": b"tampered\n"}), ValueError, "failed verification.*a.txt"),
    ("missing-file", lambda: _archive({k: v for k, v in TOY_FILES.items() if k != "sub/b.tsv"}), ValueError, "b.tsv"),
    ("corrupt", lambda: b"\x1f\x8b" + bytes(range(256)) * 8, ValueError, "corrupt or unsafe archive"),
    ("truncated-gzip", lambda: _archive(TOY_FILES)[:-40], ValueError, "corrupt or unsafe archive"),
    ("symlink", lambda: _archive(TOY_FILES, extra=[_evil_link()]), ValueError, "corrupt or unsafe archive"),
    ("parent-dir", lambda: _archive(TOY_FILES, extra=[_evil_parent()]), ValueError, "corrupt or unsafe archive"),
]


@pytest.mark.parametrize("make,raises,match", [c[1:] for c in BAD_ARCHIVES], ids=[c[0] for c in BAD_ARCHIVES])
def test_bad_archives_install_nothing(toy, server, tmp_path, make, raises, match):
    server.blobs["toy.tar.gz"] = make()
    with pytest.raises(raises, match=match):
        datasets.fetch("toy", server.url)
    assert not (tmp_path / "cache" / "toy").exists()
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "cache" / "escaped.txt").exists()
    assert not (tmp_path / "cache" / ".partial" / "toy.tar.gz.part").exists(), "a bad download is not kept"


def test_fetch_without_a_source_says_how(toy, capsys):
    with pytest.raises(ValueError, match="no download source: pass --from URL"):
        main(["data", "fetch", "toy"])


def test_shared_folder_registers_as_present(toy, tmp_path, monkeypatch, capsys):
    shared = tmp_path / "shared"
    for rel, data in TOY_FILES.items():
        (shared / "toy" / rel).parent.mkdir(parents=True, exist_ok=True)
        (shared / "toy" / rel).write_bytes(data)
    monkeypatch.setenv("POLYMODAL_SHARED_DATA", str(shared))
    assert datasets.locate("toy") == ("shared", shared / "toy")
    assert resolve_path("data://toy/a.txt") == shared / "toy" / "a.txt"
    assert main(["data", "fetch", "toy"]) == 0  # already present: no source needed, nothing downloaded
    assert "already present and verified" in capsys.readouterr().out


@pytest.mark.slow
def test_registry_hashes_match_the_shared_copies(shared_data):
    for name in datasets.DATASETS:
        if (shared_data / name).is_dir():
            assert datasets.verify(name, shared_data / name) == [], name


@pytest.mark.slow
def test_real_dataset_fetch_then_recipe_path_resolves(shared_data, server, tmp_path, monkeypatch):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(shared_data / "stsb", arcname="stsb")
    server.blobs["stsb.tar.gz"] = buf.getvalue()
    monkeypatch.setenv("POLYMODAL_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("POLYMODAL_SHARED_DATA", str(tmp_path / "none"))
    with pytest.raises(DatasetMissing):
        resolve_path("data://stsb/sts-dev.csv.gz")
    assert main(["data", "fetch", "stsb", "--from", server.url]) == 0
    assert resolve_path("data://stsb/sts-dev.csv.gz").read_bytes() == (shared_data / "stsb/sts-dev.csv.gz").read_bytes()


def test_every_recipe_data_uri_names_a_registered_dataset(repo):
    import re

    for cfg in Path(repo, "recipes").rglob("*.yaml"):
        for name in re.findall(r"data://([\w-]+)", cfg.read_text()):
            assert name in datasets.DATASETS, f"{cfg}: data://{name} is not registered in polymodal.datasets"


def test_fit_with_a_missing_dataset_fails_before_building_the_model(toy, monkeypatch):
    import functools

    import polymodal.plugins.text as text_plugin

    built = []
    original = text_plugin.TextEncoder.__init__

    @functools.wraps(original)  # keeps the signature jsonargparse reads
    def spy(self, *args, **kwargs):
        built.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(text_plugin.TextEncoder, "__init__", spy)
    with pytest.raises(DatasetMissing, match="run `polymodal data fetch toy`"):
        main(["fit", "--config", "recipes/sbert/tiny.yaml", "--data.init_args.train=data://toy/a.txt"])
    assert not built, "the dataset check runs before any class is instantiated"
