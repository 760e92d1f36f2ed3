"""n-gram blocking and beam search over a hand-made step function (no model, milliseconds)."""
from __future__ import annotations

import itertools
import math

import torch

from probgen.nn.decoding import beam_search, repeat_mask

PAD, BOS, EOS = 0, 1, 2


def test_repeat_mask_blocks_exactly_the_repeated_ngrams():
    seqs = torch.tensor([[5, 6, 5], [5, 6, 7], [4, 4, 4]])
    pairs = repeat_mask(seqs, 2, 8)  # next token after the last one must not repeat a pair
    assert pairs[0].nonzero().flatten().tolist() == [6]  # (5, 6) seen: 6 blocked after 5
    assert not pairs[1].any()  # (7, ?) never seen
    assert pairs[2].nonzero().flatten().tolist() == [4]
    triples = repeat_mask(seqs, 3, 8)
    assert not triples[0].any() and triples[2].nonzero().flatten().tolist() == [4]
    assert repeat_mask(seqs, 1, 8)[1].nonzero().flatten().tolist() == [5, 6, 7]
    assert not repeat_mask(seqs, 0, 8).any() and not repeat_mask(seqs[:, :0], 2, 8).any()


def _table_step(table):
    """A step whose logits depend on the last token only: ``table [V, V]``, the state carries nothing."""
    def step(tok, state):
        return table[tok].clone(), state
    return step


def _score(table, seq, max_len, banned):
    total, prev = 0.0, BOS
    for t, tok in enumerate(seq):
        logits = table[prev].clone()
        logits[banned] = -math.inf
        total += 0.0 if t == max_len else float(logits.log_softmax(-1)[tok])
        prev = tok
    return total / len(seq)


def test_a_beam_as_wide_as_all_lines_is_exhaustive_and_beats_greedy():
    torch.manual_seed(3)
    v, max_len, banned = 6, 3, [PAD, BOS]
    table = torch.randn(v, v) * 2
    words = list(range(3, v))
    lines = [[*w, EOS] for m in range(max_len + 1) for w in itertools.product(words, repeat=m)]
    state = torch.zeros(1, len(lines), 1)
    got = beam_search(_table_step(table), state, n=1, k=len(lines), max_len=max_len, bos=BOS, eos=EOS, pad=PAD,
                      banned=banned)[0].tolist()
    best = max(lines, key=lambda s: _score(table, s, max_len, banned))
    assert got[:got.index(EOS) + 1] == best
    narrow = beam_search(_table_step(table), torch.zeros(1, 2, 1), n=1, k=2, max_len=max_len, bos=BOS, eos=EOS,
                         pad=PAD, banned=banned)[0].tolist()
    assert _score(table, best, max_len, banned) >= _score(table, narrow[:narrow.index(EOS) + 1], max_len, banned)


def test_beam_search_with_blocking_never_repeats_a_pair():
    table = torch.full((6, 6), -5.0)
    table[:, 3], table[3, 4], table[4, 3] = 5.0, 6.0, 6.0  # the likeliest line: 3 4 3 4 3 4 ...
    out = beam_search(_table_step(table), torch.zeros(1, 6, 1), n=2, k=3, max_len=8, bos=BOS, eos=EOS, pad=PAD,
                      banned=[PAD, BOS], no_repeat=2)
    for row in out.tolist():
        words = row[:row.index(EOS)]
        assert len(set(zip(words, words[1:]))) == len(words) - 1, row
