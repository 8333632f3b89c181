"""Image batches as the networks read them: float32 pixels in [0, 1], shape ``(N, C, H, W)``.

The scaler serialises to plain JSON (``to_config`` / ``from_config``) so a
saved model needs no pickle to rebuild it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


FEW_BRIGHT = 0.05
"""Pixels beyond 255, as a share of an image's pixels, that a model fitted on 0-255 reads as bright spots
(an anomaly, scored) rather than as an image on another scale (refused)."""


UNIT_OVERSHOOT = 2.0
"""From this pixel value on, a pixel scored by a model fitted on [0, 1] counts as on another scale
(:meth:`ImageScaler.transform`); below it, as bright and clipped to 1."""


class ImageScaler:
    """Map image batches to float32 pixels in [0, 1] of shape ``(N, C, H, W)``.

    ``uint8`` images, and integer images whose pixels all lie in 0-255, are
    divided by 255 (a uint16 or int64 copy of uint8 pixels gives the same
    model as they do, and a pixel brighter than any in training stays
    brighter). Float images already in [0, 1] are kept; other float images
    are min-max scaled with the range seen in ``fit``, and values outside
    that range are clipped at scoring time.

    A batch on the other common pixel scale than fit's is read or refused,
    never clipped into another image: ``uint8`` pixels scored by a model
    fitted on [0, 1] floats are divided by 255 (what ``uint8`` means in
    ``fit`` and in the PNG form), and fractional pixels within [0, 1] scored by
    a model fitted on non-negative pixels beyond 1 (0-255) are refused (they
    would read as a black image), as are ``uint8`` pixels scored by a model
    fitted on pixels beyond 511 (16-bit), and, by a model fitted on 0-255,
    integer images with a negative pixel or with most of their non-zero pixels,
    and more than :data:`FEW_BRIGHT` of all their pixels, beyond 255 (a 16-bit
    copy of a digit on a black background, whose median pixel is 0); a few
    pixels beyond 255 are read as the brightest pixel fit knew (an anomaly,
    flagged, not refused), except in images of one or two pixels, which are
    judged as a whole; integer pixels of another type on the
    0-255 scale are read like ``uint8`` by a model fitted on [0, 1]. Images
    of any type whose lit pixels are mostly beyond the top of a 0-255 or a
    [0, 1] fit (a 16-bit image, a division by 255 forgotten) are refused.
    """

    def __init__(self) -> None:
        self.shape: tuple[int, ...] = ()
        self.low = 0.0
        self.high = 1.0

    @staticmethod
    def as_batch(X: np.ndarray) -> np.ndarray:
        """Add the channel axis to ``(N, H, W)`` batches."""
        return X[:, None] if X.ndim == 3 else X

    def fit(self, X: np.ndarray) -> ImageScaler:
        """Learn the image shape and pixel range."""
        batch = self.as_batch(X)
        self.shape = tuple(int(s) for s in batch.shape[1:])
        eight_bit = batch.dtype == np.uint8 or (
            batch.dtype.kind in "iu" and int(batch.min()) >= 0 and int(batch.max()) <= 255)
        if eight_bit:
            self.low, self.high = 0.0, 255.0
        else:
            low, high = float(batch.min()), float(batch.max())
            inside_unit = low >= 0.0 and high <= 1.0
            self.low, self.high = (0.0, 1.0) if inside_unit else (low, max(high, low + 1e-12))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scale a batch; raise ``ValueError`` if its shape differs from fit's."""
        batch = self.as_batch(X)
        if tuple(batch.shape[1:]) != self.shape:
            raise ValueError(
                f"images have shape {tuple(batch.shape[1:])} (channels, height, width) but the "
                f"model was fitted on {self.shape}"
            )
        if self._eight_bit_against_unit_fit(batch):
            return (batch / 255.0).astype(np.float32)
        self._refuse_another_integer_scale(batch)
        self._refuse_negative_grey_levels(batch)
        self._refuse_mostly_beyond(batch)
        pixel_scale = self.low >= 0.0 and self.high >= 2.0  # a fit on non-negative pixels beyond [0, 1], e.g. 0-255
        if pixel_scale and batch.dtype.kind == "f" and batch.size and float(batch.max()) <= 1.0:
            if np.any(batch != np.round(batch)):
                raise ValueError(
                    f"image pixels lie in [0, 1] but the model was fitted on pixels in "
                    f"[{self.low:g}, {self.high:g}]: multiply them by {self.high - self.low:g} "
                    "(or pass the uint8 images)"
                )
        scaled = (batch.astype(np.float64) - self.low) / (self.high - self.low)
        return np.clip(scaled, 0.0, 1.0).astype(np.float32)

    def _eight_bit_against_unit_fit(self, batch: np.ndarray) -> bool:
        """Integer pixels on the 0-255 scale (uint8, or a wider integer type beyond 1) for a [0, 1] fit."""
        if (self.low, self.high) != (0.0, 1.0) or batch.dtype.kind not in "iu" or not batch.size:
            return False
        return batch.dtype == np.uint8 or (int(batch.min()) >= 0 and 1 < int(batch.max()) <= 255)

    def _refuse_another_integer_scale(self, batch: np.ndarray) -> None:
        """``uint8`` pixels against a fit on pixels well beyond 8 bits (16-bit)."""
        if batch.dtype.kind not in "iu" or not batch.size:
            return
        if batch.dtype == np.uint8 and self.high > 511.0:  # well past 8 bits, not a float fit's overshoot
            raise ValueError(
                f"uint8 images (0-255) but the model was fitted on pixels in [{self.low:g}, {self.high:g}]: "
                "pass them on the scale of fit"
            )

    def _refuse_negative_grey_levels(self, batch: np.ndarray) -> None:
        """Pixels of any type below -0.5 against a 0-255 fit: no 8-bit grey level is negative.

        A signed or centred scale (``int16`` pixels minus 128) is refused,
        whether it arrives as integers (the native door) or as the float32 of
        a served model's tensor door; a float's undershoot of less than half a
        grey level (an interpolation's) is clipped to 0.
        """
        if (self.low, self.high) != (0.0, 255.0) or not batch.size:
            return
        lowest = float(batch.min())
        if lowest < -0.5:
            raise ValueError(
                f"image pixels go down to {lowest:g} but the model was fitted on pixels in [0, 255]: "
                "pass them on the scale of fit"
            )

    def _refuse_mostly_beyond(self, batch: np.ndarray) -> None:
        """Pixels of any type mostly beyond the top of an 8-bit (255) or unit ([0, 1]) fit: another scale.

        An image whose lit pixels are mostly beyond the top is on another
        scale (16-bit or 12-bit against 0-255; 0-255 or 16-bit against
        [0, 1], a division forgotten); a few bright pixels are what an anomaly
        looks like. Lit, not all: on a black background (digits, parts on a
        dark table) the median pixel is 0 at any bit depth. Against [0, 1] a
        pixel counts as beyond from :data:`UNIT_OVERSHOOT`, so that float
        images a little over 1 (an interpolation's overshoot) are scored. The
        tensor doors of a served model hand every image over as float32, so
        the rule holds for floats as for integers.
        """
        if (self.low, self.high) == (0.0, 255.0):
            top, hint = 255.0, "pass them on the scale of fit"
        elif (self.low, self.high) == (0.0, 1.0):
            top, hint = UNIT_OVERSHOOT, "divide them by 255 (8-bit) or 65535 (16-bit), or pass uint8 images"
        else:
            return
        if not batch.size or float(batch.max()) <= top:
            return
        flat = batch.reshape(len(batch), -1)
        beyond, lit = (flat > top).sum(axis=1), (flat > 0).sum(axis=1)
        few = (beyond <= FEW_BRIGHT * flat.shape[1]) & (flat.shape[1] > 2)  # an image of 1-2 pixels is judged whole
        rescaled = (2 * beyond > lit) & ~few
        if rescaled.any():
            row = int(np.argmax(rescaled))
            raise ValueError(
                f"image pixels reach {float(batch.max()):g} (image {row}: {int(beyond[row])} of its "
                f"{int(lit[row])} non-zero pixels beyond {top:g}) but the model was fitted on pixels in "
                f"[{self.low:g}, {self.high:g}]: {hint}"
            )

    def to_config(self) -> dict[str, Any]:
        """JSON-serialisable state."""
        return {"shape": list(self.shape), "low": self.low, "high": self.high}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ImageScaler:
        """Rebuild a scaler saved by :meth:`to_config`."""
        scaler = cls()
        scaler.shape = tuple(config["shape"])
        scaler.low, scaler.high = float(config["low"]), float(config["high"])
        return scaler
