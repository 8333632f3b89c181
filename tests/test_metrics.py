"""anomvae.metrics: label-based scoring with y = 1 for anomalies."""

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

from anomvae import AnomalyVAE
from anomvae.thresholds import Contamination
from anomvae.datasets import load_npz
from anomvae.metrics import SCORERS, check_labels, outlier_average_precision, outlier_roc_auc


@pytest.fixture
def labelled(blobs):
    normal, outliers = blobs
    X = np.vstack([normal, outliers, outliers + 0.5])
    y = np.r_[np.zeros(len(normal)), np.ones(2 * len(outliers))].astype(int)
    return X, y


def test_scores_rank_anomalies_by_anomaly_score(labelled):
    X, y = labelled
    forest = IsolationForest(random_state=0).fit(X)
    assert outlier_roc_auc(forest, X, y) == roc_auc_score(y, -forest.score_samples(X)) > 0.9
    assert outlier_average_precision(forest, X, y) > 0.8


def test_grid_search_picks_the_best_setting_not_the_worst(labelled, fast_params):
    X, y = labelled
    # Unscaled, one feature 1000x larger than the others drowns the rest of the row.
    X = X * np.r_[1000.0, np.ones(X.shape[1] - 1)]
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    grid = {"scaling": ["standard", "none"]}
    # Ranking does not depend on the threshold: a training-quantile one skips the cross-fitting.
    base = AnomalyVAE(threshold=Contamination(0.1, n_bootstrap=0), **{**fast_params, "epochs": 20})
    right = GridSearchCV(base, grid, scoring=outlier_roc_auc, cv=folds).fit(X, y)
    upside_down = GridSearchCV(base, grid, scoring="roc_auc", cv=folds).fit(X, y)
    ours = right.cv_results_["mean_test_score"]
    assert right.best_params_ == {"scaling": "standard"} and ours[0] > ours[1]
    np.testing.assert_allclose(upside_down.cv_results_["mean_test_score"], 1 - ours)
    assert upside_down.best_params_ == {"scaling": "none"}


def test_scorers_by_name_work_with_cross_validation(labelled):
    X, y = labelled
    scores = cross_val_score(IsolationForest(random_state=0), X, y, scoring=SCORERS["outlier_roc_auc"],
                             cv=StratifiedKFold(3, shuffle=True, random_state=0))
    assert scores.min() > 0.8


@pytest.mark.parametrize("y, message", [([1, -1, 1], "for scikit-learn.s .1/-1 convention"), ([0, 0, 0], "both anomalies")])
def test_bad_labels_are_refused(labelled, y, message):
    X, _ = labelled
    forest = IsolationForest(random_state=0).fit(X)
    with pytest.raises(ValueError, match=message):
        outlier_roc_auc(forest, X[:3], y)


@pytest.mark.parametrize("y, message", [
    ([0, 1, 0.5], r"t.csv: 'y': labels must be 1 \(anomaly\) or 0 \(normal\), or true/false; got \[0.5\], first at row 2"),
    (np.array([0, 2, 1]), r"got \[2\], first at row 1; map your labels"),
    (["0", "anomaly"], r"got \['anomaly'\], first at row 1"),
    ([0, None, 1], r"t.csv: 'y': labels must not be missing: row 1 has none \(1 in all\)"),
    (np.array([0.0, np.nan]), "row 1 has none"),
    (np.arange(10), r"got 8 distinct values such as \[2, 3, 4, 5\], first at row 2"),
])
def test_check_labels_names_where_and_the_first_bad_row(y, message):
    with pytest.raises(ValueError, match=message):
        check_labels(y, "t.csv: 'y'")


def test_check_labels_reads_the_text_a_csv_delivers():
    # A review's findings: "1.00" (report reads unused CSV columns as text) and the bytes of an .npz were refused.
    np.testing.assert_array_equal(check_labels([" 1", "0.0", "TRUE", False, 1.0, "1.00", b"0", b"1"]),
                                  [1, 0, 1, 0, 1, 1, 0, 1])
    with pytest.raises(ValueError, match="line 3 has none"):
        check_labels(["0", " "], row_name=lambda row: f"line {row + 2}")
    with pytest.raises(ValueError, match=r"got \['anomalous_row_with_l\.\.\., 'normal'\]"):
        check_labels(["anomalous_row_with_long_name", "normal"])


def test_load_npz_refuses_labels_it_would_have_to_truncate(tmp_path):
    np.savez(tmp_path / "t.npz", X=np.zeros((3, 2)), y=np.array([0.0, 0.4, 1.0]))
    with pytest.raises(ValueError, match=r"t.npz: the array y: labels must be 1 .* got \[0.4\], first at row 1"):
        load_npz(tmp_path / "t.npz")
    np.savez(tmp_path / "x.npz", X=np.zeros((3, 2)))
    X, y = load_npz(tmp_path / "x.npz", labels=False)
    assert X.shape == (3, 2) and y is None
    with pytest.raises(ValueError, match="needs the arrays X and y"):
        load_npz(tmp_path / "x.npz")
