import sys, glob, os, time, json, warnings
import numpy as np, torch
warnings.filterwarnings("ignore")
torch.set_num_threads(1)
from sklearn.metrics import roc_auc_score
from anomvae import AnomalyVAE
from anomvae.models.vae.scorer import VAEScorer
from anomvae.models.vae import estimator as est
from anomvae.models.vae.losses import gaussian_kl, sum_per_row
from anomvae.datasets import load_npz, semi_supervised_split

class Calibrated(VAEScorer):
    def elbo_terms(self, x):
        output, mean, log_variance = self.network(x)
        se = sum_per_row((x - output).pow(2))
        var = (se.mean() / x[0].numel()).clamp_min(1e-6)
        nll = 0.5 * se / var + 0.5 * x[0].numel() * var.log()
        return nll, gaussian_kl(mean, log_variance)

class CalVAE(AnomalyVAE):
    def _make_scorer(self, input_shape, image):
        s = super()._make_scorer(input_shape, image)
        s.__class__ = Calibrated
        return s

configs = {
  "default": lambda: AnomalyVAE(random_state=0),
  "full100": lambda: AnomalyVAE(random_state=0, patience=None),
  "beta0.1": lambda: AnomalyVAE(random_state=0, patience=None, beta=0.1),
  "cal": lambda: CalVAE(random_state=0),
  "cal_full": lambda: CalVAE(random_state=0, patience=None),
}
which = sys.argv[1].split(",")
out = open(sys.argv[2], "a")
files = sorted(glob.glob('/work/shared/data/tabular/*.npz'), key=lambda f: os.path.getsize(f))
for f in files:
    X, y = load_npz(f)
    tr, te = semi_supervised_split(y, 0, 20000)
    for name in which:
        t = time.perf_counter()
        try:
            m = configs[name]().fit(X[tr])
            auc = roc_auc_score(y[te], -m.score_samples(X[te]))
            ep = len(m.history_["epoch"])
        except Exception as e:
            auc = float("nan"); ep = 0; print(name, f, e, file=sys.stderr)
        out.write(json.dumps({"data": os.path.basename(f), "det": name, "auc": auc, "epochs": ep, "sec": time.perf_counter()-t}) + "\n"); out.flush()
