"""The throughput suite: every width and detector measured, FLOPs counted from the layer shapes."""

import json

import pytest
import torch
from torch import nn

from anomvae.benchmark.throughput import matmul_flops
from anomvae.nn import linear_flops
from anomvae.cli import main


def test_linear_flops_counts_two_operations_per_weight():
    network = nn.Sequential(nn.Linear(10, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 3)))
    assert linear_flops(network) == 2 * (10 * 4 + 4 * 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_matmul_loop_measures_a_positive_rate_and_the_load(dtype):
    peak = matmul_flops(dtype, seconds=0.05, size=64)
    assert peak["flops"] > 0 and peak["load"] >= 0


def test_throughput_suite_reports_every_width_and_detector(tmp_path, capsys):
    out = tmp_path / "throughput"
    assert main(["bench", "--suite", "throughput", "--widths", "4,40", "--rows", "64",
                 "--epochs", "1", "--threads", "1", "--out", str(out)]) == 0
    result = json.loads((out / "throughput.json").read_text())
    assert [(cell["n_features"], cell["n_rows"]) for cell in result["cells"]] == [(4, 64), (40, 64)]
    assert set(result["matmul"]) == {"float32", "float64", "bfloat16"}
    for cell in result["cells"]:
        assert set(cell["detectors"]) == {"AnomalyVAE", "AnomalyVAE-float32", "PyOD-AutoEncoder", "PyOD-VAE"}
        assert all(figures["score_rows_per_second"] > 0 for figures in cell["detectors"].values())
        assert cell["detectors"]["AnomalyVAE"]["flops_per_row"]["network"] > 0
        assert cell["matmul_fraction"] > 0
    report = (out / "throughput.md").read_text()
    assert "PyOD-AutoEncoder" in report and "of its matmul peak" in report and "anomvae bench" in result["command"]


def test_throughput_suite_rejects_a_malformed_width_list(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--suite", "throughput", "--widths", "30,wide"])
    assert "comma-separated integers" in capsys.readouterr().err
