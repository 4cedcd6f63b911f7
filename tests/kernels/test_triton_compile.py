"""The pytest twin of .ci/triton_compile.py: the Triton kernels compiled for real for sm_80 on
a representative subset of the launches (every kernel and autotune config, float32 and
bfloat16, the unit-size and odd shape cases), with grids checked for every shape case.

The interpreter the other kernel tests use cannot see these failures: an integer argument
equal to 1 turned into a constexpr, a kernel argument name Triton's launcher cannot bind,
a grid axis past its CUDA limit, or an int32 pointer offset that wraps past 2^31 elements.
The compile runs in a subprocess because this process imported triton in interpreter mode."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "triton_compile.py"


@pytest.fixture(scope="module")
def quick_check(tmp_path_factory):
    """(exit status, results) of the quick real-compile check."""
    out = tmp_path_factory.mktemp("triton-compile")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--jobs", "2", "--report", str(out / "report.txt"),
         "--json", str(out / "report.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert (out / "report.json").exists(), f"the check did not finish:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.returncode, json.loads((out / "report.json").read_text()), (out / "report.txt").read_text()


def _errors(results, needle):
    return [e for e in results["errors"] if needle in e]


def test_every_kernel_compiles_for_sm80_with_unit_sizes(quick_check):
    """A size argument equal to 1 is compiled as the constexpr 1 (e.g. a 1-pixel-high grid)."""
    _, results, _ = quick_check
    failed = [f"{r['kernel']} [{r['config']}] {r['specialisation']}: {r['error'][:600]}"
              for r in results["rows"] if not r["ok"]]
    assert not failed, "\n".join(failed)
    assert any("knn._sample_kernel" == r["kernel"] and " h=1 " in r["specialisation"] for r in results["rows"])


def test_every_launch_binds_to_its_kernel(quick_check):
    """Triton's launcher must be able to specialise every argument a launcher passes."""
    _, results, _ = quick_check
    assert not _errors(results, "cannot be specialised")


def test_grids_stay_within_cuda_axis_limits(quick_check):
    """The "huge" shape case (3 M points, a 2048 x 2048 grid) puts > 65,535 row blocks to launch."""
    _, results, _ = quick_check
    assert not _errors(results, "grid axis")


def test_pointer_offsets_cannot_wrap_at_2_pow_31(quick_check):
    """Offsets built from program ids or sizes are int64 in the compiled TTIR."""
    _, results, _ = quick_check
    assert not _errors(results, "int32 pointer offset")


def test_no_register_spills_and_a_full_report(quick_check):
    status, results, report = quick_check
    assert not _errors(results, "spills")
    assert status == 0, "\n".join(results["errors"])
    for row in results["rows"]:
        assert row["regs"] > 0 and row["spill"] == 0
    assert {r["kernel"] for r in results["rows"] if "unit" in r["cases"]} == set(results["kernels"])
    for kernel in results["kernels"]:
        assert f"{kernel} " in report
    assert "regs=" in report and "smem=" in report


def test_every_autotune_config_compiles_and_atomic_outputs_are_reset(quick_check):
    """Any config the autotuner may pick on a GPU is compiled, and a kernel adding into its
    output with atomics has it zeroed between benchmark runs (reset_to_zero)."""
    _, results, _ = quick_check
    assert not _errors(results, "is never compiled")
    assert not _errors(results, "reset_to_zero")
    assert any(r["atomics"] for r in results["rows"] if r["ok"])  # the scatters are seen as atomic


def test_interpreter_runs_one_fixed_config_per_kernel():
    """Under TRITON_INTERPRET (these CPU tests) no kernel is benchmarked: one config each."""
    from triton.runtime.autotuner import Autotuner

    from infdiff_kernels.knn import triton as knn_triton
    from infdiff_kernels.sparse_conv import triton as conv_triton
    from infdiff_kernels.spectral import triton as spectral_triton

    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("this process runs Triton on a GPU, not in the interpreter (the compile check covers it)")
    kernels = {f"{m.__name__}.{name}": value for m in (knn_triton, conv_triton, spectral_triton)
               for name, value in vars(m).items() if name.endswith("_kernel")}
    assert kernels and all(isinstance(kernel, Autotuner) for kernel in kernels.values()), kernels
    assert {name: len(kernel.configs) for name, kernel in kernels.items()} == {name: 1 for name in kernels}
