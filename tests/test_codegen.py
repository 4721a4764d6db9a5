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


def test_replay_drivers_pass_literal_integers_only_where_meant():
    # Numba compiles a callee once more for each literal constant argument (Literal[int](0)),
    # even for a variable that starts as ``0`` and is widened to int64 later: the interpreters
    # that Python also calls, minutes of compiling each, were compiled twice. The literals
    # left are deliberate (replay_template.py's docstring says why).
    import ast
    tree = ast.parse(codegen.REPLAY.read_text())
    text = codegen.TARGET.read_text()
    interpreters = {"forward", "reverse", "reverse_lanes", "tangent", "tangent_lanes", "forward_batch",
                    "reverse_batch", "tangent_batch"}
    assert all(f"\ndef {name}(" in text for name in interpreters)
    drivers = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}
    checked, literal_calls = 0, set()
    for func in (f for f in tree.body if isinstance(f, ast.FunctionDef)):
        literal_names = {t.id for node in ast.walk(func) if isinstance(node, ast.Assign)
                         and isinstance(node.value, ast.Constant) and type(node.value.value) in (int, bool)
                         for t in node.targets if isinstance(t, ast.Name)}
        for call in (c for c in ast.walk(func) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)):
            if call.func.id not in interpreters | drivers:
                continue
            checked += 1
            for arg in call.args:
                if isinstance(arg, ast.Constant) and type(arg.value) in (int, bool):
                    literal_calls.add((func.name, call.func.id, arg.value))
                assert not (isinstance(arg, ast.Name) and arg.id in literal_names), (
                    f"{func.name} passes {arg.id}, assigned a literal, to {call.func.id} (line {arg.lineno})")
    assert checked > 15
    assert literal_calls == {("vjp_one", "reverse", 0), ("jvp_one", "tangent", 0),
                             ("batch_vjp", "reverse_batch", 0), ("batch_jvp", "tangent_batch", 0)}
