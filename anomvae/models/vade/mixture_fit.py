"""Setting the mixture from the codes: the paper's GMM start, then one EM step per epoch."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from torch import Tensor

from .network import MIN_COMPONENT_VARIANCE, GaussianMixturePrior

MAX_MIXTURE_CODES = 4096
"""Training rows whose posteriors the mixture is fitted to, at most: enough
for a few dozen diagonal components, and it keeps each fit well under a second."""


def fit_mixture(codes: np.ndarray, code_variances: np.ndarray, n_components: int,
                seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and diagonal variances of a Gaussian mixture of the aggregate posterior.

    Jiang et al. (IJCAI 2017) start VaDE from a GMM fitted to the codes of a
    pretrained autoencoder; here scikit-learn's EM with k-means starts on
    the posterior means. A VAE's codes are distributions, not points: each
    component's variance is widened by the mean posterior variance of its
    rows (weighted by their responsibilities), so that the mixture matches
    the aggregate posterior ``q(z) = mean_x q(z | x)`` to second order.
    Fitted to the means alone, the components were far narrower than the
    posteriors, and the KL term jumped a hundredfold when the mixture took
    over from the standard normal. With fewer than two codes per component,
    the codes are repeated so that every component starts somewhere; EM's
    convergence on those is beside the point.

    Parameters
    ----------
    codes : ndarray of shape (n, D)
        Posterior means.
    code_variances : ndarray of shape (n, D)
        Posterior variances.
    n_components : int
    seed : int

    Returns
    -------
    weights : ndarray of shape (K,)
    means, variances : ndarray of shape (K, D)
    """
    codes, code_variances = (np.asarray(values, dtype=np.float64) for values in (codes, code_variances))
    if len(codes) < 2 * n_components:
        codes, code_variances = (np.resize(values, (2 * n_components, values.shape[1]))
                                 for values in (codes, code_variances))
    mixture = GaussianMixture(n_components, covariance_type="diag", reg_covar=MIN_COMPONENT_VARIANCE,
                              max_iter=100, n_init=4, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mixture.fit(codes)
    responsibilities = mixture.predict_proba(codes)
    spread = responsibilities.T @ code_variances / np.maximum(responsibilities.sum(axis=0), 1e-12)[:, None]
    return mixture.weights_, mixture.means_, mixture.covariances_ + spread


def mixture_step(prior: GaussianMixturePrior, codes: Tensor, code_variances: Tensor) -> None:
    """One EM step of the mixture on the current posteriors, in place.

    With the networks fixed, the VaDE ELBO is maximised over the prior's
    parameters in closed form: ``pi_k`` the mean responsibility,
    ``mu_k`` the responsibility-weighted mean of the posterior means, and
    ``sigma_k^2`` the weighted mean of ``var + (mean - mu_k)^2`` (Jiang et
    al. 2017 learn them by gradient; the exact update keeps the mixture on
    the codes however fast the encoder moves). Responsibilities are those of
    the current mixture at the posterior means.

    Parameters
    ----------
    prior : GaussianMixturePrior
    codes, code_variances : Tensor of shape (n, D)
        Posterior means and variances of training rows.
    """
    codes, code_variances = codes.to(prior.means.dtype), code_variances.to(prior.means.dtype)
    responsibilities = prior.responsibilities(codes)
    counts = responsibilities.sum(dim=0).clamp_min(torch.finfo(codes.dtype).tiny)
    means = responsibilities.T @ codes / counts[:, None]
    second_moments = responsibilities.T @ (code_variances + codes.pow(2)) / counts[:, None]
    variances = second_moments - means.pow(2)
    prior.assign(*(values.cpu().numpy() for values in (counts / counts.sum(), means, variances)))


COINCIDENT_DISTANCE = 0.5
"""Two components whose means lie closer than this (root mean square over the active code
dimensions, in units of their standard deviations) have coincided: EM moves them together from
then on and cannot part them."""

ACTIVE_VARIANCE = 0.01
"""A code dimension is active when its posterior means vary across rows by more than this
(Burda, Grosse & Salakhutdinov, ICLR 2016); the others carry no segment structure."""

SPLIT_EVIDENCE = 10.0
"""BIC margin by which two Gaussians must beat one before a pair is parted ("very strong"
evidence, Kass & Raftery, JASA 1995)."""


def split_coincident(prior: GaussianMixturePrior, codes: Tensor, code_variances: Tensor, seed: int) -> int:
    """Part coincident components whose rows form two clusters; returns how many pairs were parted.

    EM on a mixture is symmetric: two components that meet (early, while
    the codes of two segments still overlap) stay identical for good, and
    the segments they cover are one cohort even after the encoder has
    separated them (a 450-row table of three clear segments: cohort sizes
    0 / 169 / 281). For each coinciding pair, the codes the pair holds are
    fitted, on the active code dimensions only, with one and with two
    diagonal Gaussians; when the Bayesian information criterion prefers two
    by :data:`SPLIT_EVIDENCE`, the pair takes them on those dimensions
    (weights shared in proportion, variances widened by the rows' posterior
    variances as in :func:`fit_mixture`). Surplus components coinciding on
    one roughly Gaussian segment fail the test and are left as they are;
    where they pass it, they divide that segment between them, as surplus
    components do anyway. Where EM joins a parted pair again (wide codes
    whose posteriors overlap), the test parts it again the next epoch: on
    the three-segment table with 32 latent dimensions, cohorts that were
    all one (adjusted Rand index 0.0-0.46) came out at 0.59-0.99. This is a split step in
    the spirit of split-and-merge EM (Ueda, Nakano, Ghahramani & Hinton,
    Neural Computation 2000).

    Parameters
    ----------
    prior : GaussianMixturePrior
        Updated in place.
    codes, code_variances : Tensor of shape (n, D)
        Posterior means and variances of training rows.
    seed : int
        Seeds the two-component fits.
    """
    points = codes.detach().double().cpu().numpy()
    active = points.var(axis=0) > ACTIVE_VARIANCE
    if not active.any():
        return 0
    means = prior.means.detach().double().cpu().numpy()
    variances = np.exp(prior.log_variances.detach().double().cpu().numpy())
    weights = np.exp(prior.log_weights.detach().double().cpu().numpy())
    spreads = code_variances.detach().double().cpu().numpy()
    owner = prior.responsibilities(codes.to(prior.means.dtype)).argmax(dim=1).cpu().numpy()
    parted, taken = 0, set()
    for first in range(len(means)):
        for second in range(first + 1, len(means)):
            if first in taken or second in taken:
                continue
            unit = 0.5 * (np.sqrt(variances[first]) + np.sqrt(variances[second]))
            gap = (means[first] - means[second])[active] / unit[active]
            if np.sqrt(np.mean(gap ** 2)) >= COINCIDENT_DISTANCE:
                continue
            held = np.isin(owner, (first, second))
            if held.sum() < 8:
                continue
            rows = points[held][:, active]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                fits = [GaussianMixture(k, covariance_type="diag", reg_covar=MIN_COMPONENT_VARIANCE,
                                        n_init=2, random_state=seed).fit(rows) for k in (1, 2)]
            if fits[1].bic(rows) > fits[0].bic(rows) - SPLIT_EVIDENCE:
                continue
            pair = np.array([first, second])
            responsibilities = fits[1].predict_proba(rows)
            spread = responsibilities.T @ spreads[held][:, active] / np.maximum(
                responsibilities.sum(axis=0), 1e-12)[:, None]
            weights[pair] = weights[pair].sum() * fits[1].weights_
            means[np.ix_(pair, active)] = fits[1].means_
            variances[np.ix_(pair, active)] = fits[1].covariances_ + spread
            taken.update(pair.tolist())
            parted += 1
    if parted:
        prior.assign(weights, means, variances)
    return parted
