"""Recurrent networks for sentences: a GRU encoder to ``(loc, scale)`` and a GRU language-model
decoder that sees a code z at its first state and at every step.

Plain ``torch.nn.Module`` s; the story is :class:`probgen.models.sentence_vae.SentenceVAE`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .mlp import GaussianHead

__all__ = ["SentenceEncoder", "SentenceDecoder"]


class SentenceEncoder(nn.Module):
    """Token ids ``[B, T]`` → ``(loc, scale)`` ``[B, z_dim]`` from a GRU's last state."""

    def __init__(self, embed_dim: int, hidden: int, z_dim: int):
        super().__init__()
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True)
        self.head = GaussianHead(hidden, z_dim)

    def forward(self, emb: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # packing makes the final state the one after each sentence's own <eos>, not after padding
        packed = pack_padded_sequence(emb, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)  # [1, B, hidden]
        return self.head(h[-1])


class SentenceDecoder(nn.Module):
    """GRU language model whose initial state and every input step see the code z."""

    def __init__(self, embed_dim: int, hidden: int, z_dim: int, vocab_size: int):
        super().__init__()
        self.z_dim = z_dim
        self.init = nn.Linear(z_dim, hidden) if z_dim else None
        self.gru = nn.GRU(embed_dim + z_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)
        self.hidden = hidden

    def initial_state(self, z: torch.Tensor | None, batch: int, device) -> torch.Tensor:
        if z is None:
            return torch.zeros(1, batch, self.hidden, device=device)
        return torch.tanh(self.init(z)).unsqueeze(0)  # [1, B, hidden]

    def forward(self, emb: torch.Tensor, z: torch.Tensor | None,
                h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``emb [B, T, E]``, ``z [B, z_dim]`` → logits ``[B, T, V]`` and the last state."""
        b, t, _ = emb.shape
        if h is None:
            h = self.initial_state(z, b, emb.device)
        if z is not None:
            emb = torch.cat([emb, z.unsqueeze(1).expand(b, t, z.shape[-1])], dim=-1)
        out, h = self.gru(emb, h)
        return self.out(out), h
