"""Where the context sits in an encoded row, and the context vector built from it.

The estimator's :class:`~anomvae.preprocessing.TabularEncoder` encodes the
context columns like any other (numeric columns scaled, categorical ones
one-hot with an "unseen" indicator); :class:`ContextLayout` splits an encoded
row into the features ``x`` and the context vector ``c`` the conditional VAE
is conditioned on. Its state is buffers whose shapes depend only on the
encoded width and the number of cyclic columns, so a saved model loads
without knowing the layout in advance.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ContextLayout(nn.Module):
    """Split encoded rows into features and a context vector.

    Parameters
    ----------
    n_encoded : int
        Width D of an encoded row.
    n_cyclic : int
        Number of numeric context columns encoded as (sin, cos) of a period.

    Attributes
    ----------
    context_mask : Tensor of bool, shape (D,)
        Encoded positions of the context columns.
    unseen_mask : Tensor of bool, shape (D,)
        Positions of the "unseen category" indicators of categorical context columns.
    cyclic : Tensor of shape (n_cyclic, 4)
        Per cyclic column: encoded position, centre and scale of its scaling,
        period in input units.
    """

    def __init__(self, n_encoded: int, n_cyclic: int) -> None:
        super().__init__()
        self.register_buffer("context_mask", torch.zeros(n_encoded, dtype=torch.bool))
        self.register_buffer("unseen_mask", torch.zeros(n_encoded, dtype=torch.bool))
        self.register_buffer("cyclic", torch.zeros(n_cyclic, 4))

    @property
    def context_width(self) -> int:
        """Width of the context vector: D masked values, (sin, cos) per cyclic column, a missing flag."""
        return len(self.context_mask) + 2 * len(self.cyclic) + 1

    def set_layout(self, context: list[int], unseen: list[int],
                   cyclic: list[tuple[int, float, float, float]]) -> None:
        """Fill the buffers: encoded context positions, unseen indicators, cyclic columns."""
        self.context_mask[context] = True
        self.unseen_mask[unseen] = True
        if cyclic:
            self.cyclic.copy_(torch.tensor(cyclic, dtype=self.cyclic.dtype))

    def features(self, batch: Tensor) -> Tensor:
        """``batch`` with the context positions set to 0, shape ``(n, D)``."""
        return batch.masked_fill(self.context_mask, 0.0)

    def unseen_rows(self, batch: Tensor) -> Tensor:
        """Rows whose context holds a category never seen in ``fit``, shape ``(n,)``."""
        return (batch[:, self.unseen_mask] > 0.5).any(dim=1)

    def context(self, batch: Tensor, missing: Tensor) -> Tensor:
        """The context vector, shape ``(n, context_width)``.

        Rows where ``missing`` is True get the all-zero context with the
        missing flag set: the context the model is trained to treat as
        unknown (see :class:`~.scorer.CVAEScorer`).
        """
        values = batch.masked_fill(~self.context_mask, 0.0)
        angles = []
        if len(self.cyclic):
            positions = self.cyclic[:, 0].long()
            values = values.index_fill(1, positions, 0.0)
            raw = batch[:, positions] * self.cyclic[:, 2] + self.cyclic[:, 1]
            # the remainder first: h and h + period give the same angle, not two roundings of it
            phase = 2 * math.pi * torch.remainder(raw, self.cyclic[:, 3]) / self.cyclic[:, 3]
            angles = [torch.sin(phase), torch.cos(phase)]
        vector = torch.cat([values, *angles, torch.zeros_like(batch[:, :1])], dim=1)
        flag = torch.zeros_like(vector)
        flag[:, -1] = 1.0
        return torch.where(missing[:, None], flag, vector)
