"""Data-parallel fit: 2 CPU processes over gloo, launched by torchrun, through the same engine."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import anomvae
from anomvae import AnomalyVAE
from anomvae.parallel import fit_distributed

SCRIPT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import torch.distributed as dist
    from anomvae import AnomalyVAE
    from anomvae.parallel import fit_distributed

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    rows = np.load(sys.argv[1])["train"]
    detector = fit_distributed(AnomalyVAE(epochs=5, random_state=0), rows[rank::world])
    np.save(f"{sys.argv[2]}/offset-{rank}.npy", detector.offset_)
    if dist.get_rank() == 0:
        detector.save(f"{sys.argv[2]}/model.safetensors")
    dist.barrier()  # no rank tears the group down while another still uses it
    dist.destroy_process_group()
""")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(8, 8))
    test = rng.normal(size=(1000, 8)) @ mixing
    test[:50] = rng.normal(size=(50, 8)) * 8
    np.savez(folder / "data.npz", train=rng.normal(size=(4000, 8)) @ mixing, test=test)
    return folder


GLOO_TEARDOWN_ABORT = "terminate called without an active exception"
"""What a gloo process prints when a C++ thread outlives it at exit. Seen once in about ten
loaded runs, after the script's own work; a launch that ends so is run once more."""


def torchrun(folder, name: str, script: str) -> None:
    """Run ``script`` as ``folder/name`` in two gloo processes on ``folder/data.npz``; it must succeed."""
    (folder / name).write_text(script)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
              str(folder / name), str(folder / "data.npz"), str(folder)]
    result = subprocess.run(launch, capture_output=True, text=True, timeout=300)
    if result.returncode != 0 and GLOO_TEARDOWN_ABORT in result.stderr:
        result = subprocess.run(launch, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_gloo_processes_train_one_model_as_good_as_a_single_process_fit(shared):
    torchrun(shared, "train.py", SCRIPT)

    assert sorted(path.name for path in shared.glob("*.safetensors")) == ["model.safetensors"]
    assert np.load(shared / "offset-0.npy") == np.load(shared / "offset-1.npy")
    data = np.load(shared / "data.npz")
    truth = np.r_[np.ones(50), np.zeros(950)]
    distributed = anomvae.load(shared / "model.safetensors", device="cpu")
    single = AnomalyVAE(epochs=5, random_state=0).fit(data["train"])
    distributed_auc = roc_auc_score(truth, distributed.anomaly_score(data["test"]))
    assert abs(distributed_auc - roc_auc_score(truth, single.anomaly_score(data["test"]))) < 0.01
    # the threshold is calibrated on both ranks' held-out rows: 200 each
    assert distributed.reference_scores_.shape == (400,) and distributed.reference_source_ == "held-out"


UNEQUAL_SHARDS = textwrap.dedent("""
    import os, sys
    import numpy as np
    import torch.distributed as dist
    from anomvae import AnomalyVAE, AnomalyVaDE
    from anomvae.parallel import fit_distributed

    rank = int(os.environ["RANK"])
    rows = np.load(sys.argv[1])["train"]
    first, second, estimator = {first}, {second}, {estimator}
    shard = rows[:first] if rank == 0 else rows[first:first + second]
    detector = fit_distributed(estimator, shard)
    np.save(f"{{sys.argv[2]}}/{name}-offset-{{rank}}.npy", detector.offset_)
    np.save(f"{{sys.argv[2]}}/{name}-warmup-{{rank}}.npy", getattr(detector.scorer_, "warmup_epochs", -1))
    dist.barrier()
    dist.destroy_process_group()
""")
"""Two ranks fitting ``estimator`` on shards of ``first`` and ``second`` rows; each saves its offset."""


@pytest.mark.parametrize("name, second, estimator", [
    # Review finding: the rank with no validation rows (6 rows) skipped the validation
    # all-reduce, and the other rank waited in it forever.
    ("small", 6, "AnomalyVAE(epochs=3, random_state=0)"),
    # Review finding: VaDE sized its "auto" warm-up from each rank's shard (60 and 75 epochs),
    # the ranks stopped at different epochs and one waited in a collective forever.
    ("vade", 500, "AnomalyVaDE(epochs=70, patience=2, random_state=0)"),
])
def test_unequal_shards_train_to_the_end_on_every_rank(shared, name, second, estimator):
    torchrun(shared, f"{name}.py", UNEQUAL_SHARDS.format(first=600, second=second, estimator=estimator, name=name))
    assert np.load(shared / f"{name}-offset-0.npy") == np.load(shared / f"{name}-offset-1.npy")
    # Review finding: VaDE's warm-up also came from each rank's shard, so its mixture was fitted
    # at a different epoch on each rank; it now counts the training rows of both ranks.
    assert np.load(shared / f"{name}-warmup-0.npy") == np.load(shared / f"{name}-warmup-1.npy")


MISMATCHED = textwrap.dedent("""
    import os, sys
    import numpy as np
    import pandas as pd
    import torch.distributed as dist
    from anomvae import AnomalyVAE
    from anomvae.parallel import fit_distributed

    rank = int(os.environ["RANK"])
    rows = pd.DataFrame(np.load(sys.argv[1])["train"][:400], columns=list("abcdefgh"))
    if rank == 1:
        rows = {change}
    try:
        fit_distributed(AnomalyVAE(epochs=2, latent_dim={latent}, random_state=0), rows)
    except ValueError as error:
        open(f"{{sys.argv[2]}}/{name}-error-{{rank}}.txt", "w").write(str(error))
    dist.barrier()
    dist.destroy_process_group()
""")


@pytest.mark.parametrize("name, change, latent, message", [
    ("extra", "rows.assign(extra=1.0)", "2", "columns: ["),
    ("order", "rows[list(reversed(rows.columns))]", "2", "columns: ["),
    ("params", "rows", "3 if rank == 1 else 2", "latent_dim: 2 on rank 0, 3 on rank 1"),
])
def test_ranks_that_differ_are_refused_on_every_rank_naming_the_difference(shared, name, change, latent, message):
    # Review finding: an extra column on one rank gave a NaN error about that column on both,
    # reordered columns a gloo "connection closed", another latent_dim a state_dict size mismatch.
    torchrun(shared, f"{name}.py", MISMATCHED.format(change=change, latent=latent, name=name))
    for rank in (0, 1):
        error = (shared / f"{name}-error-{rank}.txt").read_text()
        assert "every rank must fit the same estimator" in error and message in error


def test_setups_that_differ_only_in_form_or_rank_local_settings_agree():
    from anomvae.parallel import _setup
    from anomvae.python_values import comparable_setting, same_setting

    rows = np.zeros((5, 3))
    first = _setup(AnomalyVAE(hidden_dims=(64, 32), contamination=0.1, device="cuda:0"), rows)
    second = _setup(AnomalyVAE(hidden_dims=[64, 32], contamination=np.float64(0.1), device="cuda:1", verbose=True), rows)
    assert all(same_setting(first["parameters"][name], second["parameters"][name]) for name in first["parameters"])
    assert not same_setting(comparable_setting(2), comparable_setting(np.int64(3)))


def test_fit_distributed_outside_a_launcher_says_how_to_launch(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        fit_distributed(AnomalyVAE(), np.zeros((10, 2)))


SHARD_CHECKS = textwrap.dedent("""
    import os, sys
    import numpy as np
    import pandas as pd
    import torch.distributed as dist
    import anomvae.parallel
    from anomvae import AnomalyVAE
    from anomvae.parallel import fit_distributed

    anomvae.parallel.SAMPLE_ROWS = 100  # 50 sampled rows per rank: most of a 400-row shard is never sampled
    rank = int(os.environ["RANK"])
    rows = pd.DataFrame(np.load(sys.argv[1])["train"][:400, :3], columns=list("abc"))
    rows["k"] = "common"
    images = np.random.default_rng(rank).integers(0, 256, (400, 4, 4))
    cases = {
        "empty": rows.iloc[:0] if rank == 1 else rows,
        "nan": rows.assign(c=np.where(np.arange(400) == 300, np.nan, rows["c"])) if rank == 1 else rows,
        "bool": rows.assign(c=rows["c"] > 0) if rank == 1 else rows,
        "rare": rows.assign(k=np.where(np.arange(400) % 97 == 5, "rare", "common")) if rank == 1 else rows,
        # A review's finding: images were not checked, and a pixel the 0-255 scale refuses hung the other rank.
        "negative": np.where(np.arange(400)[:, None, None] == 300, -5, images) if rank == 1 else images,
    }
    for name, shard in cases.items():
        try:
            detector = fit_distributed(AnomalyVAE(epochs=1, random_state=0), shard)
            found = ",".join(detector.encoder_.categories["k"]) if name == "rare" else "fitted"
        except (TypeError, ValueError) as error:
            found = f"{type(error).__name__}: {error}"
        open(f"{sys.argv[2]}/shard-{name}-{rank}.txt", "w").write(found)
    dist.barrier()
    dist.destroy_process_group()
""")


def test_a_bad_shard_is_refused_on_every_rank_before_training(shared):
    # New-user findings: an empty shard, or a NaN outside the gathered sample, raised on one rank only and
    # the other waited in a collective forever; a column numeric on one rank and boolean on the other was
    # re-typed; a category only outside the sample was merged into "unseen"; rows were numbered in the sample.
    torchrun(shared, "shards.py", SHARD_CHECKS)
    expected = {
        "empty": "ValueError: fit_distributed: rank 1's shard: no rows",
        "nan": "ValueError: fit_distributed: rank 1's shard: Input X contains NaN in row 300, column c",
        "negative": "ValueError: fit_distributed: rank 1's shard: image pixels go down to -5",
        "bool": "TypeError: fit_distributed: column 'c' holds numeric values on rank 0, boolean values on rank 1",
        "rare": "common,rare",
    }
    for name, start in expected.items():
        for rank in (0, 1):
            assert (shared / f"shard-{name}-{rank}.txt").read_text().startswith(start), name
