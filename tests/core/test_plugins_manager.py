"""Plugin discovery: built-ins through entry points, third-party plugins, and broken plugins."""

from __future__ import annotations

import warnings

import pytest

from polymodal import plugins_manager as pmod
from tests.plugin_fixtures import activate, forget_modules, make_dist


@pytest.fixture(autouse=True)
def _fresh_plugins():
    pmod.reset_plugins()
    yield
    pmod.reset_plugins()
    forget_modules(("pm_fake_",))


GOOD = """
from polymodal.hookspecs import hookimpl
from polymodal.modality import Modality
polymodal_api_version = 1
@hookimpl
def register_modalities(register):
    register(Modality(name="{modality}", description="fake"))
"""


def test_builtin_text_plugin_loads_through_entry_point():
    plugins = pmod.load_plugins()
    assert plugins["text"].status == "loaded"
    assert plugins["text"].distribution == "polymodal"
    assert "text" in pmod.modalities()
    assert "minilm-l6" in pmod.get_modality("text").pretrained


def test_load_plugins_runs_once_and_import_has_no_side_effects():
    import polymodal

    assert pmod._state.pm is None  # importing polymodal loaded nothing
    first = polymodal.load_plugins()
    assert polymodal.load_plugins() is first


def test_unknown_modality_error_lists_registered_names():
    with pytest.raises(KeyError, match="unknown modality 'sound'.*registered: .*text"):
        pmod.get_modality("sound")


def test_third_party_plugin_is_discovered(tmp_path, monkeypatch):
    site = make_dist(
        tmp_path,
        "pm-fake-good",
        {"fakegood": "pm_fake_good"},
        {"pm_fake_good": GOOD.format(modality="fakemod")},
        version="2.3.4",
    )
    activate(monkeypatch, site)
    plugins = pmod.load_plugins(force=True)
    info = plugins["fakegood"]
    assert (info.status, info.distribution, info.version, info.modalities) == (
        "loaded",
        "pm-fake-good",
        "2.3.4",
        ["fakemod"],
    )
    assert pmod.get_modality("fakemod").description == "fake"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("raise RuntimeError('boom at import')", "error at import: RuntimeError: boom at import"),
        ("import pm_fake_not_installed_dependency", "ModuleNotFoundError"),
        (
            "from polymodal.hookspecs import hookimpl\n@hookimpl\ndef register_modalities(register):\n"
            "    raise ValueError('boom at registration')\n",
            "error in register_modalities: ValueError: boom at registration",
        ),
        (
            "from polymodal.hookspecs import hookimpl\n@hookimpl\ndef register_modalitys(register):\n    pass\n",
            "invalid hook implementation",
        ),
        ("polymodal_api_version = 99\n", "built for plugin API 99"),
        (
            "from polymodal.hookspecs import hookimpl\n@hookimpl\ndef register_modalities(register):\n"
            "    register('not a modality')\n",
            "register\\(\\) takes a polymodal.Modality",
        ),
    ],
    ids=[
        "raises-at-import",
        "missing-dependency",
        "raises-at-registration",
        "misspelled-hook",
        "api-version",
        "wrong-type",
    ],
)
def test_broken_plugin_is_reported_and_host_keeps_working(tmp_path, monkeypatch, source, expected):
    site = make_dist(tmp_path, "pm-fake-bad", {"fakebad": "pm_fake_bad"}, {"pm_fake_bad": source})
    activate(monkeypatch, site)
    with pytest.warns(pmod.PluginWarning, match="plugin 'fakebad'"):
        plugins = pmod.load_plugins(force=True)
    assert plugins["fakebad"].status == "failed"
    assert __import__("re").search(expected, plugins["fakebad"].error)
    assert plugins["text"].status == "loaded"  # the host still works
    assert "text" in pmod.modalities()


def test_missing_dependency_names_the_install_command_for_builtins(monkeypatch):
    info = pmod.PluginInfo("image", "polymodal", "0.1.0")
    assert pmod._install_hint(info) == "pip install 'polymodal[image]'"


def test_duplicate_modality_name_warns_naming_both_and_keeps_first(tmp_path, monkeypatch):
    site = make_dist(tmp_path, "pm-fake-dup", {"fakedup": "pm_fake_dup"}, {"pm_fake_dup": GOOD.format(modality="text")})
    activate(monkeypatch, site)
    with pytest.warns(
        pmod.PluginWarning, match="modality 'text' registered by plugin 'fakedup'.*already registered by plugin 'text'"
    ):
        plugins = pmod.load_plugins(force=True)
    assert plugins["fakedup"].modalities == []
    from polymodal.plugins.text import TextEncoder

    assert pmod.get_modality("text").encoders[0] is TextEncoder  # the built-in one, not the duplicate


def test_env_var_restricts_third_party_plugins(tmp_path, monkeypatch):
    site = make_dist(tmp_path, "pm-fake-env", {"fakeenv": "pm_fake_env"}, {"pm_fake_env": GOOD.format(modality="envm")})
    activate(monkeypatch, site)
    monkeypatch.setenv("POLYMODAL_PLUGINS", "")
    plugins = pmod.load_plugins(force=True)
    assert plugins["fakeenv"].status == "disabled"
    assert plugins["text"].status == "loaded"
    assert "envm" not in pmod.modalities()
    monkeypatch.setenv("POLYMODAL_PLUGINS", "fakeenv")
    assert pmod.load_plugins(force=True)["fakeenv"].status == "loaded"


def test_cli_plugins_lists_status(capsys, tmp_path, monkeypatch):
    from polymodal.cli import main

    site = make_dist(tmp_path, "pm-fake-cli", {"fakecli": "pm_fake_cli"}, {"pm_fake_cli": "raise ImportError('nope')"})
    activate(monkeypatch, site)
    pmod.reset_plugins()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    text_line = next(line for line in out.splitlines() if line.startswith("text "))
    assert "polymodal" in text_line and text_line.rstrip().endswith("loaded")
    assert "fakecli" in out and "failed: ImportError: nope" in out
    assert "minilm-l6" in out
