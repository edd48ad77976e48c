"""Checkpoints and configs: a .ckpt cannot choose code, faults are one line, fits are guarded.

Payloads only write a marker file under the test's temp dir; each test asserts it is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from polymodal.checkpoint import check_class_paths, read_checkpoint
from polymodal.cli import main

TINY = "recipes/sbert/tiny.yaml"


def _fit(tmp_path: Path, *extra: str):
    return main(["fit", "--config", TINY, f"--trainer.default_root_dir={tmp_path}", *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One tiny fit with checkpoints; returns its last.ckpt."""
    root = tmp_path_factory.mktemp("fit")
    _fit(root, "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.save_last=true")
    last = next(root.rglob("last.ckpt"))
    return last


def _payload_module(folder: Path, marker: Path, name: str = "payload") -> None:
    (folder / f"{name}.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "import pytorch_lightning as pl\n"
        "class Evil(pl.LightningModule):\n"
        f"    def __init__(self, *a, **k):\n        super().__init__(); open({str(marker)!r}, 'w').write('ran')\n"
    )


def _poison(ckpt_path: Path, out: Path, change) -> Path:
    ckpt = torch.load(ckpt_path, weights_only=True)
    change(ckpt.setdefault("hyper_parameters", {}))
    torch.save(ckpt, out)
    return out


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda h: h.__setitem__("_class_path", "payload.Evil"), "_class_path"),
        (lambda h: h.__setitem__("encoder", {"class_path": "payload.Evil", "init_args": {}}), "encoder.class_path"),
        (lambda h: h.__setitem__("loss", {"class_path": "subprocess.Popen", "init_args": {"args": ["true"]}}), "loss"),
        (lambda h: h.__setitem__("_instantiator", "payload.instantiate"), "_instantiator"),
        (lambda h: h.__setitem__("extra", [{"class_path": "os.system"}]), "extra[0].class_path"),
    ],
)
def test_ckpt_hyper_parameters_cannot_choose_code(trained, tmp_path, monkeypatch, change, key):
    marker = tmp_path / "marker"
    _payload_module(tmp_path, marker)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    bad = _poison(trained, tmp_path / "bad.ckpt", change)
    before = set(sys.modules)
    with pytest.raises(SystemExit) as err:
        _fit(tmp_path / "run", f"--ckpt_path={bad}")
    msg = str(err.value)
    assert "\n" not in msg and key in msg and "may not choose code" in msg and str(bad) in msg
    assert not marker.exists() and "payload" not in set(sys.modules) - before
    # the Python API refuses the same files
    from polymodal.system import System as Safe  # System has SafeCheckpointLoading first in its bases

    with pytest.raises(ValueError, match="may not choose code"):
        Safe.load_from_checkpoint(bad)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p, t: t.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "corrupt or truncated checkpoint"),
        (lambda p, t: t.write_bytes(b"not a checkpoint at all"), "corrupt or truncated checkpoint"),
        (lambda p, t: torch.save({"weights": torch.zeros(2)}, t), "not a Lightning checkpoint"),
        (lambda p, t: torch.save([1, 2, 3], t), "not a Lightning checkpoint (found a list"),
        (lambda p, t: t.write_bytes(b""), "corrupt or truncated checkpoint"),
        (lambda p, t: None, "checkpoint not found"),
    ],
)
def test_bad_ckpt_path_is_one_line(trained, tmp_path, make, expected):
    target = tmp_path / "x.ckpt"
    make(trained, target)
    with pytest.raises(SystemExit) as err:
        _fit(tmp_path / "run", f"--ckpt_path={target}")
    msg = str(err.value)
    assert "\n" not in msg and expected in msg and "--ckpt_path" in msg, msg


def test_pickle_payload_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "marker"

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": {}, "hyper_parameters": {"x": Boom()}}, tmp_path / "evil.ckpt")
    with pytest.raises(ValueError, match="holds objects other than tensors"):
        read_checkpoint(tmp_path / "evil.ckpt")
    with pytest.raises(SystemExit, match="holds objects other than tensors"):
        _fit(tmp_path / "run", f"--ckpt_path={tmp_path / 'evil.ckpt'}")
    assert not marker.exists()


def test_check_class_paths_allows_imported_library_classes():
    import polymodal.system  # noqa: F401  (the class a checkpoint may name must already be imported)

    check_class_paths({"_class_path": "polymodal.system.System", "opt": {"class_path": "torch.optim.AdamW"}}, "x.ckpt")
    with pytest.raises(ValueError, match="not an already-imported"):  # a preset is a factory function, not a class
        check_class_paths({"_class_path": "polymodal.presets.ContrastiveSystem"}, "x.ckpt")
    with pytest.raises(ValueError, match="hyper_parameters.opt.class_path"):
        check_class_paths({"opt": {"class_path": "torch.optim.NoSuchThing"}}, "x.ckpt")


def test_ckpt_path_last_without_a_checkpoint_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as err:
        _fit(tmp_path, "--ckpt_path=last")
    msg = str(err.value)
    assert "\n" not in msg and "no last.ckpt" in msg
    assert not (tmp_path / "model").exists()  # nothing trained from scratch and exported


def test_last_ckpt_always_holds_the_latest_step(tmp_path):
    """monitor=step, mode=min: only the first validation is 'best', so Lightning alone would leave
    last.ckpt at that step; it must hold the final one."""
    _fit(
        tmp_path,
        "--trainer.limit_train_batches=6",
        "--trainer.val_check_interval=2",
        "--trainer.callbacks+=ModelCheckpoint",
        "--trainer.callbacks.monitor=step",
        "--trainer.callbacks.mode=min",
        "--trainer.callbacks.save_last=true",
    )
    last = next(tmp_path.rglob("last.ckpt"))
    ckpt = torch.load(last, weights_only=True)
    best = [p for p in last.parent.glob("*.ckpt") if p.name != "last.ckpt"]
    assert ckpt["global_step"] == 6
    assert len(best) == 1 and torch.load(best[0], weights_only=True)["global_step"] == 2


@pytest.mark.parametrize(
    "extra",
    [
        ["--trainer.limit_train_batches=0"],
        ["--data.init_args.batch_size=100000", "--data.init_args.drop_last=true"],
    ],
)
def test_fit_with_zero_training_batches_is_refused(tmp_path, extra):
    try:
        _fit(tmp_path, *extra)
    except SystemExit as err:
        msg = str(err)
        assert "\n" not in msg and "0 batches" in msg
    else:
        pytest.fail("a fit with zero training batches exited normally")
    assert not (tmp_path / "model").exists()


def test_resume_with_another_batch_size_warns(trained, tmp_path):
    with pytest.warns(UserWarning, match="saved with batch_size 16 at batch_size 8"):
        _fit(tmp_path, f"--ckpt_path={trained}", "--data.init_args.batch_size=8", "--trainer.max_epochs=2")


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                for p, c in zip("abcdefg", "bcdefgh")
            ),
            "expands to more than",
        ),
        ("l: &l [*l]\n", None),  # a recursive alias: the YAML parser reports it; must not hang
    ],
)
def test_alias_bomb_configs_are_refused_quickly(tmp_path, yaml_text, expected):
    import time

    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(yaml_text)
    start = time.perf_counter()
    with pytest.raises(SystemExit) as err:
        main(["fit", "--config", str(cfg), f"--trainer.default_root_dir={tmp_path}"])
    assert time.perf_counter() - start < 30
    if expected:
        assert expected in str(err.value) and "\n" not in str(err.value)


def test_alias_bomb_is_refused_when_the_config_is_rewritten_inline(tmp_path):
    """A config naming lightning.pytorch.* classes is passed on as YAML text: still bounded."""
    cfg = tmp_path / "bomb.yaml"
    rows = "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefg", "bcdefgh")
    )
    cfg.write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\na: &a [x, x]\n" + rows
    )
    with pytest.raises(SystemExit, match="expands to more than"):
        main(["fit", "--config", str(cfg)])


def test_deeply_nested_config_is_one_line(tmp_path):
    cfg = tmp_path / "deep.yaml"
    cfg.write_text("a: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(SystemExit) as err:
        main(["fit", "--config", str(cfg)])
    assert "\n" not in str(err.value)


def test_huge_config_is_refused(tmp_path):
    cfg = tmp_path / "huge.yaml"
    cfg.write_text("# " + "x" * (9 << 20) + "\n")
    with pytest.raises(SystemExit, match="configs are limited to"):
        main(["fit", "--config", str(cfg)])


def test_two_fits_on_one_output_folder_the_second_fails_naming_the_holder(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from polymodal.cli.lightning import fit_lock
                with fit_lock({str(tmp_path)!r}):
                    print("locked", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        cwd=repo,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SystemExit) as err:
            _fit(tmp_path)
        msg = str(err.value)
        assert "\n" not in msg and "in use by another fit" in msg and f"pid {holder.pid}" in msg
    finally:
        holder.kill()
        holder.wait()
    _fit(tmp_path)  # the kernel released the lock of the killed holder
    assert (tmp_path / "model" / "polymodal.json").is_file()


@pytest.mark.parametrize("env", [{"LOCAL_RANK": "1"}, {"RANK": "3", "LOCAL_RANK": "0"}])
def test_a_launched_ddp_worker_does_not_take_the_lock_its_rank_zero_holds(tmp_path, monkeypatch, env):
    from polymodal.cli.lightning import fit_lock

    with fit_lock(tmp_path):  # rank 0 holds it ...
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        with fit_lock(tmp_path):  # ... and the worker the launcher started runs beside it
            pass
        monkeypatch.delenv("RANK", raising=False)
        monkeypatch.setenv("LOCAL_RANK", "0")
        with pytest.raises(SystemExit, match="in use by another fit"):
            with fit_lock(tmp_path):
                pass
