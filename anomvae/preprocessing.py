"""Input encoding learned in ``fit`` for tabular rows: scaling and categorical encoding.

The encoder serialises to plain JSON (``to_config`` / ``from_config``) so a
saved model needs no pickle to rebuild it. Images: :mod:`anomvae.image_scaler`.
"""

from __future__ import annotations

from decimal import Decimal
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from .finite import check_finite, describe_rows
from .schema import BOOLEAN, CATEGORY, NUMERIC, as_float64, fit_kind

VALUE_LIMIT = 1e6
"""Encoded values are clipped to +-VALUE_LIMIT so that extreme inputs (say
1e30) give a large, finite anomaly score instead of overflowing float32."""

MAX_CATEGORIES = 200
"""A text column with more distinct values than this looks like an identifier."""

SCALINGS = ("standard", "robust", "minmax", "none")

NUMBER_LIKE = {"floating", "integer", "mixed-integer-float", "decimal", "boolean", "empty"}
"""What :func:`pandas.api.types.infer_dtype` says of an object column holding only
numbers (missing values aside); such a column scores like its numeric dtype."""


def _scale_statistics(values: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (centre, scale) for ``scaling``; the scales of constant columns become one.

    Columns are divided by their largest magnitude before means, variances and
    ranges are taken, so values up to float64's limit (1e308) give finite
    statistics instead of an overflowing variance. A column is constant when
    its spread is under 1e-12 of its magnitude (rounding noise), whatever its
    unit: a column measured in farads still varies.
    """
    magnitude = np.max(np.abs(values), axis=0) if len(values) else np.ones(values.shape[1])
    magnitude = np.where(magnitude > 0, magnitude, 1.0)
    unit = values / magnitude
    with np.errstate(over="ignore"):  # a spread beyond float64 is capped below
        centre, scale = _unit_statistics(unit, magnitude, values, scaling)
    # A spread beyond float64 (a range of +-1.7e308) is capped at its largest number, not taken for constant.
    scale = np.where(np.isinf(scale), np.finfo(np.float64).max, scale)
    scale = np.where(np.isfinite(scale) & (scale > 1e-12 * magnitude), scale, 1.0)
    return centre.astype(np.float64), scale.astype(np.float64)


def _unit_statistics(unit: np.ndarray, magnitude: np.ndarray, values: np.ndarray,
                     scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """(centre, scale) from the columns in units of their largest magnitude (``unit = values / magnitude``)."""
    if scaling == "standard":
        centre, scale = unit.mean(axis=0) * magnitude, unit.std(axis=0) * magnitude
    elif scaling == "robust":
        centre = np.median(values, axis=0)
        # Near float64's limit the middle pair's sum overflows: take that median in units of the magnitude.
        centre = np.where(np.isfinite(centre), centre, np.median(unit, axis=0) * magnitude)
        scale = np.subtract(*np.percentile(unit, [75, 25], axis=0)) * magnitude
        scale = np.where(scale > 0, scale, unit.std(axis=0) * magnitude)
    elif scaling == "minmax":
        centre, scale = values.min(axis=0), (unit.max(axis=0) - unit.min(axis=0)) * magnitude
    else:
        centre, scale = np.zeros(values.shape[1]), np.ones(values.shape[1])
    return centre, scale


def _standardised(values: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(values - centre) / scale``, computed as ``values / scale - centre / scale`` where the difference
    overflows (values of opposite signs near float64's limit), so such a value keeps its place instead of
    reading as infinitely far."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (values - centre) / scale
        overflowed = ~np.isfinite(scaled)
        if overflowed.any():
            rescaled = values / scale - centre / scale
            scaled = np.where(overflowed, rescaled, scaled)
    return scaled


class TabularEncoder:
    """Scale numeric columns and one-hot encode categorical ones.

    Numeric columns are centred and scaled (``scaling``); boolean columns
    become 0/1; object, string and category columns are one-hot encoded over
    the categories seen in ``fit`` plus one "unseen" indicator that is always
    0 in training. A category never seen in ``fit`` sets that indicator, which
    the model has learnt to predict as 0, so such rows score as more anomalous
    instead of being rejected.

    Parameters
    ----------
    scaling : {"standard", "robust", "minmax", "none"}
    """

    def __init__(self, scaling: str = "standard") -> None:
        self.scaling = scaling
        self.columns: list[str] = []
        self.kinds: list[str] = []
        self.categories: dict[str, list[str]] = {}
        self.integers: list[bool] = []
        self.centre = np.zeros(0)
        self.scale = np.ones(0)

    @property
    def n_encoded(self) -> int:
        """Number of model inputs after encoding."""
        return sum(self._width(column, kind) for column, kind in self._pairs())

    def _width(self, column: str, kind: str) -> int:
        return len(self.categories[column]) + 1 if kind == CATEGORY else 1

    def _pairs(self):
        return zip(self.columns, self.kinds)

    def column_slices(self) -> list[slice]:
        """For each input column, its slice of the encoded features."""
        slices, start = [], 0
        for column, kind in self._pairs():
            width = self._width(column, kind)
            slices.append(slice(start, start + width))
            start += width
        return slices

    def fit(self, X: np.ndarray | pd.DataFrame) -> TabularEncoder:
        """Learn column kinds, categories and scaling from training data.

        DataFrame columns are read by position (their names may be any
        hashable); their kinds come from :func:`anomvae.schema.fit_kind`.

        Raises
        ------
        TypeError
            For columns of dates or durations, or mixing numbers with text.
        """
        if isinstance(X, pd.DataFrame):
            self.columns = [str(c) for c in X.columns]
            self.kinds = [fit_kind(X.iloc[:, i], column) for i, column in enumerate(self.columns)]
            for position, (column, kind) in enumerate(self._pairs()):
                if kind == CATEGORY:
                    self.categories[column] = _fit_categories(X.iloc[:, position], column)
        else:
            self.columns = [str(i) for i in range(X.shape[1])]
            self.kinds = ["numeric"] * X.shape[1]
        numeric = self._numeric_block(X)
        self.centre, self.scale = _scale_statistics(numeric, self.scaling)
        self.record_integers(X)
        return self

    def record_integers(self, X) -> None:
        """Note which numeric columns of the caller's training input hold integers.

        The MLflow signature of a model logged without an input example takes
        its column types from here (``long`` for these columns).
        """
        if isinstance(X, pd.DataFrame):
            self.integers = [
                kind == NUMERIC and pd.api.types.infer_dtype(X.iloc[:, i], skipna=True) == "integer"
                for i, kind in enumerate(self.kinds)
            ]
        else:
            integer = np.issubdtype(np.asarray(X).dtype, np.integer)
            self.integers = [bool(integer)] * len(self.columns)

    def transform(self, X: np.ndarray | pd.DataFrame, first_row: int = 0) -> np.ndarray:
        """Encode rows into float32 model inputs of width :attr:`n_encoded`.

        ``first_row`` is the position of ``X``'s first row in the caller's
        input, so that error messages name the right rows.
        """
        numeric = _standardised(self._numeric_block(X, first_row), self.centre, self.scale)
        np.clip(numeric, -VALUE_LIMIT, VALUE_LIMIT, out=numeric)
        if not isinstance(X, pd.DataFrame) or CATEGORY not in self.kinds:
            return numeric.astype(np.float32)
        blocks, numeric_index = [], 0
        for position, (column, kind) in enumerate(self._pairs()):
            if kind == CATEGORY:
                series = X.iloc[:, position]
                check_no_missing(series, column, first_row)
                known = np.asarray(self.categories[column])
                one_hot = series.astype(str).to_numpy()[:, None] == known[None, :]
                if not one_hot.any(axis=1).all():  # unseen text: try the other spelling of integral numbers
                    one_hot = category_text(series, self.categories[column]).to_numpy()[:, None] == known[None, :]
                blocks.append(np.column_stack([one_hot, ~one_hot.any(axis=1)]))
            else:
                blocks.append(numeric[:, numeric_index : numeric_index + 1])
                numeric_index += 1
        return np.hstack(blocks).astype(np.float32)

    def _numeric_block(self, X: np.ndarray | pd.DataFrame, first_row: int = 0) -> np.ndarray:
        if not isinstance(X, pd.DataFrame):
            return np.asarray(X, dtype=np.float64)
        numeric = [(i, c, k) for i, (c, k) in enumerate(self._pairs()) if k != CATEGORY]
        columns = [column for _, column, _ in numeric]
        block = np.empty((len(X), len(numeric)), dtype=np.float64)
        for position, (source, column, kind) in enumerate(numeric):
            block[:, position] = checked_values(X.iloc[:, source], column, kind, first_row)
        check_finite(block, columns, first_row)
        return block

    def to_config(self) -> dict[str, Any]:
        """JSON-serialisable state."""
        return {
            "scaling": self.scaling,
            "columns": self.columns,
            "kinds": self.kinds,
            "categories": self.categories,
            "integers": self.integers,
            "centre": self.centre.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TabularEncoder:
        """Rebuild an encoder saved by :meth:`to_config`."""
        encoder = cls(config["scaling"])
        encoder.columns = list(config["columns"])
        encoder.kinds = list(config["kinds"])
        encoder.categories = {k: list(v) for k, v in config["categories"].items()}
        # Empty where the model was saved before integer columns were recorded: unknown, not "none".
        encoder.integers = [bool(flag) for flag in config.get("integers", [])]
        encoder.centre = np.asarray(config["centre"], dtype=np.float64)
        encoder.scale = np.asarray(config["scale"], dtype=np.float64)
        return encoder


def _column_kind(series: pd.Series) -> str:
    """The kind a scoring column's dtype suggests (fit uses :func:`anomvae.schema.fit_kind`)."""
    if pd.api.types.is_bool_dtype(series):
        return BOOLEAN
    if pd.api.types.is_numeric_dtype(series) and not isinstance(series.dtype, pd.CategoricalDtype):
        if pd.api.types.is_complex_dtype(series):
            raise ValueError(f"column {series.name!r}: Complex data not supported")
        return NUMERIC
    return CATEGORY


def _holds_booleans(series: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(series) or (
        series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) in ("boolean", "mixed")
        and series.map(lambda value: isinstance(value, (bool, np.bool_))).any()
    )


def _numbers_only(series: pd.Series) -> bool:
    """An object column of Python numbers of mixed types (``Decimal`` beside floats), missing values aside."""
    return series.dtype == object and all(
        isinstance(value, (Real, Decimal)) and not isinstance(value, (bool, np.bool_)) for value in series.dropna()
    )


def _first_non_number(series: pd.Series) -> int | None:
    """Position of the first value that is not a number, preferring text that does not even read
    as one (``'3am'`` before ``'3'``); None if every value is a number or missing."""
    def missing(value) -> bool:
        return pd.api.types.is_scalar(value) and bool(pd.isna(value))

    def reads_as_number(value) -> bool:
        try:
            float(value)
        except Exception:  # noqa: BLE001 (a probe: an object whose __float__ raises anything is no number)
            return False
        return True

    others = [row for row, value in enumerate(series)
              if not isinstance(value, (Real, Decimal)) and not missing(value)]
    return next((row for row in others if not reads_as_number(series.iloc[row])), others[0] if others else None)


def checked_values(series: pd.Series, column: str, kind: str, first_row: int = 0) -> np.ndarray:
    """A numeric or boolean column's scoring values as float64.

    A boolean column takes only 0/1 (``True``/``False``); a numeric column
    refuses booleans, so that ``True`` is never silently read as 1.0.
    """
    if kind == NUMERIC and _holds_booleans(series):
        raise TypeError(
            f"column {column!r} was numeric in fit but now holds booleans; send numbers"
        )
    if (_column_kind(series) == CATEGORY and pd.api.types.infer_dtype(series) not in NUMBER_LIKE
            and not _numbers_only(series)):
        row = _first_non_number(series)
        if row is not None or kind == NUMERIC:
            example = (f"{series.iloc[row]!r} in {describe_rows(np.arange(len(series)) == row, first_row)}"
                       if row is not None else repr(series.iloc[0]))
            raise TypeError(
                f"column {column!r} was {kind} in fit but now holds non-numeric values "
                f"(dtype {series.dtype}, e.g. {example}); "
                f"convert it to {'numbers' if kind == NUMERIC else 'true/false'}"
            )
    values = as_float64(series, column)
    if kind == BOOLEAN:
        bad = ~(np.isin(values, (0.0, 1.0)) | np.isnan(values))
        if bad.any():
            raise TypeError(
                f"column {column!r} was boolean in fit but now holds {float(values[bad][0])!r} "
                f"({describe_rows(bad, first_row)}); send true/false"
            )
    return values


def category_text(series: pd.Series, categories: list[str]) -> pd.Series:
    """A categorical column's values as the text they are matched on against ``categories`` (fit's).

    Numbers are matched as text (``str``), so a category fitted from the
    integers ``1, 2`` would not know the float ``1.0`` (a column turned float
    by a merge that introduced a missing value), nor one fitted from floats
    the integer ``1``: an integral number whose text is not a known category
    is matched by its other spelling when that one is known.
    """
    text = series.astype(str)
    unknown = ~text.isin(categories).to_numpy()
    if unknown.any():
        positions = np.flatnonzero(unknown)
        other = pd.Series([_other_spelling(value) for value in series.astype(object).iloc[positions]], dtype=object)
        known = other.isin(categories).to_numpy()
        if known.any():
            text = text.copy()
            text.iloc[positions[known]] = other[known].to_numpy()
    return text


def _other_spelling(value) -> str | None:
    """``"1"`` for 1.0 or the text ``"1.0"`` (a CSV cell), ``"1.0"`` for 1 or ``"1"``; None for other
    text, booleans and fractional numbers."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        if not number.is_integer():
            return None
        return str(int(number)) if value.strip() != str(int(number)) else str(number)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    number = float(value)
    if not number.is_integer():
        return None
    return str(number) if isinstance(value, (int, np.integer)) else str(int(number))


def check_no_missing(series: pd.Series, column: str, first_row: int = 0) -> None:
    """Refuse NaN and empty text, which a CSV or JSON door reads as missing: every door agrees."""
    missing = series.isna().to_numpy()
    if not pd.api.types.is_numeric_dtype(series):
        missing = missing | series.eq("").to_numpy(dtype=bool, na_value=False)
    if missing.any():
        raise ValueError(
            f"Input X contains NaN or empty text in categorical column {column!r} "
            f"({describe_rows(missing, first_row)}); fill it with an explicit category"
        )


def _fit_categories(series: pd.Series, column: str) -> list[str]:
    check_no_missing(series, column)
    categories = sorted(series.astype(str).unique())
    if len(categories) > MAX_CATEGORIES:
        raise ValueError(
            f"column {column!r} has {len(categories)} distinct values (more than "
            f"{MAX_CATEGORIES}); it looks like an identifier or free text: drop it or encode it "
            "as numbers yourself"
        )
    return categories
