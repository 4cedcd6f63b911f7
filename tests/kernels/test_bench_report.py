"""bench/report.py: the report of a `python -m bench` run, written from a few fake records."""
import json

import pytest

pytest.importorskip("matplotlib")

from bench.report import bandwidth_rows, density_of, ratios_to_baseline, write_report  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def timing(case, impl, seconds, **extra):
    return {"case": case, "impl": impl, "median_s": seconds, "all_s": [seconds], "skipped": None, **extra}


def fake_families():
    return {
        "sparse_conv": {"timings": [
            timing("128^2 d=1 fwd", "dense", 2.0), timing("128^2 d=1 fwd", "cpu", 1.0),
            timing("128^2 d=1/4 fwd", "dense", 2.0), timing("128^2 d=1/4 fwd", "cpu", 0.25, floor_bytes=4e9),
            {"case": "128^2 d=1/4 fwd", "impl": "spconv", "median_s": None, "skipped": "not installed"},
        ]},
        "knn": {"timings": [timing("256^2 1/4 -> 128^2 fwd 1t", "ckdtree", 0.1),
                            timing("256^2 1/4 -> 128^2 fwd 1t", "cpu", 0.01)],
                "headline": {"1/4 1t": {"speedup_vs_ckdtree": 10.0}}},
        "train_step": {"timings": [], "train_step_speedup": {"64": {"1": 1.0, "0.25": 3.0, "0.125": 4.5}}},
    }


def test_density_is_read_from_the_case():
    assert density_of("128^2 d=1/4 fwd") == 0.25
    assert density_of("256^2 1/8 -> 128^2 fwd+bwd 2t") == 0.125
    assert density_of("128^2 d=1 fwd") == 1.0
    assert density_of("64x128^2") is None


def test_ratios_divide_by_the_family_baseline():
    rows = ratios_to_baseline("sparse_conv", fake_families()["sparse_conv"])
    assert ("128^2 d=1/4 fwd", "cpu", 0.125) in rows
    assert all(impl != "dense" and impl != "spconv" for _, impl, _ in rows)


def test_bandwidth_fraction_uses_the_floor_bytes():
    rows = bandwidth_rows(fake_families(), copy_bandwidth=32e9)
    assert len(rows) == 1 and rows[0][1] == pytest.approx(4e9 / 0.25 / 32e9)
    assert bandwidth_rows(fake_families(), copy_bandwidth=None) == []


def test_report_writes_json_markdown_and_plots(tmp_path):
    paths = write_report(fake_families(), tmp_path, "box-2026-01-01", machine={"cpu_model": "test cpu"},
                         copy_bandwidth=32e9, failed=["spectral"])
    names = {p.name for p in paths}
    assert {"box-2026-01-01.json", "box-2026-01-01.md", "time_vs_density.png", "ratio_to_baseline.png",
            "train_step_speedup.png", "bandwidth.png"} <= names
    for p in paths:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG_MAGIC
    data = json.loads((tmp_path / "box-2026-01-01.json").read_text())
    assert set(data["families"]) == {"sparse_conv", "knn", "train_step"}
    assert data["copy_bandwidth_Bps"] == 32e9 and data["failed"] == ["spectral"]
    md = (tmp_path / "box-2026-01-01.md").read_text()
    assert "box-2026-01-01/time_vs_density.png" in md
    assert "0.125x" in md and "spectral" in md and "not installed" in md


def test_report_without_plottable_records_writes_no_png(tmp_path):
    paths = write_report({"roofline": {"timings": []}}, tmp_path, "empty")
    assert [p.suffix for p in paths] == [".json", ".md"]


def test_runner_writes_the_report_of_what_ran(tmp_path, capsys):
    from bench.__main__ import main

    assert main(["--results", str(tmp_path), "no_such_family"]) == 0
    assert "skipped (bench/no_such_family.py does not exist)" in capsys.readouterr().out
    (json_path,) = tmp_path.glob("*.json")
    data = json.loads(json_path.read_text())
    assert data["families"] == {} and data["copy_bandwidth_Bps"] > 0
    assert json_path.with_suffix(".md").exists()


def test_series_keep_modes_and_ops_apart():
    from bench.report import _series, mode_of

    assert mode_of("128^2 d=1/4 fwd+bwd(x)") == "fwd+bwd(x)"
    assert mode_of("128^2 d=1 fwd+bwd") == "fwd+bwd"
    payload = {"timings": [timing("128^2 d=1 fwd", "cpu", 1.0), timing("128^2 d=1/4 fwd", "cpu", 0.3),
                           timing("128^2 d=1/4 fwd+bwd(x)", "cpu", 0.5),
                           timing("grid_to_points 128^2 d=1/4 fwd", "cpu", 0.1)]}
    series = _series(payload)
    assert series[("fwd", "cpu", "128^2")] == [(0.25, 0.3), (1.0, 1.0)]
    assert series[("fwd+bwd(x)", "cpu", "128^2")] == [(0.25, 0.5)]
    assert series[("fwd", "cpu", "grid_to_points 128^2")] == [(0.25, 0.1)]
