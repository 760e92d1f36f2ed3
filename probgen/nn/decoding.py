"""Decoding token sequences from any autoregressive step: n-gram blocking and beam search.

A *step* is ``step(tokens [B], state) -> (logits [B, V], state)``; the state is a tensor whose
dimension ``batch_dim`` indexes the B sequences (a GRU's ``[layers, B, hidden]``: ``batch_dim=1``).
Plain torch, no Pyro: the sentence VAE's decoder (:mod:`probgen.models.sentence_vae`) uses both.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = ["repeat_mask", "beam_search"]


def repeat_mask(seqs: torch.Tensor, n: int, vocab: int) -> torch.Tensor:
    """Tokens that would repeat an n-gram already in each sequence (Paulus et al. 2017's n-gram blocking).

    :param seqs: tokens so far, ``[B, L]``.
    :param n: the n-gram size (2: never the same word pair twice in a line); ``n < 1`` blocks nothing.
    :return: ``[B, vocab]``, True where the next token would close a repeated n-gram.
    """
    b, length = seqs.shape
    ban = torch.zeros(b, vocab, device=seqs.device)
    if n < 1 or length < n - 1 or length < 1:
        return ban.bool()
    starts = length - n + 1  # n-grams seqs[i : i + n], i < starts, all complete
    if starts <= 0:
        return ban.bool()
    match = torch.ones(b, starts, dtype=torch.bool, device=seqs.device)
    for j in range(n - 1):  # the n-gram's first n-1 tokens equal the last n-1 tokens of the sequence
        match &= seqs[:, j:j + starts] == seqs[:, length - n + 1 + j].unsqueeze(1)
    ban.scatter_add_(1, seqs[:, n - 1:n - 1 + starts], match.float())
    return ban > 0


def beam_search(step: Callable, state: torch.Tensor, *, n: int, k: int, max_len: int, bos: int, eos: int, pad: int,
                banned=(), no_repeat: int = 0, batch_dim: int = 1) -> torch.Tensor:
    """The likeliest sequence per start, by beam search of width ``k``; finished hypotheses compete by
    log-probability per token (length-normalised, so short lines do not win by default).

    :param step: ``(tokens [n*k], state) -> (logits [n*k, V], state)``.
    :param state: the start state of ``n * k`` hypotheses (each start repeated ``k`` times, consecutively).
    :param max_len: tokens before the end token, which is forced at step ``max_len + 1``.
    :param banned: token ids never written (renormalised away).
    :param no_repeat: block repeated n-grams of this size (:func:`repeat_mask`); 0: off.
    :return: token ids ``[n, ≤ max_len + 1]``: the sequence, ``eos``, then ``pad``.
    """
    dev = state.device
    tok = torch.full((n * k,), bos, dtype=torch.long, device=dev)
    score = torch.full((n, k), -math.inf, device=dev)
    score[:, 0] = 0.0  # one live hypothesis per start
    seqs = torch.zeros(n * k, 0, dtype=torch.long, device=dev)  # [n*k, step]
    done = torch.zeros(n * k, dtype=torch.bool, device=dev)
    rows = torch.arange(n, device=dev).unsqueeze(1) * k  # [n, 1]
    for t in range(max_len + 1):
        logits, state = step(tok, state)
        logits = logits.clone()
        logits[:, list(banned)] = -math.inf
        if no_repeat:
            block = repeat_mask(seqs, no_repeat, logits.shape[-1])
            block[:, eos] = False  # a line may always end
            logits[block] = -math.inf
        if t == max_len:  # out of room: end the sequence
            end = logits[:, eos].clone()
            logits.fill_(-math.inf)
            logits[:, eos] = end
        lp = logits.log_softmax(-1)  # [n*k, V]
        lp[done] = -math.inf
        lp[done, pad] = 0.0  # a finished sequence only pads, at no cost
        v = lp.shape[-1]
        score, idx = (score.reshape(-1, 1) + lp).reshape(n, k * v).topk(k, dim=-1)  # [n, k]
        parent = (idx // v + rows).reshape(-1)
        tok = (idx % v).reshape(-1)
        seqs, state = torch.cat([seqs[parent], tok.unsqueeze(1)], 1), state.index_select(batch_dim, parent)
        done = done[parent] | (tok == eos)
        if bool(done.all()):
            break
    length = (seqs != pad).sum(-1).clamp(min=1).reshape(n, k)
    return seqs[(score / length).argmax(-1) + rows.squeeze(1)]
