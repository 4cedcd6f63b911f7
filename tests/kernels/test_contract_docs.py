"""Every public op of infdiff_kernels points at its section of docs/ops.md, and that section
exists (the contract lives in the repository, next to the code it describes)."""
import pathlib
import re

import pytest

import infdiff_kernels as ik

DOC = pathlib.Path(ik.__file__).parent.parent / "docs" / "ops.md"
PUBLIC = [name for name in ik.__all__ if callable(getattr(ik, name))]


def _anchors():
    """GitHub's anchors of the page's headings: lower case, punctuation but '-' and '_' dropped,
    spaces to '-'."""
    headings = re.findall(r"^#+ (.+)$", DOC.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("name", PUBLIC)
def test_public_docstring_links_its_contract_section(name):
    doc = getattr(ik, name).__doc__ or ""
    found = re.findall(r"Contract: docs/ops\.md#([\w-]+)", doc)
    assert found, f"{name}'s docstring has no 'Contract: docs/ops.md#...' line"
    assert set(found) <= _anchors(), (found, sorted(_anchors()))


def test_every_in_page_link_has_its_heading():
    links = set(re.findall(r"\]\(#([\w-]+)\)", DOC.read_text()))
    assert links <= _anchors(), links - _anchors()
