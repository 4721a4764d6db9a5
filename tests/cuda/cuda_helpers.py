"""Comparison of CUDA results with the CPU sweeps, shared by the CUDA tests."""
import numpy as np


def simulated():
    from numba.core import config
    return bool(config.ENABLE_CUDASIM)


def assert_matches(actual, expected, exact=False, rtol=1e-12, what=""):
    """CUDA results against the CPU sweeps: bit for bit where ``exact`` (under the simulator:
    a real GPU contracts ``a * b + c`` into fused multiply-adds), else to ``rtol``."""
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected), what
        for k, (a, e) in enumerate(zip(actual, expected)):
            assert_matches(a, e, exact, rtol, f"{what}[{k}]")
        return
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if exact and simulated():
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        scale = np.max(np.abs(expected[np.isfinite(expected)]), initial=1.0)
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale * 1e-3,
                                   equal_nan=True, err_msg=what)
