"""Plugins and their extras: a missing extra is ``unavailable`` with the pip install that fixes it
(in ``polymodal plugins`` and at first use), sys.exit at import is reported, slow imports are
named, warnings print once, the API-version hint points the right way."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings

import pytest

import polymodal.plugins_manager as pmod
from tests.plugin_fixtures import activate, forget_modules, make_dist


@pytest.fixture(autouse=True)
def _fresh_plugins():
    yield
    forget_modules(("pm_fake",))
    pmod.reset_plugins()


# One fresh interpreter where the extras' modules are hidden (sys.modules[name] = None makes
# importlib treat them as absent, as in a venv without the extra). It reports what a user sees.
_PROBE = r"""
import io, json, sys, contextlib
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from polymodal.plugins_manager import load_plugins
out = {"status": {p.name: [p.status, p.error] for p in load_plugins().values()}, "first_use": {}}
for plugin, stmt in [
    ("text", "from polymodal.plugins.text import TextEncoder"),
    ("image", "from polymodal.plugins.image import ImageEncoder"),
    ("pixel", "from polymodal.plugins.pixel import PixelEncoder"),
    ("glyph", "from polymodal.plugins.glyph import GlyphEncoder"),
    ("timeseries", "from polymodal.plugins.timeseries import compute_indicators"),
]:
    try:
        exec(stmt)
        out["first_use"][plugin] = "ok"
    except ImportError as exc:
        out["first_use"][plugin] = str(exc)
import polymodal
try:
    polymodal.get_modality("text")
except ImportError as exc:
    out["get_modality"] = str(exc)
from polymodal.cli import main
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    main(["plugins"])
out["cli"] = buf.getvalue()
print("JSON" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def core_only():
    """What a venv with only the core wheel (no extras) shows."""
    hidden = "transformers,tokenizers,PIL,timm,torchvision,scipy,pandas"
    proc = subprocess.run([sys.executable, "-c", _PROBE, hidden], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.split("JSON", 1)[1])


EXTRAS = [
    ("text", "transformers"),
    ("image", "PIL"),
    ("pixel", "PIL"),
    ("glyph", "PIL"),
    ("timeseries", "pandas"),
]


@pytest.mark.parametrize("plugin,module", EXTRAS, ids=[e[0] for e in EXTRAS])
def test_missing_extra_is_unavailable_with_the_install_hint(core_only, plugin, module):
    status, error = core_only["status"][plugin]
    hint = f"pip install 'polymodal[{plugin}]'"
    assert status == "unavailable" and module in error and hint in error
    assert hint in core_only["first_use"][plugin] and "No module named" not in core_only["first_use"][plugin]
    line = next(ln for ln in core_only["cli"].splitlines() if ln.startswith(f"{plugin} "))
    assert f"unavailable: needs {module}" in line and hint in line


def test_get_modality_of_an_unavailable_plugin_gives_the_hint(core_only):
    assert "pip install 'polymodal[text]'" in core_only["get_modality"]


def test_compute_indicators_without_scipy_names_the_extra():
    code = (
        "import sys; sys.modules['scipy'] = None\n"
        "import numpy as np\n"
        "from polymodal.plugins.timeseries.indicators import _lfilter\n"
    )
    code += "try:\n    _lfilter()\nexcept ImportError as e:\n    print(e)\n"
    # the package itself declares scipy, so importing it already gives the hint
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "pip install 'polymodal[timeseries]'" in proc.stdout + proc.stderr
    assert "No module named 'scipy'" not in proc.stdout + proc.stderr


def test_require_extra_checks_without_importing():
    hint = r"the demo plugin needs pm_no_such_mod: pip install 'polymodal\[demo\]'"
    with pytest.raises(pmod.MissingExtra, match=hint):
        pmod.require_extra("demo", ["json", "pm_no_such_mod"], "demo")
    pmod.require_extra("demo", ["json"], "demo")  # present: no error


def test_plugin_calling_sys_exit_at_import_is_reported(tmp_path, monkeypatch):
    source = "import sys\nsys.exit(3)\n"
    site = make_dist(tmp_path, "pm-fake-exit", {"fakeexit": "pm_fake_exit"}, {"pm_fake_exit": source})
    activate(monkeypatch, site)
    with pytest.warns(pmod.PluginWarning, match="plugin 'fakeexit'"):
        plugins = pmod.load_plugins(force=True)
    assert plugins["fakeexit"].status == "failed" and "called sys.exit(3)" in plugins["fakeexit"].error
    assert plugins["text"].status == "loaded"


def test_slow_plugin_import_is_timed_and_named(tmp_path, monkeypatch):
    site = make_dist(
        tmp_path, "pm-fake-slow", {"fakeslow": "pm_fake_slow"}, {"pm_fake_slow": "import time\ntime.sleep(0.3)\n"}
    )
    activate(monkeypatch, site)
    monkeypatch.setenv("POLYMODAL_SLOW_PLUGIN_SECONDS", "0.1")
    with pytest.warns(pmod.PluginWarning, match=r"plugin 'fakeslow' \(pm-fake-slow\) took 0\.[3-9] s to import"):
        plugins = pmod.load_plugins(force=True)
    assert plugins["fakeslow"].import_seconds >= 0.3


def test_plugin_warning_is_printed_once(tmp_path, monkeypatch, caplog):
    source = "raise RuntimeError('x')"
    site = make_dist(tmp_path, "pm-fake-once", {"fakeonce": "pm_fake_once"}, {"pm_fake_once": source})
    activate(monkeypatch, site)
    with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        pmod.load_plugins(force=True)
        pmod.load_plugins()
        pmod._warn("polymodal: plugin 'fakeonce' (pm-fake-once) not loaded: error at import: RuntimeError: x")
    ours = [w for w in seen if issubclass(w.category, pmod.PluginWarning) and "fakeonce" in str(w.message)]
    assert len(ours) == 1
    assert not [r for r in caplog.records if "fakeonce" in r.getMessage()], "logged as well as warned: printed twice"


API_CASES = [
    ("99", "built for plugin API 99.*fix: pip install --upgrade polymodal$"),
    ("0", "built for plugin API 0.*fix: pip install --upgrade pm-fake-api0"),
]


@pytest.mark.parametrize("api,expected", API_CASES, ids=["plugin-newer", "plugin-older"])
def test_api_version_hint_points_the_right_way(tmp_path, monkeypatch, api, expected):
    mod = f"pm_fake_api{api}"
    site = make_dist(tmp_path, f"pm-fake-api{api}", {"fakeapi": mod}, {mod: f"polymodal_api_version = {api}\n"})
    activate(monkeypatch, site)
    with pytest.warns(pmod.PluginWarning):
        plugins = pmod.load_plugins(force=True)
    assert __import__("re").search(expected, plugins["fakeapi"].error)
