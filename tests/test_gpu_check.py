"""benchmarks/gpu_check.py runs its whole path on the CPU in the tiny configuration, so it cannot rot."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from test_benchmark_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_passes_end_to_end_on_the_cpu(tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    finished = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny"],
                              cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    for step in ("fit on cpu", "scoring after simulated out-of-memory", "saved on cpu, loaded on cpu", "pyfunc model (loaded on cpu)"):
        assert finished.stdout.count(f"] 30 features: {step}") == 1
        assert finished.stdout.count(f"] 512 features: {step}") == 1
    assert finished.stdout.count("[ok]") == 8
    assert "FAIL" not in finished.stdout and "all checks passed" in finished.stdout
    assert "| 1024 |" in finished.stdout


def test_gpu_check_reports_a_difference_beyond_the_tolerance():
    script = load_script("gpu_check")
    assert script.close(np.array([1.0, 2.0]), np.array([1.0, 2.001]), rtol=1e-3, atol=0.0)[0]
    ok, detail = script.close(np.array([1.0, 2.0]), np.array([1.0, 2.1]), rtol=1e-3, atol=1e-3)
    assert not ok and "0.1" in detail
    assert not script.close(np.array([1.0]), np.array([np.nan]), rtol=1.0, atol=1.0)[0]
