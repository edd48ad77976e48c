"""pyproject lists every package folder, and the import name maps onto the top-level folders."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def _packages() -> list[str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_every_package_folder_is_listed():
    roots = {"core": "polymodal", "plugins": "polymodal.plugins", "recipes": "polymodal.recipes"}
    found = set()
    for folder, name in roots.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    missing = sorted(found - set(_packages()))
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_builtin_plugins_have_entry_points_and_extras():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    eps = meta["entry-points"]["polymodal"]
    for name, target in eps.items():
        assert target == f"polymodal.plugins.{name}"
        assert name in meta["optional-dependencies"], f"plugin {name} has no extra of the same name"
    assert {"text", "image", "pixel", "glyph", "timeseries", "pretrained", "all", "test"} <= set(
        meta["optional-dependencies"]
    )
    core = " ".join(meta["dependencies"])
    assert "torch==2.14.1" in core and "transformers" not in core and "pandas" in core  # pandas: the core data path


def test_importing_polymodal_is_light():
    import subprocess
    import sys

    code = "import sys, polymodal; print('transformers' in sys.modules, 'pytorch_lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_wheel_builds_quietly_and_carries_every_recipe_file(tmp_path):
    """No setuptools 'Package would be ignored' warnings (data folders are not packages), and the
    wheel still holds every shipped YAML and recipe data file."""
    import subprocess
    import sys
    import zipfile

    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "would be ignored" not in proc.stdout + proc.stderr
    wheel = next(tmp_path.glob("polymodal-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = (REPO / "recipes").rglob("*")
    expected = [p for p in shipped if p.is_file() and (p.suffix == ".yaml" or p.parent.name == "data")]
    assert expected
    for p in expected:
        assert "polymodal/recipes/" + p.relative_to(REPO / "recipes").as_posix() in names, p
