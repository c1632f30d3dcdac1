"""Action tokenizer: continuous actions <-> discrete tokens added to the LM vocabulary.

Each continuous dimension is cut into `n_bins` equal bins over the dataset's [q01, q99] (values outside are
clipped), and decodes to the bin centre, so a round trip of an in-range value is off by at most half a bin.
Gripper dimensions are binary: one token for open (< 0.5) and one for closed. Token ids are absolute vocabulary
ids: `offset + bin` for bins, `offset + n_bins + {0, 1}` for the gripper; `offset` is the text vocabulary size,
so action tokens are appended to the vocabulary, never overwriting a text token.
"""
from __future__ import annotations

import torch

from vla import VLAError


class ActionTokenizer:
    def __init__(self, low, high, gripper_dims=(), n_bins: int = 256, offset: int = 0):
        self.low = torch.as_tensor(low, dtype=torch.float32)                   # (D,)
        self.high = torch.as_tensor(high, dtype=torch.float32)                 # (D,)
        if self.low.shape != self.high.shape or self.low.ndim != 1:
            raise VLAError("action statistics low/high must be two vectors of the same length.")
        self.high = torch.maximum(self.high, self.low + 1e-6)                  # a constant dimension still bins
        self.dim = int(self.low.numel())
        self.gripper = torch.zeros(self.dim, dtype=torch.bool)
        for d in gripper_dims:
            if not 0 <= d < self.dim:
                raise VLAError(f"gripper dimension {d} is outside the action's {self.dim} dimensions.")
            self.gripper[d] = True
        self.n_bins, self.offset = int(n_bins), int(offset)

    @property
    def vocab_size(self) -> int:
        """Number of action tokens: bins plus the two gripper tokens."""
        return self.n_bins + 2

    def token_names(self) -> list[str]:
        return [f"<act_{i}>" for i in range(self.n_bins)] + ["<grip_open>", "<grip_close>"]

    @property
    def bin_width(self) -> torch.Tensor:
        return (self.high - self.low) / self.n_bins                           # (D,)

    def encode_local(self, actions: torch.Tensor) -> torch.Tensor:
        """actions (..., D) float -> action-vocabulary indices (..., D) in [0, vocab_size)."""
        low, high = self.low.to(actions.device), self.high.to(actions.device)
        frac = (actions.float().clamp(low, high) - low) / (high - low)
        bins = (frac * self.n_bins).floor().long().clamp(0, self.n_bins - 1)
        grip = self.n_bins + (actions >= 0.5).long()
        return torch.where(self.gripper.to(actions.device), grip, bins)

    def decode_local(self, index: torch.Tensor) -> torch.Tensor:
        """action-vocabulary indices (..., D) -> actions (..., D) float (bin centres, gripper 0/1)."""
        low, width = self.low.to(index.device), self.bin_width.to(index.device)
        cont = low + (index.clamp(0, self.n_bins - 1).float() + 0.5) * width
        grip = (index == self.n_bins + 1).float()
        return torch.where(self.gripper.to(index.device), grip, cont)

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """actions (..., D) -> absolute token ids (..., D)."""
        return self.encode_local(actions) + self.offset

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """absolute token ids (..., D) -> actions (..., D)."""
        return self.decode_local(ids - self.offset)

    def allowed_mask(self) -> torch.Tensor:
        """(D, vocab_size) bool: which action tokens each dimension may emit."""
        mask = torch.zeros(self.dim, self.vocab_size, dtype=torch.bool)
        mask[~self.gripper, : self.n_bins] = True
        mask[self.gripper, self.n_bins:] = True
        return mask

    def to_dict(self) -> dict:
        return {"low": self.low.tolist(), "high": self.high.tolist(), "n_bins": self.n_bins, "offset": self.offset,
                "gripper_dims": [int(i) for i in torch.nonzero(self.gripper).flatten()]}

    @classmethod
    def from_dict(cls, data: dict) -> "ActionTokenizer":
        return cls(data["low"], data["high"], data["gripper_dims"], data["n_bins"], data["offset"])
