"""Quick start: fit AnomalyVAE on raw tabular data, threshold, explain, save, load.

Run from the repository root::

    python examples/quickstart.py

Uses the breast-cancer data shipped with scikit-learn (benign = normal,
malignant = anomaly), so nothing is downloaded.
"""

from pathlib import Path
from tempfile import TemporaryDirectory

from sklearn.metrics import roc_auc_score

import anomvae
from anomvae import AnomalyVAE
from anomvae.datasets import embedded_default, semi_supervised_split


def main() -> None:
    X, y = embedded_default()
    train, test = semi_supervised_split(y, random_state=0)
    detector = AnomalyVAE(random_state=0).fit(X.iloc[train])

    X_test, y_test = X.iloc[test], y[test]
    normality = detector.score_samples(X_test)
    print(f"ROC-AUC on held-out rows: {roc_auc_score(y_test, -normality):.3f}")
    flagged = detector.predict(X_test) == -1
    print(f"flagged {flagged.sum()} of {len(X_test)} rows "
          f"({flagged[y_test == 1].mean():.0%} of malignant, {flagged[y_test == 0].mean():.0%} of benign)")

    worst = X_test.iloc[[normality.argmin()]]
    contributions = detector.feature_scores(worst).iloc[0].sort_values(ascending=False)
    print("most anomalous row, top features:", ", ".join(contributions.index[:3]))

    with TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        detector.save(path)
        reloaded = anomvae.load(path)
        assert (reloaded.score_samples(X_test) == normality).all()
        print(f"saved and reloaded {path.name}: identical scores")


if __name__ == "__main__":
    main()
