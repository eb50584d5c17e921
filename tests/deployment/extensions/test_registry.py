"""Registry: an installed package's entry points, module:Class references, broken extensions listed with their error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from deployment.extensions import ExtensionError, discover, load_extension
from deployment.extensions.registry import import_reference
from tests.deployment.extensions.helpers import EXTENSION_SOURCE, install_package

MISSING_STEP = """
from pydantic import BaseModel
from deployment.extensions import MigrationExtension, Plan

class Half(MigrationExtension):
    name = "half"
    version = "1.0.0"
    Params = BaseModel

    async def validate(self, params, ctx):
        return []

    async def plan(self, params, ctx):
        return Plan(summary="")

    def apply(self, params, ctx, resume, report):
        return None
"""

BAD_VERSION = EXTENSION_SOURCE.format(name="badver", version="1.0")


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A temporary 'installed' distribution with one good and three broken extensions."""
    tag = uuid.uuid4().hex[:6]
    mods = {
        f"good_{tag}": EXTENSION_SOURCE.format(name=f"tagger-{tag}", version="1.2.0"),
        f"importfail_{tag}": "import a_module_that_is_not_installed_anywhere\n",
        f"half_{tag}": MISSING_STEP,
        f"badver_{tag}": BAD_VERSION,
    }
    eps = {
        f"tagger-{tag}": f"good_{tag}:Tagger",
        f"importfail-{tag}": f"importfail_{tag}:Thing",
        f"half-{tag}": f"half_{tag}:Half",
        f"badver-{tag}": f"badver_{tag}:Tagger",
    }
    root = install_package(tmp_path / "site", f"acme_migrations_{tag}", "0.4.0", eps, mods)
    monkeypatch.syspath_prepend(str(root))
    yield tag, root
    for name in mods:
        sys.modules.pop(name, None)


def test_an_installed_package_registers_its_extension_and_broken_ones_do_not_stop_it(installed):
    tag, _ = installed
    found = {i.name: i for i in discover()}
    good = found[f"tagger-{tag}"]
    assert good.error is None and good.version == "1.2.0"
    assert good.source == f"entry point tagger-{tag} (acme_migrations_{tag} 0.4.0)"
    assert found["rekey-sessions"].error is None and found["rekey-sessions"].source == "builtin"
    assert "ModuleNotFoundError: No module named 'a_module_that_is_not_installed_anywhere'" in found[f"importfail-{tag}"].error
    assert "missing step(s): verify, rollback" in found[f"half-{tag}"].error
    assert "step(s) not async def: apply" in found[f"half-{tag}"].error
    assert "version '1.0' is not a semantic version" in found[f"badver-{tag}"].error
    assert load_extension(f"tagger-{tag}").version == "1.2.0"


def test_a_broken_or_unknown_name_is_refused_with_the_reason(installed):
    tag, _ = installed
    with pytest.raises(ExtensionError, match=f"extension 'badver-{tag}' is broken: .*not a semantic version"):
        load_extension(f"badver-{tag}")
    with pytest.raises(ExtensionError, match=r"no extension named 'nope' is registered \(registered: .*rekey-sessions"):
        load_extension("nope")


def test_a_module_class_reference_loads_without_registration(installed):
    tag, _ = installed
    assert load_extension(f"good_{tag}:Tagger").name == f"tagger-{tag}"
    assert import_reference("deployment.extensions.rekey:RekeySessions").name == "rekey-sessions"
    with pytest.raises(ExtensionError, match="has no attribute 'Nope'"):
        load_extension(f"good_{tag}:Nope")
    with pytest.raises(ExtensionError, match="not of the form module:Class"):
        import_reference("just_a_module:")


def test_cli_lists_every_extension_with_errors_of_the_broken_ones(installed):
    tag, root = installed
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.getcwd()}", "SNAKEPIT_MIGRATE_HOME": str(root.parent / "home")}
    proc = subprocess.run([sys.executable, "-m", "client.cli", "extensions", "list", "--json"],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # some are broken
    rows = {r["name"]: r for r in json.loads(proc.stdout)["extensions"]}
    assert rows[f"tagger-{tag}"]["ok"] and rows[f"tagger-{tag}"]["version"] == "1.2.0"
    assert not rows[f"half-{tag}"]["ok"] and "missing step(s)" in rows[f"half-{tag}"]["error"]
    assert "Traceback" not in proc.stderr


def test_cli_shows_an_extension_and_its_parameters(installed):
    tag, root = installed
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.getcwd()}", "SNAKEPIT_MIGRATE_HOME": str(root.parent / "home")}
    proc = subprocess.run([sys.executable, "-m", "client.cli", "extensions", "show", f"tagger-{tag}", "--json"],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert (shown["name"], shown["version"], shown["reference"]) == (f"tagger-{tag}", "1.2.0", f"good_{tag}:Tagger")
    assert shown["params_schema"]["required"] == ["label"]
    broken = subprocess.run([sys.executable, "-m", "client.cli", "extensions", "show", f"half-{tag}"],
                            capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert broken.returncode == 2 and f"extension 'half-{tag}' is broken: " in broken.stderr and "Traceback" not in broken.stderr
