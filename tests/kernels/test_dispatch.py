"""One home for each job (docs/ops.md#backends, #errors): only _validate raises on bad input,
only _dispatch picks a backend or reaches the compiled extension, and each backend runs the
parts of an op that the backend table names, whatever else happens to be built."""
import ast
import pathlib

import pytest
import torch

import infdiff_kernels as ik
from infdiff_kernels import _dispatch, _ext

from .cases import random_points

PACKAGE = pathlib.Path(ik.__file__).parent
SOURCES = sorted(p for p in PACKAGE.rglob("*.py"))
HAS_CPP = "cpu" in ik.available_backends("cpu")


def _module_name(path):
    return str(path.relative_to(PACKAGE))


def _raised_names(tree):
    """Names of the exceptions a module raises by name (raise X(...) / raise X)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name):
                yield target.id


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name not in ("_validate.py", "_dispatch.py")], ids=_module_name)
def test_only_validate_and_dispatch_raise_on_bad_input(path):
    raised = set(_raised_names(ast.parse(path.read_text())))
    assert not raised & {"ValueError", "TypeError", "RuntimeError"}, raised


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name not in ("_dispatch.py", "_ext.py")], ids=_module_name)
def test_only_dispatch_reaches_the_compiled_extension(path):
    """The backend choice cannot hide in a module that calls _C directly."""
    tree = ast.parse(path.read_text())
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not names & {"ext", "has_cpu_kernels", "has_cuda_kernels", "_ext", "_C"}, names


def _forbid_compiled(monkeypatch, name):
    """Replace the extension's `name` by a function that fails the test when called."""
    if not HAS_CPP:
        pytest.skip("infdiff_kernels._C is not built: nothing compiled could run")

    def forbidden(*args, **kwargs):
        raise AssertionError(f"_C.{name} ran, but the backend table says it must not")

    monkeypatch.setattr(_ext.ext, name, forbidden)


def _points():
    coords = random_points(2, (7, 6), 12, generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return x, coords


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_torch_search_backends_never_run_the_compiled_search(monkeypatch, backend):
    if backend not in ik.available_backends("cpu"):
        pytest.skip(f"backend {backend!r} cannot run here")
    _forbid_compiled(monkeypatch, "knn_search")
    x, coords = _points()
    out = ik.knn_to_grid(x, coords, (7, 6), (4, 3), 3, backend=backend)
    torch.testing.assert_close(out, ik.knn_to_grid(x, coords, (7, 6), (4, 3), 3, backend="reference"))


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_torch_builder_backends_never_run_the_compiled_neighbor_map(monkeypatch, backend):
    if backend not in ik.available_backends("cpu"):
        pytest.skip(f"backend {backend!r} cannot run here")
    _forbid_compiled(monkeypatch, "build_neighbor_map_cpu")
    x, coords = _points()
    nmap = ik.build_neighbor_map(coords, (7, 6), 3, backend=backend)
    weight = torch.randn(3, 3, 3, dtype=torch.float64)
    out = ik.sparse_depthwise_conv(x, coords, (7, 6), weight, backend=backend)
    expected = ik.sparse_depthwise_conv(x, coords, (7, 6), weight, backend="reference", neighbor_map=nmap)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("part,table", [("neighbour map", _dispatch.NEIGHBOR_MAP_BUILDERS), ("k-NN search", _dispatch.KNN_SEARCHES)])
def test_every_backend_has_one_named_implementation_of_each_part(part, table):
    assert set(table) == set(ik.BACKENDS), part


def test_build_neighbor_map_refuses_a_backend_that_cannot_run_here():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    _, coords = _points()
    with pytest.raises(RuntimeError, match="backend='cuda' cannot run here"):
        ik.build_neighbor_map(coords, (7, 6), 3, backend="cuda")
