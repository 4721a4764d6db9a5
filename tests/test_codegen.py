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
