"""The CUDA code generator and the device switch, checked in the main (CPU-only) test process."""
import subprocess
import sys

import numpy as np
import pytest

import numbad as nb
from numbad.cuda import CudaUnavailable, codegen


def test_generated_cuda_module_is_up_to_date():
    current = codegen.TARGET.read_text()
    assert current == codegen.generate(), (
        "numbad/cuda/_generated.py is stale: run `python -m numbad.cuda.codegen` and commit it")


def test_every_op_has_cuda_code():
    from numbad.ops import OPS
    text = codegen.TARGET.read_text()
    forward = text[text.index("def ens_forward_op("):text.index("def ens_reverse_op(")]
    for op in OPS.values():
        if op.kind in codegen.HOST_ONLY_KINDS:         # (test_views: nb.record never makes them)
            continue
        assert op.kind in codegen.KINDS, f"{op.name}: op kind {op.kind!r} has no CUDA code"
        assert f"code == {op.code}:  # {op.name}" in forward, op.name
        if op.kind in ("elementwise", "nondiff"):
            assert f"def fw_{op.name}(" in text, op.name
        if op.kind == "elementwise":
            assert f"def tg_{op.name}(" in text, op.name
            for k, d in enumerate(op.partials):
                assert (f"def rv_{op.name}_{k}(" in text) == (d is not None), (op.name, k)


def test_importing_numbad_needs_no_cuda():
    code = "import sys, numbad; assert 'numba.cuda' not in sys.modules, 'numba.cuda was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_devices_are_refused():
    tape = nb.record(lambda x: np.sum(x * x), np.ones(3))
    for call in (lambda: tape.to("gpu"), lambda: nb.vjp(np.sum, np.ones(3), device="GPU"),
                 lambda: tape.batch_vjp(np.ones((2, 3)), np.ones(2), device=0)):
        with pytest.raises(ValueError, match="the valid devices are 'cpu', 'cuda'"):
            call()


def test_cuda_without_a_gpu_says_why():
    from numba import cuda
    from numba.core import config
    if config.ENABLE_CUDASIM or cuda.is_available():
        pytest.skip("CUDA can run in this process (a GPU or the simulator): nothing to refuse")
    tape = nb.record(lambda x: np.sum(x * x), np.ones(3))
    for call in (lambda: tape.to("cuda"), lambda: nb.vjp(lambda x: np.sum(x), np.ones(3), device="cuda"),
                 lambda: nb.record(np.sum, np.ones(3), device="cuda"),
                 lambda: tape.batch_vjp(np.ones((2, 3)), np.ones(2), device="cuda")):
        with pytest.raises(CudaUnavailable, match="device='cuda' cannot run here: .*(driver|GPU|device)"):
            call()
    assert tape.vjp(np.ones(3))[1].tolist() == [2.0, 2.0, 2.0], "the CPU is untouched"


def test_a_cuda_target_that_fails_to_load_says_why(monkeypatch):
    # Seen on an H200: numba-cuda's lowering failed to import under numpy 2.5 (np.row_stack
    # is gone); require() reports it as CudaUnavailable, not from inside a kernel launch.
    import numbad.cuda as nc
    from numba import cuda

    def fails():
        raise AttributeError("module 'numpy' has no attribute 'row_stack'")
    monkeypatch.setattr(nc, "_cuda", None)
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(nc, "simulated", lambda: False)
    monkeypatch.setattr(nc, "_load_target", fails)
    with pytest.raises(CudaUnavailable, match=r"CUDA target failed to load \(AttributeError: module "
                                              r"'numpy' has no attribute 'row_stack'\) with numpy "
                                              + np.__version__.replace(".", r"\.")):
        nc.require()
    assert nc._cuda is None, "nothing is kept: the next call asks again"


def test_the_cuda_target_loads_where_numba_has_one():
    from numbad.cuda import _load_target
    _load_target()          # (numba's registries: no GPU needed, and no error where they load)

