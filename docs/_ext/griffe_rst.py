"""A griffe extension for the API page: numbad's docstrings are written for ``help()`` and
doctest (reST roles, ``>>>`` examples); this turns them into the Markdown mkdocstrings renders.

- ``:class:`numbad.Tensor``` (and ``:func:``, ``:meth:``, ...) becomes inline code;
- a doctest block (``>>>`` up to the next blank line) becomes a ``pycon`` code block;
- a reST literal block (a paragraph ending in ``::`` and an indented block) becomes a
  ``python`` code block.
"""
from __future__ import annotations

import re

from griffe import Extension

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`~?([^`]+)`")


def rst_to_markdown(text: str) -> str:
    text = ROLE.sub(lambda m: f"``{m.group(1)}``", text)
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + "```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(indent + "```")
            continue
        if line.rstrip().endswith("::") and i + 1 < len(lines) and not lines[i + 1].strip():
            out.append(line.rstrip()[:-1])
            out.append("")
            i += 2
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                block.append(lines[i][4:])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            out += ["```python", *block, "```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class RstToMarkdown(Extension):
    def on_object(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
