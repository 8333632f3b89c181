"""AnomalyCVAE score variants on the contextual benchmark, read off the same fits.

For each table and seed of ``benchmarks/contextual.py`` (same data, same
splits), one AnomalyCVAE is fitted with its defaults and every variant below
is computed from that network: training does not depend on the score, so
the comparison is between scores on identical networks. The variant
``default`` must equal ``anomaly_score`` (checked), which ties this script to
the benchmark's figures. Terms, each computed as in
:class:`~anomvae.models.cvae.scorer.CVAEScorer`:

``cond``
    the conditional ``"reconstruction+knn"`` score after the credibility
    scaling;
``C``
    the context contrast (negative ELBO given the context minus that given
    the unknown context), floored and divided as the default does;
``U``
    the ``"reconstruction+knn"`` score under the unknown context (the
    marginal model, a global-outlier detector), divided by its training
    median;
``Ciw``
    the contrast with importance-weighted likelihoods (Burda et al., ICLR
    2016), 16 fixed standard-normal draws shared by all rows;
``Cbayes``
    the contrast against the mixture of the training contexts,
    ``-log p(x | c) + log sum_c' p(c') p(x | c')`` (Bayes' rule over the
    conditional model instead of the learnt unknown-context model), with
    ELBOs, or with importance-weighted likelihoods (``Cbayes_iw``);
``Z``
    the credibility weight ``n_c / (n_c + k)`` of the row's context
    (:mod:`~anomvae.models.cvae.context_scale`), from the conditional score
    before the scaling, on the training sample.

Training-row statistics (medians, quantiles, floors) come from 1,024 rows of
the training set drawn with a fixed seed.

Run from the repository root::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 5 python benchmarks/contextual_levers.py --seeds 0 1
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
import contextual  # noqa: E402  (the benchmark beside this file: its tables and its measure)

from anomvae import AnomalyCVAE  # noqa: E402
from anomvae.datasets import shared_data_dir  # noqa: E402
from anomvae.nn.latent_density import reconstruction_plus_knn, reference_and_scales, reference_rows  # noqa: E402
from anomvae.nn.vae_losses import gaussian_kl, sum_per_row  # noqa: E402
from anomvae.models.cvae.context_scale import row_factors  # noqa: E402

IMPORTANCE_SAMPLES = 16


def log_likelihood(scorer, x, c, draws: torch.Tensor) -> torch.Tensor:
    """Importance-weighted estimate of log p(x | c) under the calibrated Gaussian, float64, shape ``(n,)``."""
    mean, log_variance = scorer.network.encode(x, c)
    keep = ~scorer.layout.context_mask
    variance = scorer.noise_variance.double()
    terms = []
    for draw in draws[:, : mean.shape[1]]:
        z = mean + torch.exp(0.5 * log_variance) * draw
        squared = (x - scorer.network.decode(z, c))[:, keep].double().pow(2).sum(1)
        log_px = -squared / (2 * variance) - 0.5 * keep.sum() * torch.log(2 * math.pi * variance)
        log_prior = -0.5 * z.double().pow(2).sum(1)
        log_posterior = (-0.5 * draw.double().pow(2) - 0.5 * log_variance.double()).sum(1)
        terms.append(log_px + log_prior - log_posterior)
    return torch.logsumexp(torch.stack(terms), 0) - math.log(len(draws))


def negative_elbo(scorer, x, c) -> torch.Tensor:
    mean, log_variance = scorer.network.encode(x, c)
    squared = scorer._errors(x, scorer.network.decode(mean, c)).pow(2)
    return scorer._negative_elbo(gaussian_kl(mean, log_variance), squared)


def components(detector, frame: pd.DataFrame, marginal_reference, contexts, log_prior, draws) -> dict:
    """Every term of every variant for the rows of ``frame``, as float64 arrays."""
    scorer = detector.scorer_
    batch = torch.from_numpy(detector.encoder_.transform(frame)).to(scorer.dtype)
    with torch.no_grad():
        posterior = scorer._posterior(batch)
        unknown = scorer._posterior(batch, unknown_context=True)
        keys = scorer._context_keys(batch)
        x, c = scorer._inputs(batch, drop=False)
        c_unknown = scorer.layout.context(batch, torch.ones(len(batch), dtype=torch.bool))
        mixture = [(negative_elbo(scorer, x, cell.expand(len(x), -1)),
                    -log_likelihood(scorer, x, cell.expand(len(x), -1), draws)) for cell in contexts]
        terms = {
            "cond_raw": scorer._conditional_score(posterior),
            "cond": scorer._conditional_score(posterior) / row_factors(keys, scorer.context_cells,
                                                                      scorer.context_factors),
            "C": scorer.context_contrast(batch, posterior),
            "U": reconstruction_plus_knn(sum_per_row(unknown[2].double()), unknown[0], *marginal_reference,
                                         scorer.n_neighbors),
            "Ciw": log_likelihood(scorer, x, c_unknown, draws) - log_likelihood(scorer, x, c, draws),
            "Cbayes": negative_elbo(scorer, x, c) + torch.logsumexp(
                log_prior - torch.stack([elbo for elbo, _ in mixture], 1), 1),
            "Cbayes_iw": -log_likelihood(scorer, x, c, draws) + torch.logsumexp(
                log_prior - torch.stack([iw for _, iw in mixture], 1), 1),
            "default": scorer.anomaly_score(batch),
            "keys": keys,
        }
    return {name: value.double().numpy() if name != "keys" else value.numpy() for name, value in terms.items()}


def credibility_weights(keys: np.ndarray, scores: np.ndarray) -> dict:
    """Buhlmann's ``n_c / (n_c + k)`` per context key, from training keys and scores."""
    cells, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, scores) / counts
    within = np.bincount(inverse, (scores - means[inverse]) ** 2).sum() / max((counts - 1).sum(), 1)
    total = counts.sum()
    between = (((counts * (means - scores.mean()) ** 2).sum() - (len(counts) - 1) * within)
               / (total - (counts ** 2).sum() / total))
    return dict(zip(cells, counts / (counts + within / max(between, 1e-12))))


def variants(train: dict, floor: float, scale: float) -> dict:
    """Variant name -> function of a components dict -> anomaly score (higher = more anomalous)."""
    def floored(name):  # floored at its training 5% quantile (at most 0), divided by its median |value|
        low = min(np.quantile(train[name], 0.05), 0.0)
        divisor = np.median(np.abs(train[name]))
        return lambda d: np.maximum(d[name], low) / divisor

    def standardised(name):
        centre = np.median(train[name])
        spread = np.median(np.abs(train[name] - centre))
        return lambda d: (d[name] - centre) / spread

    contrast = lambda d: np.maximum(d["C"], floor) / scale  # noqa: E731  (exactly the default's term)
    iw, bayes, bayes_iw = floored("Ciw"), floored("Cbayes"), floored("Cbayes_iw")
    marginal = lambda d: d["U"] / np.median(train["U"])  # noqa: E731
    cond_s, contrast_s = standardised("cond"), standardised("C")
    weights = credibility_weights(train["keys"], train["cond_raw"])
    z = lambda d: np.array([weights.get(key, 0.0) for key in d["keys"]])  # noqa: E731

    def gated(quantile):  # the contrast's negative part dropped for rows above this training quantile of cond
        threshold = np.quantile(train["cond"], quantile)
        return lambda d: d["cond"] + 2 * np.where(d["cond"] > threshold, np.maximum(contrast(d), 0), contrast(d))

    return {
        "default: cond + 2 C": lambda d: d["cond"] + 2 * contrast(d),
        "cond alone": lambda d: d["cond"],
        "C alone": contrast,
        "U alone": marginal,
        "cond + 4 C": lambda d: d["cond"] + 4 * contrast(d),
        "cond + 2 C + 0.5 U": lambda d: d["cond"] + 2 * contrast(d) + 0.5 * marginal(d),
        "cond + 2 C + 1 U": lambda d: d["cond"] + 2 * contrast(d) + marginal(d),
        "max(cond, U) + 2 C": lambda d: np.maximum(d["cond"], marginal(d)) + 2 * contrast(d),
        "cond + 2 max(C, 0)": lambda d: d["cond"] + 2 * np.maximum(d["C"], 0) / scale,
        "gate: C >= 0 above cond's 95%": gated(0.95),
        "gate: C >= 0 above cond's 99%": gated(0.99),
        "max(cond, C) standardised": lambda d: np.maximum(cond_s(d), contrast_s(d)),
        "max(cond, C) standardised + 2 C": lambda d: np.maximum(cond_s(d), contrast_s(d)) + 2 * contrast(d),
        "cond + 2 Ciw": lambda d: d["cond"] + 2 * iw(d),
        "cond + 3 Ciw": lambda d: d["cond"] + 3 * iw(d),
        "cond + 4 Z C": lambda d: d["cond"] + 4 * z(d) * contrast(d),
        "cond + (2 + 2 Z) C": lambda d: d["cond"] + (2 + 2 * z(d)) * contrast(d),
        "Cbayes alone": bayes,
        "cond + 2 Cbayes": lambda d: d["cond"] + 2 * bayes(d),
        "cond + 4 Cbayes": lambda d: d["cond"] + 4 * bayes(d),
        "cond + 2 C + 2 Cbayes": lambda d: d["cond"] + 2 * contrast(d) + 2 * bayes(d),
        "cond + 2 C + 2 Cbayes_iw": lambda d: d["cond"] + 2 * contrast(d) + 2 * bayes_iw(d),
    }


def evaluate(tables: list[str], seeds: list[int]) -> pd.DataFrame:
    """One row per (table, seed, variant): contextual and global ROC-AUC, rare-context false-alarm ratio."""
    records = []
    draws = torch.randn(IMPORTANCE_SAMPLES, 256, generator=torch.Generator().manual_seed(0))
    for table in tables:
        for seed in seeds:
            if table in contextual.GENERATED:
                train, test, swapped, global_ = contextual.merchants(seed + contextual.GENERATED[table])
            else:
                train, test, swapped, global_ = contextual.swapped_table(
                    shared_data_dir() / "tabular" / f"{table}.npz", seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                detector = AnomalyCVAE(context=["ctx"], epochs=100, random_state=seed).fit(train)
            scorer = detector.scorer_
            rows = torch.from_numpy(detector.encoder_.transform(train)).to(scorer.dtype)
            with torch.no_grad():
                torch.manual_seed(0)
                unknown = scorer._posterior(reference_rows(rows), unknown_context=True)
                marginal_reference = reference_and_scales(unknown[0], sum_per_row(unknown[2].double()),
                                                          scorer.n_neighbors)
                contexts, counts = torch.unique(scorer._inputs(rows, drop=False)[1], dim=0, return_counts=True)
            log_prior = (counts.double() / counts.sum()).log()
            sample = train.iloc[np.random.default_rng(0).permutation(len(train))[:1024]]
            parts = {name: components(detector, frame, marginal_reference, contexts, log_prior, draws)
                     for name, frame in (("train", sample), ("test", test), ("swapped", swapped),
                                         ("global", global_))}
            names = {id(test): "test", id(swapped): "swapped", id(global_): "global"}
            np.testing.assert_allclose(parts["test"]["default"], detector.anomaly_score(test), rtol=1e-5)
            for name, score in variants(parts["train"], scorer.contrast_floor.item(),
                                        scorer.contrast_scale.item()).items():
                figures = contextual.measure(lambda frame: score(parts[names[id(frame)]]), test, swapped, global_)
                records.append({"table": table, "seed": seed, "variant": name, **figures})
            print(f"{table} seed {seed} done", file=sys.stderr, flush=True)
    return pd.DataFrame(records)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=list(contextual.PARTS["development"]))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    args = parser.parse_args()
    results = evaluate(args.tables, args.seeds)
    columns = ["contextual_auc", "global_auc", "rare_false_alarm_ratio"]
    per_table = results.groupby(["variant", "table"], sort=False)[columns].mean()
    mean = per_table.groupby("variant", sort=False).mean()
    print("| variant | contextual ROC-AUC | global ROC-AUC | rare/overall false alarms |")
    print("|---|---|---|---|")
    for variant, row in mean.iterrows():
        print(f"| {variant} | {row.contextual_auc:.3f} | {row.global_auc:.3f} | {row.rare_false_alarm_ratio:.2f} |")
    print()
    print(per_table.round(4).unstack("table").to_string())
    print()
    print(mean.round(4).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
