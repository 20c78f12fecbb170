import os

import pytest
from hypothesis import HealthCheck, settings

# CI keeps the property tests bounded (and deterministic); locally they explore more.
settings.register_profile("ci", max_examples=15, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def cpu_flags() -> set:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere), for level-specific tests."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_levels() -> list:
    """The kernel levels (MNN_CPU_LEVEL values) this machine can run, lowest first."""
    levels = ["generic"]
    if {"avx2", "fma"} <= cpu_flags():
        levels.append("avx2")
        if "avx512f" in cpu_flags():
            levels.append("avx512")
    return levels


@pytest.fixture(params=cpu_levels())
def cpu_level(request):
    """Runs the test at one CPU level (MNN_CPU_LEVEL is read on every kernel call); plans are
    cleared around it."""
    import mnn_expr as F

    before = os.environ.get("MNN_CPU_LEVEL")
    os.environ["MNN_CPU_LEVEL"] = request.param
    F.clear_plan_cache()
    yield request.param
    F.clear_plan_cache()
    if before is None:
        os.environ.pop("MNN_CPU_LEVEL", None)
    else:
        os.environ["MNN_CPU_LEVEL"] = before
