import glob
import os

import pytest
import yaml

from infdiff.config import ConfigError, from_dict, load_config, preset_names

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
        ({"diffusion": {"ddpm_variance": "medium"}}, "diffusion.ddpm_variance"),
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


def _refused(tmp_path, text):
    """The ConfigError message load_config gives for `text` written to dup.yaml."""
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:  # ConfigError is a ValueError
        load_config(str(path))
    assert isinstance(info.value, ConfigError)
    message = str(info.value)
    assert str(path) in message and "appears twice" in message
    return message


def test_duplicate_top_level_key_is_refused(tmp_path):
    # the grf_mixture preset once had a second `data:` line that YAML silently let win
    text = "data:\n  name: grf\n  resolution: 16\ntrain:\n  steps: 3\ndata:\n  name: mnist\n"
    message = _refused(tmp_path, text)
    assert message.startswith("config field `data`: key `data`") and "(lines 1 and 6)" in message


def test_duplicate_nested_key_is_refused_in_block_style(tmp_path):
    message = _refused(tmp_path, "train:\n  lr: 0.001\n  steps: 3\n  lr: 0.002\n")
    assert "`train.lr`" in message and "key `lr`" in message and "(lines 2 and 4)" in message
    message = _refused(tmp_path, "model:\n  fno:\n    width: 8\n    modes: 4\n    width: 16\n")
    assert "`model.fno.width`" in message and "(lines 3 and 5)" in message


def test_duplicate_nested_key_is_refused_in_flow_style(tmp_path):
    message = _refused(tmp_path, "data: {name: grf}\ntrain: {lr: 1, lr: 2}\n")
    assert "`train.lr`" in message and "(line 2, columns 9 and 16)" in message
    message = _refused(tmp_path, "model:\n  fno: {a: 1, a: 2}\n")
    assert "`model.fno.a`" in message and "(line 2, columns 9 and 15)" in message


def test_keys_yaml_reads_as_equal_are_duplicates(tmp_path):
    # the dict would keep one: `yes` and `true` are both True in YAML 1.1
    message = _refused(tmp_path, "train:\n  compile: 1\n  yes: 1\n  true: 2\n")
    assert "`train.true`" in message and "`yes` and `true` are the same key" in message


def test_duplicate_key_in_an_override_value_is_refused():
    from infdiff.config import parse_override

    with pytest.raises(ConfigError, match=r"`model\.fno\.width`.*override .*\(line 1, columns 2 and 12\)"):
        parse_override("model.fno={width: 1, width: 2}")
    assert parse_override("model.fno={width: 1, modes: 2}") == ("model.fno", {"width": 1, "modes": 2})


def test_merge_keys_may_still_be_overridden():
    from infdiff.config import load_yaml

    # a `<<` merge's key overridden by the mapping's own is YAML's intent, not a duplicate
    text = "base: &b {lr: 1, steps: 2}\ntrain:\n  <<: *b\n  lr: 3\n"
    assert load_yaml(text) == yaml.safe_load(text) == {"base": {"lr": 1, "steps": 2}, "train": {"lr": 3, "steps": 2}}


@pytest.mark.parametrize("name", preset_names())
def test_every_shipped_preset_loads_unchanged(name):
    from infdiff.config import _config_text, load_yaml

    # by name (as `--config mnist`), with no duplicate key, and read exactly as yaml.safe_load reads it
    text, source = _config_text(name)
    assert load_yaml(text, source) == yaml.safe_load(text)
    assert load_config(name).to_dict() == load_config(os.path.join(PRESETS, f"{name}.yaml")).to_dict()
