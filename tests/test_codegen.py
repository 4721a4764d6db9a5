"""The checked-in interpreters are exactly what the generator makes from the registry."""
from numbad.sweeps import codegen


def test_generated_module_is_up_to_date():
    current = codegen.TARGET.read_text()
    assert current == codegen.generate(), (
        "numbad/sweeps/_generated.py is stale: run `python -m numbad.sweeps.codegen` and commit it")


def test_every_registry_op_has_a_forward_branch():
    from numbad.ops import OPS
    text = codegen.TARGET.read_text()
    forward = text[text.index("def forward("):text.index("def reverse(")]
    for op in OPS.values():
        assert f"code == {op.code}:  # {op.name}" in forward, op.name


def test_reverse_loops_over_same_size_operands_index_directly():
    # a loop reading vb[i * sb] (a stride known only at run time) stays scalar: 4x slower on
    # large nodes; the first-write and accumulating loops index directly or hoist vb[0]
    text = codegen.TARGET.read_text()
    lines = text[text.index("def _reverse_loops_0("):text.index("def _reverse_lanes_loops_0(")].splitlines()
    checked = 0
    for k, line in enumerate(lines):
        if line.strip() != "for i in range(n):":
            continue
        depth = len(line) - len(line.lstrip())
        body = []
        for nxt in lines[k + 1:]:
            if len(nxt) - len(nxt.lstrip()) <= depth:
                break
            body.append(nxt)
        if any("ga[i] = gy[i]" in b or "ga[i] += gy[i]" in b for b in body):
            checked += 1
            assert not any("* s" in b for b in body), "\n".join(body)
    assert checked > 100
