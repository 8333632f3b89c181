"""What kind of model input a DataFrame column is, decided once in ``fit``.

A column is ``"numeric"`` (scaled), ``"boolean"`` (0/1) or ``"category"``
(one-hot encoded). The kind comes from the values, not only from the dtype, so
that every door agrees: an ``object`` column of :class:`decimal.Decimal` (what
SQL readers return) or of Python floats is numeric at fit exactly as it is at
scoring, and an ``object`` column of Python booleans is boolean.

Columns no kind fits are refused with a ``TypeError`` naming them:

- dates, times, durations and periods: one-hot encoding them would make every
  future date an unseen category; derive numbers from them first (hour, day of
  week, seconds since an event). Text columns whose every value is an ISO 8601
  date or date-time (``"2024-01-31"``, ``"2024-01-31 08:00:00"``: what a CSV
  file delivers) count as dates too;
- ``object`` columns mixing numbers and text (``[1.5, "1e5"]``): the text is
  most likely a number that failed to parse, and guessing either way changes
  the scores silently.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NUMERIC = "numeric"
BOOLEAN = "boolean"
CATEGORY = "category"

NUMBER_VALUES = {"floating", "integer", "mixed-integer-float", "decimal"}
"""What :func:`pandas.api.types.infer_dtype` says of an object column holding only numbers."""

TIME_VALUES = {"datetime64", "datetime", "date", "time", "timedelta64", "timedelta", "period"}
"""What :func:`pandas.api.types.infer_dtype` says of an object column holding times or durations."""

MIXED_VALUES = {"mixed", "mixed-integer"}

ISO_DATE_TEXT = r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?"
"""An ISO 8601 date, optionally with a time and a UTC offset, written as text."""


def fit_kind(series: pd.Series, column: str) -> str:
    """The kind of a training column.

    Parameters
    ----------
    series : Series
        The column's training values.
    column : str
        Its name, for messages.

    Returns
    -------
    {"numeric", "boolean", "category"}

    Raises
    ------
    TypeError
        For time-like columns and object columns mixing numbers with text.
    ValueError
        For complex numbers.
    """
    dtype = series.dtype
    if _is_time_dtype(dtype):
        raise TypeError(_time_message(column, dtype))
    if pd.api.types.is_bool_dtype(dtype):
        return BOOLEAN
    if isinstance(dtype, pd.CategoricalDtype):
        return CATEGORY
    if pd.api.types.is_complex_dtype(dtype):
        raise ValueError(f"column {column!r}: Complex data not supported")
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMERIC
    if pd.api.types.is_string_dtype(dtype) and dtype != object:
        return _text_kind(series, column)
    if dtype != object:
        return CATEGORY
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred in NUMBER_VALUES:
        return NUMERIC
    if inferred == "boolean":
        return BOOLEAN
    if inferred in TIME_VALUES:
        raise TypeError(_time_message(column, inferred))
    if inferred in MIXED_VALUES:
        raise TypeError(_mixed_message(series, column))
    if inferred == "string":
        return _text_kind(series, column)
    return CATEGORY


def _text_kind(series: pd.Series, column: str) -> str:
    """``"category"`` for a text column, unless every distinct value is an ISO 8601 date or date-time."""
    values = pd.Series(series.dropna().unique())
    if len(values) and values.str.fullmatch(ISO_DATE_TEXT).all():
        raise TypeError(_time_message(column, "dates written as text"))
    return CATEGORY


def _is_time_dtype(dtype) -> bool:
    return (
        pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or isinstance(dtype, (pd.PeriodDtype, pd.IntervalDtype))
        or isinstance(dtype, pd.ArrowDtype) and _arrow_temporal(dtype)
    )


def _arrow_temporal(dtype: pd.ArrowDtype) -> bool:
    """Arrow durations and times of day too (``read_parquet(dtype_backend="pyarrow")``), which
    pandas calls neither datetime nor timedelta; an ArrowDtype implies pyarrow is installed."""
    import pyarrow.types

    return pyarrow.types.is_temporal(dtype.pyarrow_dtype)


def _time_message(column: str, kind) -> str:
    if isinstance(kind, pd.IntervalDtype):
        return (
            f"column {column!r} holds intervals ({kind}); anomvae does not encode them: derive numeric "
            "features first (e.g. each interval's left end and length) and drop the column"
        )
    return (
        f"column {column!r} holds dates, times or durations ({kind}); anomvae does not encode them "
        "(each new date would be an unseen category): derive numeric features from it first, "
        "e.g. the hour, the day of week or seconds since an event, and drop the column"
    )


def _mixed_message(series: pd.Series, column: str) -> str:
    text = [
        (position, value) for position, value in enumerate(series.to_numpy())
        if isinstance(value, (str, bytes))
    ]
    example = f"{text[0][1]!r} in row {text[0][0]}" if text else f"values of types {_types(series)}"
    return (
        f"column {column!r} mixes numbers and text ({example}); convert it to numbers "
        "(pandas.to_numeric) or to text (astype(str)) before fitting"
    )


def _types(series: pd.Series) -> str:
    return ", ".join(sorted({type(value).__name__ for value in series.dropna().to_numpy()}))


def as_float64(series: pd.Series, column: str) -> np.ndarray:
    """A column's values as float64, missing values as NaN.

    Raises
    ------
    ValueError
        When a value (a huge Python int, say) does not fit in a float64.
    """
    try:
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    except OverflowError as error:
        raise ValueError(
            f"column {column!r} holds a number too large for a float64 ({error}); "
            "anomvae computes in floating point: rescale the column"
        ) from error


def check_not_masked(X) -> None:
    """Refuse a :class:`numpy.ma.MaskedArray` with masked entries.

    NumPy's conversions drop the mask and keep whatever the masked cells hold,
    so a masked value would be scored as if it were real.

    Raises
    ------
    ValueError
    """
    if isinstance(X, np.ma.MaskedArray) and np.ma.getmaskarray(X).any():
        rows = np.flatnonzero(np.ma.getmaskarray(X).reshape(len(X), -1).any(axis=1))
        raise ValueError(
            f"Input X is a masked array with masked values in rows {rows[:5].tolist()}; "
            "fill them (X.filled(value)) or drop those rows before fitting or scoring"
        )
