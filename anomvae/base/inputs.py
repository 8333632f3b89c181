"""Input validation and encoding of :class:`~anomvae.base.BaseDeepDetector`.

Tabular rows (arrays or DataFrames) are checked with scikit-learn's
``validate_data`` and encoded by a :class:`~anomvae.preprocessing.TabularEncoder`;
image batches are checked here and scaled by an
:class:`~anomvae.image_scaler.ImageScaler`. Whatever door the data comes
through, these checks decide what is accepted.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted, validate_data

from ..inference import map_batches
from ..finite import check_finite
from ..image_scaler import ImageScaler
from ..preprocessing import TabularEncoder, checked_values
from ..schema import BOOLEAN, NUMERIC, check_not_masked
from ..streaming import is_streamed


LOPSIDED = 10
"""Images of a list whose one side is this many times the other look like chunks of table rows: fit warns."""

SMALL_FIT_ROWS = 20
"""Training rows under which a numeric column holding one value may be constant by chance: fit warns."""


def arrow_as_frame(X: Any) -> Any:
    """A pyarrow ``Table`` or ``RecordBatch`` as the DataFrame it holds; any other input as it is.

    Read through ``numpy.asarray`` a table of mixed types became an object
    array, and its text columns failed as numbers; as a DataFrame they are
    categorical columns, as in a Parquet file or a pyarrow dataset.
    """
    if type(X).__module__.startswith("pyarrow") and type(X).__name__ in ("Table", "RecordBatch"):
        return X.to_pandas()
    return X


def is_image_batch(X: Any) -> bool:
    """True for arrays of shape ``(N, H, W)`` or ``(N, C, H, W)``, and lists of ``(H, W)`` or ``(C, H, W)`` images."""
    if isinstance(X, (list, tuple)) and X and not isinstance(X[0], pd.DataFrame):
        return getattr(X[0], "ndim", 0) in (2, 3)
    return not isinstance(X, pd.DataFrame) and getattr(X, "ndim", 0) in (3, 4)


def _refuse_shape_or_complex(X, error: ValueError) -> None:
    """Name the problem where scikit-learn's refusal of ``X`` would not: its dimensions, or complex numbers."""
    message = str(error)
    if message.startswith("Found array with dim"):
        raise ValueError(
            f"X has {message.split()[4].rstrip(',')} dimensions; anomvae takes tables (n_samples, n_features) "
            "and image batches (N, H, W) or (N, C, H, W) given as one array, a tensor or a list of 2-D or "
            "3-D arrays"
        ) from error
    if message.startswith("Complex data not supported"):
        columns = [str(name) for name, dtype in getattr(X, "dtypes", {}).items() if dtype.kind == "c"]
        where = f"column(s) {', '.join(map(repr, columns))} hold" if columns else "X holds"
        raise ValueError(f"Complex data not supported: {where} complex numbers; split them into "
                         "real and imaginary parts (or modulus and phase) first") from None


MAX_CHANNELS_LAST = 4
"""Most channels a channels-last (N, H, W, C) batch is recognised by (RGBA)."""


def _looks_channels_last(shape: tuple[int, ...]) -> bool:
    """Whether a 4-D image batch is clearly (N, H, W, C): a last axis of 1-4 channels after two longer ones.

    Shapes such as (N, 2, 3, 3) or (N, 6, 2, 2) could be either layout and are
    read as (N, C, H, W), as anomvae expects.
    """
    return shape[-1] <= MAX_CHANNELS_LAST < min(shape[1], shape[2])


class InputEncodingMixin:
    """Validate inputs against what ``fit`` saw and encode them for the scorer."""

    def _fit_encoding(self, X) -> tuple[np.ndarray, TabularEncoder | ImageScaler, bool]:
        if is_image_batch(X):
            images = self._image_array(X)
            if isinstance(X, (list, tuple)) and max(images.shape[-2:]) >= LOPSIDED * min(images.shape[-2:]):
                warnings.warn(
                    f"a list of {len(images)} arrays of shape {images.shape[1:]} is read as {len(images)} images "
                    "(a list of 2-D arrays is an image batch); to fit chunks of table rows, pass them as "
                    "DataFrames (streamed) or stack them into one array",
                    UserWarning, stacklevel=3,
                )
            scaler = ImageScaler().fit(images)
            self.n_features_in_ = int(np.prod(scaler.shape))
            return scaler.transform(images), scaler, True
        if isinstance(X, pd.DataFrame) and not _all_numeric(X):
            validate_data(self, X, skip_check_array=True, reset=True)
            _check_rows(len(X))
            encoder = TabularEncoder(self.scaling).fit(X)
        else:
            values = self._numeric_array(X, reset=True)
            encoder = TabularEncoder(self.scaling).fit(values)
            encoder.record_integers(X)
            X = values
        encoded = encoder.transform(X)
        _warn_constant_columns_of_a_small_fit(encoded, encoder)
        return encoded, encoder, False

    def _validated(self, X):
        """Check ``X`` against what ``fit`` saw; return it ready for chunked encoding."""
        check_is_fitted(self)
        X = arrow_as_frame(X)
        _refuse_streamed(X)
        if self.is_image_:
            if not is_image_batch(X):
                kind = (f"an input with {X.ndim} dimensions" if hasattr(X, "ndim")
                        else f"a {type(X).__name__}; pass a numpy array or tensor of shape (N, C, H, W)")
                raise ValueError(
                    f"this model was fitted on images of shape {self.encoder_.shape} (channels, "
                    f"height, width); got {kind}"
                )
            return self._image_array(X, minimum_rows=1, fitted_shape=tuple(self.encoder_.shape))
        if is_image_batch(X):
            raise ValueError(
                f"this model was fitted on tabular rows of {self.n_features_in_} features; "
                f"got an image batch of shape {np.shape(X)}"
            )
        if "category" in self.encoder_.kinds:
            if not isinstance(X, pd.DataFrame):
                raise TypeError(
                    f"this model was fitted on a DataFrame with categorical columns "
                    f"{[c for c, k in zip(self.encoder_.columns, self.encoder_.kinds) if k == 'category']}; "
                    f"pass a DataFrame with the same columns, not {type(X).__name__}"
                )
            validate_data(self, X, skip_check_array=True, reset=False)
            _check_rows(len(X), minimum=1)
            return X
        if isinstance(X, pd.DataFrame) and (BOOLEAN in self.encoder_.kinds or not _all_numeric(X)):
            # Booleans, text or objects: each column checked against its kind in fit (a numeric
            # column refuses True and "0.5", a boolean one refuses 5), as with categorical models.
            validate_data(self, X, skip_check_array=True, reset=False)
            _check_rows(len(X), minimum=1)
            if BOOLEAN in self.encoder_.kinds:
                return X
            X = _numeric_columns(X)
        if (isinstance(X, pd.DataFrame) and not hasattr(self, "feature_names_in_")
                and [str(column) for column in X.columns] == [f"x{i}" for i in range(self.n_features_in_)]):
            # the doors' names for a model fitted on an array: dropped (no feature-name warning), the frame
            # kept so that sklearn still reads nullable columns' pd.NA as NaN
            X = X.set_axis(range(X.shape[1]), axis=1)
        values = self._numeric_array(X, reset=False)
        if BOOLEAN in self.encoder_.kinds:  # an array for a model with boolean columns: 0/1 checked there too
            return pd.DataFrame(values, columns=self.encoder_.columns)
        return values

    def _map_rows(self, method: str, X) -> np.ndarray:
        """Validate ``X``, then encode it and evaluate the scorer's ``method`` batch by batch.

        Encoding batch by batch keeps memory bounded by the batch size, not by
        the input's length.
        """
        data = self._validated(X)
        function = getattr(self.scorer_, method)
        if self.is_image_:
            return map_batches(function, data, self.scorer_.device, dtype=self.scorer_.dtype,
                               encode=lambda chunk, first_row: self.encoder_.transform(chunk))
        return map_batches(function, data, self.scorer_.device, encode=self.encoder_.transform,
                           dtype=self.scorer_.dtype)

    def _numeric_array(self, X, *, reset: bool) -> np.ndarray:
        check_not_masked(X)
        try:
            values = validate_data(
                self, X, dtype=np.float64, ensure_all_finite=False, ensure_min_samples=2 if reset else 1,
                reset=reset,
            )
        except OverflowError as error:
            raise ValueError(f"X holds a number too large for a float64 ({error})") from error
        except ValueError as error:
            _refuse_shape_or_complex(X, error)
            if not str(error).startswith("could not convert string to float"):
                raise
            if hasattr(X, "columns"):
                raise ValueError(
                    f"X holds text in a column that was numeric in fit ({error}); convert it with "
                    "pandas.to_numeric, or refit with the column as text to use it as a category"
                ) from error
            raise ValueError(
                f"X is an array holding text ({error}); arrays must be numeric: pass a pandas DataFrame "
                "to use text columns as categories"
            ) from error
        check_finite(values, list(getattr(self, "feature_names_in_", [])) or None)
        return values

    @staticmethod
    def _image_array(X, minimum_rows: int = 2, fitted_shape: tuple[int, ...] | None = None) -> np.ndarray:
        """``X`` as an (N, C, H, W) or (N, H, W) array; ``fitted_shape``: the (C, H, W) ``fit`` saw, never refused."""
        check_not_masked(X)
        if isinstance(X, (list, tuple)):
            shapes = sorted({tuple(np.shape(image)) for image in X})
            if len(shapes) > 1:
                raise ValueError(
                    f"a list of 2-D or 3-D arrays is read as a batch of images, which must share one shape; got "
                    f"shapes {', '.join(map(str, shapes[:3]))}{' ...' if len(shapes) > 3 else ''}: for chunks of "
                    "table rows, pass DataFrames (streamed) or stack them into one array"
                )
        images = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
        if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
            raise TypeError(f"images must hold integers or floats, got dtype {images.dtype}")
        if images.ndim == 4 and images.shape[1:] != fitted_shape and _looks_channels_last(images.shape):
            raise ValueError(
                f"images of shape {images.shape} look channels-last ({images.shape[1]} x {images.shape[2]} "
                f"pixels of {images.shape[3]} channels); anomvae expects (N, C, H, W): use "
                f"images.transpose(0, 3, 1, 2). Channels-first images at most {MAX_CHANNELS_LAST} pixels wide "
                f"and over {MAX_CHANNELS_LAST} high with over {MAX_CHANNELS_LAST} channels cannot be told apart "
                "from these and are not supported"
            )
        _check_rows(len(images), minimum=minimum_rows)
        if 0 in images.shape[1:]:
            raise ValueError(f"images of shape {images.shape} hold no pixels")
        if np.issubdtype(images.dtype, np.floating):
            check_finite(images)
        return images


def encode_frame(encoder: TabularEncoder, frame: pd.DataFrame, label: str) -> np.ndarray:
    """Encode one streamed chunk with the fitted ``encoder``, naming the chunk in errors.

    Parameters
    ----------
    encoder : TabularEncoder
    frame : DataFrame
        Rows with the columns of the first chunk.
    label : str
        The chunk as errors name it (:meth:`anomvae.streaming.ChunkReader.label`).

    Returns
    -------
    ndarray of float32, shape (len(frame), encoder.n_encoded)

    Raises
    ------
    ValueError, TypeError
        As :meth:`TabularEncoder.transform`, prefixed with ``label``.
    """
    try:
        if "category" in encoder.kinds or "boolean" in encoder.kinds:
            return encoder.transform(frame)
        if not _all_numeric(frame):  # True or "0.5" in a numeric column: refused, as when scoring
            frame = _numeric_columns(frame)
        values = frame.to_numpy(dtype=np.float64)
        check_finite(values, [str(column) for column in frame.columns])
        return encoder.transform(values)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{label}: {error}") from error


def _refuse_streamed(X) -> None:
    """Only ``fit`` reads streamed data; scoring, ``partial_fit``, ``monitor`` and ``set_threshold`` take rows."""
    if isinstance(X, (np.ndarray, pd.DataFrame, torch.Tensor)):
        return
    try:
        streamed = is_streamed(X)
    except TypeError:  # a one-shot iterator
        streamed = True
    if streamed:
        raise TypeError(
            f"only fit trains on streamed data (a path, a Parquet dataset, DataFrame chunks or a callable); "
            f"got a {type(X).__name__}: scoring, partial_fit, monitor and set_threshold take rows in memory, "
            "e.g. pandas.read_parquet(path) or pandas.concat(chunks)"
        )


def _numeric_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame for a model of numeric columns as float64 columns (missing values, ``None`` and
    ``pd.NA`` alike, as NaN), refusing booleans and text (:func:`checked_values`)."""
    values = [checked_values(frame.iloc[:, position], str(column), NUMERIC)
              for position, column in enumerate(frame.columns)]
    return pd.DataFrame(np.column_stack(values), index=frame.index, columns=frame.columns)


def _warn_constant_columns_of_a_small_fit(encoded: np.ndarray, encoder: TabularEncoder) -> None:
    """Warn of numeric columns that hold one value in a fit of under :data:`SMALL_FIT_ROWS` rows.

    Such a column's scale is 1 in its own units, so a later row one unit
    away scores as one training spread away: a new user's 2-row fit stated a
    33% alarm rate and flagged every fresh row. On larger fits a constant
    column is taken at its word.
    """
    if len(encoded) >= SMALL_FIT_ROWS:
        return
    slices = encoder.column_slices()
    constant = [column for column, kind, part in zip(encoder.columns, encoder.kinds, slices)
                if kind == NUMERIC and np.ptp(encoded[:, part.start]) == 0]
    if constant:
        warnings.warn(
            f"numeric column(s) {constant[:5]}{' ...' if len(constant) > 5 else ''} hold a single value in all "
            f"{len(encoded)} training rows: any other value later is measured in the column's own units and "
            "may flag most new rows; fit on more rows, or drop such columns",
            UserWarning, stacklevel=7,  # fit -> state guard -> sklearn's wrapper -> _fit -> _fit_encoding -> here
        )


def _all_numeric(frame: pd.DataFrame) -> bool:
    return all(
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        and not isinstance(dtype, pd.CategoricalDtype)
        for dtype in frame.dtypes
    )


def _check_rows(n_rows: int, minimum: int = 2) -> None:
    if n_rows < minimum:
        raise ValueError(
            f"Found array with {n_rows} sample(s) while a minimum of {minimum} is required"
        )
