"""`infdiff compare` (python/infdiff/evaluate/compare.py) end to end on the tiny config: three
runs of a few steps, each evaluated at two resolutions, one markdown table and one JSON."""
import json
import os

import pytest
import yaml

from infdiff.cli import main
from infdiff.config import ConfigError
from infdiff.evaluate.compare import compare

from .conftest import TINY
from .test_function_space_cli import TINY_FNO


def _fno_tiny(tmp_path, **extra):
    """tiny.yaml with the TINY_FNO fields (and `extra` dotted fields), as a YAML file."""
    with open(TINY) as fh:
        values = yaml.safe_load(fh)
    for dotted, value in {**TINY_FNO, **extra}.items():
        node = values
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = tmp_path / "tiny_fno.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_compare_trains_evaluates_and_reports_the_three_models(tmp_path, capsys):
    out = str(tmp_path / "cmp")
    # no --minutes: each run trains its train.steps, set per family
    argv = ["compare", "--mollified", TINY, "--fno", _fno_tiny(tmp_path), "--resolution", "16", "32",
            "--n", "4", "--steps", "2", "--out", out, "--set", "train.steps=5", "--set-mollified", "train.steps=2",
            "--set-fno", "train.steps=3"]
    assert main(argv) == 0
    with open(os.path.join(out, "compare.json")) as fh:
        results = json.load(fh)
    assert list(results["contenders"]) == ["infdiff", "fno_trace_class", "fno_white"]
    noises = [v["noise"] for v in results["contenders"].values()]
    assert noises == ["mollified", "trace_class", "white"]
    assert [v["steps"] for v in results["contenders"].values()] == [2, 3, 3]
    for v in results["contenders"].values():
        assert v["s_per_step"] > 0
        assert set(v["metrics"]) == {"16", "32"}
        assert all(row["spectrum_err"] >= 0 and row["swd"] >= 0 for row in v["metrics"].values())
    table = open(os.path.join(out, "compare.md")).read()
    assert table.count("| fno_white |") == 2 and "s/step" in table
    assert "each trained for its train.steps" in table and "no time budget" in table
    # --reuse evaluates the same checkpoints without training them again
    before = os.path.getmtime(os.path.join(out, "fno_white", "checkpoint.pt"))
    again = compare(TINY, _fno_tiny(tmp_path), out, 1, resolutions=[16], n=4, steps=2, overrides={"train.steps": 3},
                    reuse=True, log=lambda *_: None)
    assert os.path.getmtime(os.path.join(out, "fno_white", "checkpoint.pt")) == before
    assert set(again["contenders"]["fno_white"]["metrics"]) == {"16"}
    assert "1 min of training each" in open(os.path.join(out, "compare.md")).read()
    # an evaluation with the same resolutions, n, seed and steps is read, not sampled again
    scored = os.path.join(out, "fno_white", "eval", "eval.json")
    written = os.path.getmtime(scored)
    third = compare(TINY, _fno_tiny(tmp_path), out, 1, resolutions=[16], n=4, steps=2, overrides={"train.steps": 3},
                    reuse=True, log=lambda *_: None)
    assert os.path.getmtime(scored) == written
    assert third["contenders"]["fno_white"]["metrics"] == again["contenders"]["fno_white"]["metrics"]


def test_compare_refuses_bad_arguments_naming_them(tmp_path):
    fno = _fno_tiny(tmp_path)
    with pytest.raises(ConfigError, match="--fno: .* model.family 'mollified'"):
        compare(TINY, TINY, str(tmp_path), 1)
    with pytest.raises(ConfigError, match="same data; data.resolution differs"):
        compare(TINY, _fno_tiny(tmp_path, **{"data.resolution": 12}), str(tmp_path), 1)
    with pytest.raises(ValueError, match="--minutes"):
        compare(TINY, fno, str(tmp_path), 0)
    with pytest.raises(ValueError, match="--set-mollified, --set-fno"):
        compare(TINY, fno, str(tmp_path), family_overrides={"white": {"train.steps": 1}})
    with pytest.raises(ValueError, match="--n"):
        compare(TINY, fno, str(tmp_path), 1, n=1)
