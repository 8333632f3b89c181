"""The parameters every anomvae estimator shares, written once.

Each shared parameter has one :class:`SharedParameter` entry here: its
default, its scikit-learn constraint and its numpydoc text. Changing a
shared default is one edit of :data:`SHARED_PARAMETERS`.

An estimator declares only its own parameters::

    class AnomalyVAE(BaseDeepDetector):
        __init__ = estimator_init(beta=1.0, scoring="reconstruction")

:func:`estimator_init` builds an ``__init__`` whose signature lists the own
parameters and then the shared ones, keyword-only, with their defaults:
scikit-learn reads that signature (``get_params``, ``clone``, ``repr``), and
the ``__init__`` only stores its arguments, as scikit-learn requires. In the
class docstring the line :data:`SHARED_PARAMETERS_LINE` (and
:data:`SHARED_ATTRIBUTES_LINE`) is replaced by the shared entries
(:func:`compose_docstring`), so ``help(AnomalyVAE)`` shows every parameter
while the source documents only its own.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import torch

from .._sklearn import Interval, StrOptions
from ..preprocessing import SCALINGS
from ..thresholds import ThresholdStrategy


@dataclass(frozen=True)
class SharedParameter:
    """One parameter common to every estimator.

    Attributes
    ----------
    default : object
        Immutable default value.
    constraints : list
        scikit-learn parameter constraints (``_parameter_constraints`` entry).
    doc : str
        Numpydoc entry: the ``name : type, default=...`` line, then the
        description indented by four spaces.
    """

    default: Any
    constraints: list
    doc: str


SHARED_PARAMETERS: dict[str, SharedParameter] = {
    "latent_dim": SharedParameter(None, [Interval(Integral, 1, None, closed="left"), None], """\
latent_dim : int or None, default=None
    Size of the latent code; ``None`` picks about a quarter of the input
    width, within [2, 32]."""),
    "hidden_dims": SharedParameter(None, [list, tuple, None], """\
hidden_dims : sequence of int or None, default=None
    Encoder hidden widths (the decoder mirrors them); ``None`` picks two
    layers, the first twice the input width within [64, 512]. For images
    these are the dense layers after the convolutional stages, which are
    sized from the image shape (see :func:`anomvae.nn.build_body`);
    ``None`` picks one layer of 256."""),
    "epochs": SharedParameter(100, [Interval(Integral, 1, None, closed="left")], """\
epochs : int, default=100
    Maximum passes over the training data."""),
    "batch_size": SharedParameter(128, [Interval(Integral, 1, None, closed="left")], """\
batch_size : int, default=128
    Rows per training step."""),
    "learning_rate": SharedParameter(1e-3, [Interval(Real, 0, None, closed="neither")], """\
learning_rate : float, default=1e-3
    Adam learning rate (of every optimiser of the scorer)."""),
    "validation_fraction": SharedParameter(0.1, [Interval(Real, 0, 1, closed="left")], """\
validation_fraction : float, default=0.1
    Share of the rows held out for early stopping and threshold
    calibration. 0 disables early stopping; a ``RobustFalsePositiveRate``
    threshold (the default) is then cross-fitted where the estimator
    cross-fits (``AnomalyVAE`` and ``AnomalyVAESVDD`` on tables of a size
    ``docs/thresholds.md`` gives), and any other on the training scores."""),
    "patience": SharedParameter(10, [Interval(Integral, 1, None, closed="left"), None], """\
patience : int or None, default=10
    Epochs without validation improvement before training stops; the best
    epoch's weights are kept. Counted in epochs, so on a table under
    ``batch_size`` rows (one optimiser step per epoch) it is that many
    steps. Estimators with a warm-up count it from the warm-up's end;
    ``None`` trains for all ``epochs``."""),
    "gradient_clip": SharedParameter(10.0, [Interval(Real, 0, None, closed="neither"), None], """\
gradient_clip : float or None, default=10.0
    Maximum gradient norm (per optimiser)."""),
    "scaling": SharedParameter("standard", [StrOptions(set(SCALINGS))], """\
scaling : {"standard", "robust", "minmax", "none"}, default="standard"
    Scaling of numeric columns, learned in ``fit``."""),
    "contamination": SharedParameter(
        "auto", [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")], """\
contamination : "auto" or float in (0, 0.5], default="auto"
    Expected share of outliers in the training data, which sets
    ``offset_`` as in :class:`sklearn.ensemble.IsolationForest`. ``"auto"``
    targets 1% false alarms on normal rows, calibrated on held-out or
    cross-fitted scores with gross anomalies set aside
    (:class:`anomvae.calibration.RobustFalsePositiveRate`). Not used when
    ``threshold`` is given."""),
    "threshold": SharedParameter(None, [ThresholdStrategy, None], """\
threshold : ThresholdStrategy or None, default=None
    How ``offset_`` is calibrated: a strategy from
    :mod:`anomvae.thresholds` (``RobustFalsePositiveRate``,
    ``FalsePositiveRate``, ``Contamination``, ``PeaksOverThreshold``,
    ``PyThresh``, ``FixedScore``); ``None`` follows ``contamination``. See
    ``docs/thresholds.md``."""),
    "device": SharedParameter("auto", [str, torch.device], """\
device : str, default="auto"
    ``"auto"`` uses CUDA when available, else the CPU."""),
    "random_state": SharedParameter(None, ["random_state"], """\
random_state : int, RandomState instance or None, default=None
    Seeds weight initialisation, shuffling, the validation split and any
    noise the scorer draws; an int makes fits reproducible."""),
    "verbose": SharedParameter(False, ["verbose"], """\
verbose : bool or int, default=False
    Show a progress bar while training."""),
}
"""The shared parameters, in the order they follow an estimator's own ones."""

SHARED_ATTRIBUTES = """\
offset_ : float
    ``decision_function = score_samples - offset_``; equals
    ``-threshold_.value``.
threshold_ : FittedThreshold
    The calibrated threshold: method, parameters, value, expected alarm
    rate, calibration-score summary and bootstrap confidence interval.
reference_scores_ : ndarray
    Sorted anomaly scores of the held-out rows (the training rows when
    ``validation_fraction=0``; the cross-fitted out-of-fold scores of every
    training row when the default threshold cross-fits a small training
    set), the reference of ``p_values``.
reference_source_ : str
    ``"held-out"``, ``"training"``, ``"out-of-fold"`` or ``"supplied"`` (by
    ``set_threshold``).
reference_feature_scores_ : ndarray
    Mean per-feature score of the reference rows: the baseline against
    which :func:`anomvae.monitor` ranks the features driving alarms.
drift_reference_scores_ : ndarray
    Sorted anomaly scores the drift tests of :func:`anomvae.monitor`
    compare batches with: ``reference_scores_``, except after a cross-fitted
    calibration, where they are the final model's scores of the held-out
    rows (exchangeable with new normal rows' scores, unlike out-of-fold
    ones), if any row was held out.
drift_reference_source_ : str
    Source of ``drift_reference_scores_``, named as ``reference_source_``.
n_features_in_ : int
    Number of input features (pixels for images).
feature_names_in_ : ndarray of str
    Defined when ``X`` was a DataFrame with string column names.
history_ : dict of list
    Per-epoch training losses and validation loss.
health_warnings_ : list of str
    Problems found after training (posterior collapse, constant scores,
    weights kept barely trained by early stopping).
training_time_ : float
    Seconds spent in ``fit``.
precision_ : {"float32", "bfloat16"}
    Precision of the matrix products on the CPU, in training and in
    scoring: ``"bfloat16"`` where the estimator chose it in ``fit``
    (AnomalyVAE's ``precision``), which a saved model keeps."""
"""Numpydoc entries of the fitted attributes every estimator sets."""

SHARED_PARAMETERS_LINE = "See :data:`~anomvae.base.parameters.SHARED_PARAMETERS` for the shared parameters."
"""The line of a class docstring that :func:`compose_docstring` replaces by the shared parameters."""

SHARED_ATTRIBUTES_LINE = "See :data:`~anomvae.base.parameters.SHARED_ATTRIBUTES` for the shared attributes."
"""The line of a class docstring that :func:`compose_docstring` replaces by the shared attributes."""


def shared_constraints() -> dict[str, list]:
    """The ``_parameter_constraints`` entries of the shared parameters."""
    return {name: parameter.constraints for name, parameter in SHARED_PARAMETERS.items()}


def shared_parameters_doc() -> str:
    """Numpydoc entries of every shared parameter, unindented, in declaration order."""
    return "\n".join(parameter.doc for parameter in SHARED_PARAMETERS.values())


def _indented(text: str, indent: str) -> str:
    return "\n".join(indent + line if line else line for line in text.splitlines())


def compose_docstring(doc: str | None) -> str | None:
    """Replace the marker lines of a class docstring by the shared entries.

    Parameters
    ----------
    doc : str or None
        A class docstring, possibly holding :data:`SHARED_PARAMETERS_LINE` or
        :data:`SHARED_ATTRIBUTES_LINE` on a line of its own.

    Returns
    -------
    str or None
        ``doc`` with each marker line replaced by the entries, at the
        marker's indentation; unchanged when it holds no marker.
    """
    if doc is None:
        return None
    lines = []
    for line in doc.splitlines():
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped == SHARED_PARAMETERS_LINE:
            lines.append(_indented(shared_parameters_doc(), indent))
        elif stripped == SHARED_ATTRIBUTES_LINE:
            lines.append(_indented(SHARED_ATTRIBUTES, indent))
        else:
            lines.append(line)
    return "\n".join(lines)


def estimator_init(**own_defaults: Any):
    """Build an estimator's ``__init__`` from its own parameters' defaults.

    Parameters
    ----------
    **own_defaults
        The estimator's own parameters and their (immutable) defaults. A
        shared parameter named here keeps its place but takes this default.

    Returns
    -------
    function
        ``__init__(self, *, <own>, <shared>)``: keyword-only, with a real
        signature (``__signature__``) that scikit-learn's ``get_params``
        reads; it stores each argument unchanged under its own name and
        raises TypeError for an unknown one, as a written ``__init__`` would.
    """
    defaults = {**own_defaults, **{name: own_defaults.get(name, parameter.default)
                                   for name, parameter in SHARED_PARAMETERS.items()}}

    def __init__(self, **params):
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise TypeError(f"{type(self).__name__}.__init__() got an unexpected keyword argument {unknown[0]!r}")
        for name, default in defaults.items():
            setattr(self, name, params.get(name, default))

    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
           for name, default in defaults.items()]
    )
    __init__.__doc__ = "Store the parameters unchanged; see the class docstring."
    return __init__
