import glob
import os

import pytest

from infdiff.config import ConfigError, from_dict, load_config

from .conftest import PRESETS, ROOT


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(PRESETS, "*.yaml"))))
def test_presets_load(path):
    cfg = load_config(path)
    assert cfg.train.coord_fraction > 0


@pytest.mark.parametrize(
    "values, field",
    [
        ({"train": {"coord_fractoin": 0.5}}, "train.coord_fractoin"),
        ({"bogus": {}}, "bogus"),
        ({"train": {"coord_fraction": 0.0}}, "train.coord_fraction"),
        ({"train": {"coord_fraction": 1.5}}, "train.coord_fraction"),
        ({"data": {"resolution": 5}, "model": {"kernel_size": 7}}, "data.resolution"),
        ({"model": {"kernel_size": 4}}, "model.kernel_size"),
        ({"model": {"unet_mults": "12"}}, "model.unet_mults"),
        ({"train": {"steps": "many"}}, "train.steps"),
        ({"data": {"name": "cifar"}}, "data.name"),
    ],
)
def test_bad_config_names_field(values, field):
    with pytest.raises(ConfigError, match=f"`{field.replace('[', '.').replace(']', '')}"):
        from_dict(values)


def test_yaml_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))


def test_overrides_are_validated(tmp_path):
    from .conftest import TINY

    assert load_config(TINY, {"train.steps": 3}).train.steps == 3
    with pytest.raises(ConfigError, match="train.coord_fraction"):
        load_config(TINY, {"train.coord_fraction": -1})


def test_override_values_are_safe_yaml(tmp_path):
    from infdiff.config import parse_override

    marker = tmp_path / "ran"
    for raw in (f"!!python/object/apply:os.system ['touch {marker}']", "[1, 2", "{a: b"):
        with pytest.raises(ConfigError, match="override train.steps"):
            parse_override(f"train.steps={raw}")
    assert not marker.exists()
