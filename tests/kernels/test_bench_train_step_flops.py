"""bench/train_step.py --flops: the FLOP account of a training step, on a shrunken preset."""
import json
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from bench.train_step import CUSTOM_FLOPS, main, parse_sets, step_flops

from ..pipeline.conftest import _one_thread  # noqa: F401 - autouse: a step's many small ops on one thread

# the paper-shaped preset cut down to seconds: 16^2 images, an 8^2 grid, two U-Net levels
SMALL = {"model.channels": 8, "model.unet_channels": 8, "model.unet_mults": [1, 2], "model.sparse_blocks": 1,
         "model.attention_heads": 2, "model.time_dim": 16, "model.kernel_size": 5}


def conv_step_flops(groups, mapping):
    x = torch.randn(2, 16, 12, 12, requires_grad=True)
    w = torch.randn(16, 16 // groups, 3, 3, requires_grad=True)
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        F.conv2d(x, w, padding=1, groups=groups).sum().backward()
    return {str(op): v for op, v in counter.get_flop_counts()["Global"].items()}


def test_conv_backward_counts_grad_x_and_grad_weight_as_the_forward_each():
    assert conv_step_flops(1, CUSTOM_FLOPS) == conv_step_flops(1, {})  # torch's formula, where it is right
    depthwise = conv_step_flops(16, CUSTOM_FLOPS)
    forward = 2 * 2 * 16 * 12 * 12 * 9  # 2 flops per tap and output value
    assert depthwise == {"aten.convolution": forward, "aten.convolution_backward": 2 * forward}


def test_the_unet_is_the_fixed_cost_and_the_patch_cuts_it():
    full, quarter = step_flops(16, Fraction(1), SMALL), step_flops(16, Fraction(1, 4), SMALL)
    assert full["grid U-Net"] == quarter["grid U-Net"] > 0
    assert full["k-NN lerp"] > 0 and full["other"] > 0 and quarter["sparse conv"] > 0
    # the linear layers see round(f H W) points: a quarter of the work at a quarter of the points
    assert quarter["pointwise layers"] == pytest.approx(full["pointwise layers"] / 4, rel=0.02)
    patched = step_flops(16, Fraction(1, 4), {**SMALL, "model.unet_patch": 2})
    assert patched["grid U-Net"] < 0.4 * quarter["grid U-Net"]
    assert patched["pointwise layers"] == quarter["pointwise layers"]


def test_flops_only_run_writes_its_own_json(tmp_path, capsys):
    out = tmp_path / "flops.json"
    main(["--flops", "--no-timing", "--sizes", "16", "--fractions", "1/4", "--json", str(out),
          *[a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]])
    text = capsys.readouterr().out
    assert "predicted" in text and "1/4" in text
    record = json.loads(out.read_text())
    assert set(record["train_step_flops"]["16"]["predicted_speedup"]) == {"1", "0.25"}
    assert record["train_step_speedup"] == {} and record["timings"] == []


def test_a_bad_set_names_the_flag_and_field():
    with pytest.raises(SystemExit, match="--set"):
        parse_sets(["model.unet_patch"])
    with pytest.raises(SystemExit, match="model.unet_patch"):
        main(["--flops", "--no-timing", "--sizes", "16", "--set", "model.unet_patch=3"])
