"""Every script under examples/ runs to completion."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.name)
def test_example_runs(script, request):
    environment = dict(os.environ)
    if "shared_data_dir" in script.read_text():
        # It reads ../shared/data: skipped, with the reason, where that folder is absent (never in CI).
        environment["ANOMVAE_DATA"] = str(request.getfixturevalue("shared_data"))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            cwd=script.parents[1], env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip()
