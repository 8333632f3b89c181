import sys, glob, os, time, json, warnings
import numpy as np, torch
warnings.filterwarnings("ignore")
torch.set_num_threads(1)
from sklearn.metrics import roc_auc_score
from anomvae import AnomalyVAE
from anomvae.datasets import load_npz, semi_supervised_split
from pyod.models.vae import VAE
from pyod.models.auto_encoder import AutoEncoder
from pyod.models.knn import KNN
which = sys.argv[1].split(",")
out = open(sys.argv[2], "a")
def make(name):
    return {"AnomalyVAE": lambda: AnomalyVAE(random_state=0),
            "PyOD-VAE": lambda: VAE(verbose=0, random_state=0, device="cpu"),
            "PyOD-AE": lambda: AutoEncoder(verbose=0, random_state=0, device="cpu"),
            "KNN": lambda: KNN()}[name]()
files = sorted(glob.glob('/work/shared/data/tabular/*.npz'), key=lambda f: os.path.getsize(f))
for f in files:
    X, y = load_npz(f)
    tr, te = semi_supervised_split(y, 0, 20000)
    for name in which:
        t = time.perf_counter()
        try:
            m = make(name).fit(X[tr])
            s = -m.score_samples(X[te]) if name == "AnomalyVAE" else m.decision_function(X[te])
            auc = roc_auc_score(y[te], s)
        except Exception as e:
            auc = float("nan"); print(name, f, e, file=sys.stderr)
        out.write(json.dumps({"data": os.path.basename(f), "det": name, "auc": auc, "sec": time.perf_counter()-t}) + "\n"); out.flush()
