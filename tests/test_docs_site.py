"""The documentation site cannot rot: every snippet runs, every public name is on the API page
with a runnable example, and the README's performance table is the generated one.

The site itself is built by ``mkdocs build --strict`` (``.ci/run``), which fails on broken
links, missing pages and API entries it cannot resolve.
"""
import doctest
import importlib
import re
import sys

import pytest

import numbad as nb
from docs_snippets import DOCS, ROOT, run_page, runnable

#: pages whose snippets need a GPU: they run under Numba's CUDA simulator (tests/cuda/test_docs_cuda.py)
CUDA_PAGES = {"docs/cuda.md"}
#: generated fragments that pages include (no snippets of their own)
FRAGMENTS = {"docs/performance/report.md", "docs/performance/headline.md"}
PEERS = {"torch": "import torch", "jax": "import jax", "autograd": "import autograd"}


def _pages():
    pages = sorted(p for p in DOCS.rglob("*.md") if "_ext" not in p.parts) + [ROOT / "README.md"]
    return [p for p in pages if str(p.relative_to(ROOT)) not in FRAGMENTS]


PAGES = _pages()
RUNNABLE = [p for p in PAGES if runnable(p) and str(p.relative_to(ROOT)) not in CUDA_PAGES]


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_snippets_run(page, tmp_path, monkeypatch):
    text = page.read_text()
    for module, spelling in PEERS.items():
        if spelling in text:
            pytest.importorskip(module, reason=f"{page.name} runs {module} (pip install -e '.[dev]')")
    monkeypatch.chdir(tmp_path)              # snippets that save files write them here
    run_page(page)


def test_every_page_with_code_is_run():
    """A page with python/pycon blocks is run here or, needing a GPU, under the simulator."""
    with_code = {str(p.relative_to(ROOT)) for p in PAGES if runnable(p)}
    assert with_code - CUDA_PAGES == {str(p.relative_to(ROOT)) for p in RUNNABLE}
    assert CUDA_PAGES <= with_code
    assert (ROOT / "tests" / "cuda" / "test_docs_cuda.py").exists()


# ----------------------------------------------------------------------------- the API page
def test_api_page_documents_every_public_name():
    text = (DOCS / "api.md").read_text()
    documented = re.findall(r"^::: numbad\.(\w+)\s*$", text, re.M)
    assert sorted(set(documented)) == sorted(documented), "a name is documented twice"
    assert set(documented) == set(nb.__all__), (
        f"missing from docs/api.md: {sorted(set(nb.__all__) - set(documented))}; "
        f"not public: {sorted(set(documented) - set(nb.__all__))}")


@pytest.mark.parametrize("name", nb.__all__)
def test_public_name_has_a_runnable_example(name):
    obj = getattr(nb, name)
    assert obj.__doc__ and ">>>" in obj.__doc__, f"numbad.{name}'s docstring has no example"
    finder = doctest.DocTestFinder(recurse=True)
    module = sys.modules[obj.__name__] if isinstance(obj, type(nb)) else importlib.import_module(obj.__module__)
    tests = [t for t in finder.find(obj, f"numbad.{name}", module=module) if t.examples]
    assert tests
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        out = []
        runner.run(t, out=out.append)
        assert runner.failures == 0, "".join(out)


# ----------------------------------------------------------------------------- performance
def _benchmark(name):
    """The script ``benchmarks/<name>.py`` as a module (its own imports find ``workloads``)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_readme_headline_is_the_generated_one():
    report = _benchmark("report")
    headline = (DOCS / "performance" / "headline.md").read_text()
    assert report.readme_section(ROOT / "README.md") == headline, (
        "README.md's performance table is not docs/performance/headline.md: run "
        "`python benchmarks/report.py` (it rewrites both)")
    for f in ("report.md", "workloads.png", "elementwise.png", "lorenz.png", "results.json"):
        assert (DOCS / "performance" / f).exists(), f"docs/performance/{f} is missing"


def test_report_runs(tmp_path):
    """``benchmarks/report.py --quick`` writes every file the Performance page includes."""
    pytest.importorskip("matplotlib")
    report = _benchmark("report")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_BEGIN}\nold\n{report.README_END}\nrest\n")
    assert report.main(["--quick", "--no-startup", "--systems", "numpy,numbad,numbad_tape",
                        "--out", str(tmp_path), "--readme", str(readme)]) == 0
    for f in ("report.md", "headline.md", "workloads.png", "elementwise.png", "lorenz.png", "results.json"):
        assert (tmp_path / f).exists()
    assert report.readme_section(readme) == (tmp_path / "headline.md").read_text()
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("rest\n")
    assert "numbad `nb.vjp`" in (tmp_path / "report.md").read_text()


def test_interleaved_ratios_run():
    """``benchmarks/interleaved.py`` alternates numbad's and PyTorch's blocks of calls."""
    pytest.importorskip("torch")
    interleaved = _benchmark("interleaved")
    ours, theirs = interleaved.measure("seed", blocks=3, calls=2)
    assert len(ours) == len(theirs) == 3
    assert all(0.0 < t < 1.0 for t in ours + theirs)


def test_the_size_scan_runs(capsys):
    """``benchmarks/sizes.py`` times nb.vjp, tape.vjp and PyTorch's vjp at each size."""
    pytest.importorskip("torch")
    sizes = _benchmark("sizes")
    sizes.main(["--seconds", "0.001", "--sizes", "10", "20000"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["rosenbrock", "  n =       10", "  n =    20000",
                                                       "elementwise", "  n =       10", "  n =    20000"]
    assert all("nb.vjp" in line and "PyTorch" in line for line in lines if line.startswith("  n"))
