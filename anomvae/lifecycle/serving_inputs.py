"""What the MLflow model of a detector accepts, and how a request becomes estimator input.

Tabular models take a DataFrame with the training columns. Columns the model
was fitted on without names (a NumPy array) are called ``x0, x1, ...``.

Image models take one of two forms, chosen when the model is logged:

``"tensor"``
    A float32 array of shape ``(N, C, H, W)`` on the scale of the training
    images (a channel axis of 1 for grey images); over REST, the JSON
    ``{"inputs": [...]}`` holding that nested list.
``"png"``
    A DataFrame with one column, ``image``, of base64-encoded PNG files of
    the training size (mode ``L`` for one channel, ``RGB`` for three); over
    REST, ``{"dataframe_split": {"columns": ["image"], "data": [[...], ...]}}``.
    Pixels 0..255 are mapped onto the pixel range seen in ``fit``, so a model
    fitted on ``uint8`` images sees exactly the PNG's pixels.

:func:`encode_png` builds the ``image`` column from an array.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
import pandas as pd

from ..finite import check_finite

IMAGE_COLUMN = "image"
IMAGE_FORMATS = ("tensor", "png")
PNG_MODES = {1: "L", 3: "RGB"}
"""PNG colour mode for each number of channels."""

SCHEMA_TYPES = {"numeric": "double", "boolean": "boolean", "category": "string"}
"""MLflow column type for each kind of column the tabular encoder knows."""


def check_image_format(detector, image_format: str) -> None:
    """Refuse an unknown ``image_format``, and ``"png"`` for a model of other than 1 or 3 channels.

    Raises
    ------
    ValueError
        Naming the formats, or the model's channel count.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    channels = detector.encoder_.shape[0] if getattr(detector, "is_image_", False) else None
    if image_format == "png" and channels is not None and channels not in PNG_MODES:
        raise ValueError(f"image_format='png' takes 1- or 3-channel images; this model was fitted on {channels} "
                         "channels: use image_format='tensor'")


def input_columns(detector) -> list[str]:
    """Column names a tabular detector's model expects, in training order."""
    if hasattr(detector, "feature_names_in_"):
        return [str(name) for name in detector.feature_names_in_]
    return [f"x{index}" for index in range(detector.n_features_in_)]


def column_types(detector, example: pd.DataFrame | None = None) -> list[tuple[str, str]]:
    """``(column, MLflow type)`` for each input column of a tabular detector.

    Numeric columns are ``double``, except those holding integers in
    ``example`` (as returned by :func:`as_frame`: columns that held integers
    at fit), which are ``long``: MLflow refuses to cast int64 data to
    ``double``, so a model trained on integer columns must accept integers as
    they come from pandas.
    """
    types = []
    for column, kind in zip(input_columns(detector), detector.encoder_.kinds):
        schema_type = SCHEMA_TYPES[kind]
        if schema_type == "double" and example is not None and pd.api.types.is_integer_dtype(example[column]):
            schema_type = "long"
        types.append((column, schema_type))
    return types


def as_frame(detector, rows) -> pd.DataFrame:
    """Rows as a DataFrame with the model's columns and schema types.

    Used for input examples: NumPy rows get the column names, numeric
    columns become int64 where the column held integers at fit and ``rows``
    hold integral values there, float64 otherwise (whole numbers in a column
    fitted on fractions stay float64: a ``long`` column in the signature would
    make MLflow's serving truncate fractions), categories become strings.
    Models saved before fit recorded integer columns take integers where
    ``rows`` hold them.

    Raises
    ------
    ValueError
        When ``rows`` lack columns the model needs.
    """
    integers = detector.encoder_.integers or None
    columns = input_columns(detector)
    if isinstance(rows, pd.DataFrame) and hasattr(detector, "feature_names_in_"):
        missing = [column for column in columns if column not in rows.columns]
        if missing:
            raise ValueError(f"the input example lacks the column(s) {missing}; the model expects {columns}")
        frame = rows.copy()
    else:  # rows without usable names are taken by position, as fit took them
        frame = pd.DataFrame(np.asarray(rows), columns=columns)
    for index, (column, kind) in enumerate(zip(columns, detector.encoder_.kinds)):
        if kind == "numeric":
            values = pd.to_numeric(frame[column])
            if integers is None:
                integer = pd.api.types.is_integer_dtype(values)
            else:
                integer = integers[index] and bool(np.all(np.mod(values.to_numpy(dtype=np.float64), 1) == 0))
            frame[column] = values.astype(np.int64 if integer else np.float64)
        elif kind == "category":
            frame[column] = frame[column].astype(str).astype(object)
    return frame[columns]


def tabular_input(detector, model_input) -> np.ndarray | pd.DataFrame:
    """What the detector's ``score_samples`` takes for a DataFrame request.

    Raises
    ------
    ValueError
        When columns the model needs are missing.
    """
    columns = input_columns(detector)
    if not isinstance(model_input, pd.DataFrame):
        return np.asarray(model_input)
    missing = [column for column in columns if column not in model_input.columns]
    if missing:
        raise ValueError(
            f"the request lacks the column(s) {missing}; the model expects the columns {columns}"
        )
    # MLflow's schema enforcement already hands over the columns in order: no copy then.
    frame = model_input if list(model_input.columns) == columns else model_input[columns]
    if hasattr(detector, "feature_names_in_"):
        return frame
    if "category" in detector.encoder_.kinds:  # fitted on a frame with non-string column names
        return frame.set_axis(range(len(columns)), axis=1)
    values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    check_finite(values, columns)
    return values


def image_input(detector, model_input, image_format: str) -> np.ndarray:
    """The image batch a request holds, on the scale of the training images.

    Raises
    ------
    ValueError
        For a request that is not in ``image_format`` or whose images do not
        match the model's shape.
    """
    if image_format == "tensor":
        if isinstance(model_input, pd.DataFrame):
            raise ValueError(
                "this image model takes a tensor of shape (N, C, H, W); send it as "
                '{"inputs": [...]}, not as a DataFrame'
            )
        return np.asarray(model_input)
    if not isinstance(model_input, pd.DataFrame) or IMAGE_COLUMN not in model_input.columns:
        raise ValueError(
            f"this image model takes a DataFrame with a column {IMAGE_COLUMN!r} of base64-encoded "
            "PNG images"
        )
    channels, height, width = detector.encoder_.shape
    images = np.stack(
        [decode_png(text, channels, (height, width), row) for row, text in enumerate(model_input[IMAGE_COLUMN])]
    )
    low, high = detector.encoder_.low, detector.encoder_.high
    return low + images.astype(np.float64) / 255.0 * (high - low)


def decode_png(text, channels: int, size: tuple[int, int], row: int = 0) -> np.ndarray:
    """One base64 PNG as a ``uint8`` array of shape ``(channels, height, width)``."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = base64.b64decode(text, validate=True)
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.load()
            mode, pixels = image.mode, np.asarray(image)
    except (binascii.Error, TypeError, ValueError, UnidentifiedImageError, OSError) as error:
        # formats=["PNG"]: a JPEG (lossy), BMP or TIFF is refused, not decoded into other pixels
        raise ValueError(f"row {row}: not a base64-encoded PNG image ({error})") from error
    if mode != PNG_MODES.get(channels):
        raise ValueError(
            f"row {row}: the PNG has colour mode {mode!r}; this model takes {channels}-channel "
            f"images, PNG mode {PNG_MODES.get(channels)!r}"
        )
    if pixels.shape[:2] != tuple(size):
        raise ValueError(
            f"row {row}: the image is {pixels.shape[0]}x{pixels.shape[1]} pixels (height x width); "
            f"the model was fitted on {size[0]}x{size[1]}"
        )
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def encode_png(images: np.ndarray) -> list[str]:
    """Base64 PNG strings for a ``uint8`` batch of shape ``(N, H, W)`` or ``(N, C, H, W)``.

    Examples
    --------
    >>> import numpy as np
    >>> column = encode_png(np.zeros((2, 8, 8), dtype=np.uint8))
    >>> len(column)
    2
    """
    from PIL import Image

    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"PNG images hold uint8 pixels; got dtype {images.dtype}")
    batch = images[:, None] if images.ndim == 3 else images
    if batch.ndim != 4 or batch.shape[1] not in PNG_MODES:
        raise ValueError(f"expected images of shape (N, H, W) or (N, 1 or 3, H, W), got {images.shape}")
    encoded = []
    for image in batch:
        pixels = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return encoded
