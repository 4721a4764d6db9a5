"""Run the code snippets of a documentation page, so that none can rot.

A page's fenced blocks run in order, in one namespace (a later block may use
what an earlier one defined):

- ```` ```python ```` blocks are executed; they state their results with
  ``assert`` or by printing;
- ```` ```pycon ```` blocks (``>>>`` sessions) run through doctest: the shown
  output must be what the code prints (``...`` matches anything, whitespace is
  normalised).

Other blocks (``bash``, ``text``) are not run. Used by ``tests/test_docs_site.py``
and, for the pages that need a GPU, by ``tests/cuda/test_docs_cuda.py`` under
Numba's CUDA simulator.
"""
from __future__ import annotations

import doctest
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)
RUN = ("python", "pycon")


def blocks(path):
    """``[(language, first line number, source)]`` of the fenced blocks of a Markdown file."""
    text = Path(path).read_text()
    out = []
    for m in FENCE.finditer(text):
        lang = m.group("info").strip().split()[0] if m.group("info").strip() else ""
        indent = len(m.group("indent"))
        body = "\n".join(line[indent:] for line in m.group("body").split("\n"))
        line = text.count("\n", 0, m.start("body")) + 1
        out.append((lang, line, body))
    return out


def runnable(path):
    return [b for b in blocks(path) if b[0] in RUN]


def run_page(path, substitutions=None):
    """Run every python/pycon block of the page at ``path``; raise AssertionError on a failure.

    ``substitutions`` maps text to replacement text, applied to the blocks before they run
    (the CUDA page runs under the simulator with smaller sizes); each must match somewhere.
    """
    path = Path(path)
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    todo = runnable(path)
    assert todo, f"{name} has no python/pycon blocks to run"
    unused = dict(substitutions or {})
    ns = {"__name__": "__docs__"}
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    with np.printoptions():                      # a page may set print options: restore them after
        for lang, line, src in todo:
            for old, new in (substitutions or {}).items():
                if old in src:
                    src = src.replace(old, new)
                    unused.pop(old, None)
            where = f"{name}:{line}"
            if lang == "python":
                code = compile(src, where, "exec")
                try:
                    exec(code, ns)
                except Exception as e:
                    raise AssertionError(f"the python block at {where} raised {type(e).__name__}: {e}") from e
            else:
                test = parser.get_doctest(src, ns, where, name, line - 1)
                out = []
                result = runner.run(test, out=out.append, clear_globs=False)
                ns = test.globs                  # doctest ran on a copy: keep what it defined
                if result.failed:
                    raise AssertionError(f"the pycon block at {where} does not show what it prints:\n"
                                         + "".join(out))
    assert not unused, f"{name}: substitutions that matched nothing: {list(unused)}"
    return len(todo)
