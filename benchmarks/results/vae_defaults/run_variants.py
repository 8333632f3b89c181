"""Throw-away evidence script: AnomalyVAE variants over the shared tabular datasets.

Semi-supervised split, one JSON line per dataset and seed in ``<tag>.jsonl``;
``--latent-rule`` and ``--batch-rule`` are Python expressions in the input width
``d`` and the training-row count ``n``. Kept to show how README.md here was made.
"""
import argparse, ast, json, math, time, warnings, sys
from pathlib import Path
import numpy as np
from sklearn.metrics import roc_auc_score
import anomvae
from anomvae import AnomalyVAE, AnomalyVAEGAN, AnomalyAdVAE, AnomalyVAESVDD
from anomvae.datasets import load_npz, semi_supervised_split
import anomvae.nn.blocks as blocks
import torch
torch.set_num_threads(1)
p = argparse.ArgumentParser()
p.add_argument("--tag", required=True)
p.add_argument("--set", nargs="*", default=[])
p.add_argument("--seeds", nargs="*", type=int, default=[0])
p.add_argument("--datasets", nargs="*", default=None)
p.add_argument("--model", default="vae")
p.add_argument("--data", default="../shared/data/tabular")
p.add_argument("--latent-rule", default=None)  # python expr in d
p.add_argument("--hidden-rule", default=None)
p.add_argument("--batch-rule", default=None)  # expr in n
a = p.parse_args()
over = {}
for s in a.set:
    k, _, v = s.partition("=")
    try: v = ast.literal_eval(v)
    except Exception: pass
    over[k] = v
orig = blocks.default_architecture
def arch(shape):
    hidden, latent = orig(shape)
    d = shape if isinstance(shape, int) else math.prod(shape)
    if a.latent_rule: latent = int(eval(a.latent_rule, {"math": math, "d": d}))
    if a.hidden_rule: hidden = tuple(eval(a.hidden_rule, {"math": math, "d": d}))
    return hidden, latent
if a.latent_rule or a.hidden_rule:
    for mod in list(sys.modules.values()):
        if mod and getattr(mod, "default_architecture", None) is orig and mod.__name__.startswith("anomvae"):
            mod.default_architecture = arch
MODELS = {"vae": AnomalyVAE, "vaegan": AnomalyVAEGAN, "advae": AnomalyAdVAE, "svdd": AnomalyVAESVDD}
root = Path(a.data)
names = a.datasets or sorted(p.stem for p in root.glob("*.npz"))
out = Path(f"{a.tag}.jsonl")
done = set()
if out.exists():
    for line in out.read_text().splitlines():
        r = json.loads(line); done.add((r["dataset"], r["seed"]))
for name in names:
    X, y = load_npz(root / f"{name}.npz")
    for seed in a.seeds:
        if (name, seed) in done: continue
        tr, te = semi_supervised_split(y, random_state=seed, max_rows=20000)
        params = dict(over)
        if a.batch_rule:
            params["batch_size"] = int(eval(a.batch_rule, {"math": math, "n": len(tr)}))
        est = MODELS[a.model](random_state=seed, **params)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X[tr])
        fit = time.perf_counter() - t
        s = -est.score_samples(X[te])
        auc = roc_auc_score(y[te], s)
        rec = {"dataset": name, "seed": seed, "auc": auc, "fit": fit, "epochs": len(est.history_["epoch"])}
        if a.model == "vae":
            ftr = est.feature_scores(X[tr]); fte = est.feature_scores(X[te])
            rec["stdres"] = roc_auc_score(y[te], (fte / (ftr.mean(0) + 1e-6)).sum(1))
            rec["stdres_med"] = roc_auc_score(y[te], (fte / (np.median(ftr, 0) + 1e-6)).sum(1))
        with out.open("a") as f: f.write(json.dumps(rec) + "\n")
        print(rec, flush=True)
