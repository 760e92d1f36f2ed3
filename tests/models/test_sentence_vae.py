"""SentenceVAE: masking, importance sampling vs ELBO, annealing, tiny end-to-end runs."""
from __future__ import annotations

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch

from probgen.evaluate import log_weights
from probgen.models.sentence_vae import SentenceVAE
from probgen.data.text import load_text
from probgen.infer.svi import make_elbo

LINES = ["the cat sat on the mat", "the dog sat on the log", "a cat ran", "a dog ran far away",
         "the bird sang", "a bird flew over the mat", "the dog ran to the cat", "the cat sang"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    f = tmp_path_factory.mktemp("text") / "tiny.txt"
    f.write_text("\n".join(LINES * 8) + "\n")
    return load_text(f, seed=0)


def tiny(corpus, **kw) -> SentenceVAE:
    kw = {"embed_dim": 16, "hidden": 24, "z_dim": 4, **kw}
    return SentenceVAE.for_data(corpus, **kw)


def _pad(x: torch.Tensor, extra: int) -> torch.Tensor:
    return torch.cat([x, torch.zeros(len(x), extra, dtype=x.dtype)], dim=1)


def test_padding_never_contributes(corpus):
    m = tiny(corpus).eval()
    x = corpus.train[:6]
    # observed token sites: zero log-prob wherever the mask is off
    tr = poutine.trace(poutine.replay(m.model, trace=poutine.trace(m.guide).get_trace(x))).get_trace(x)
    tr.compute_log_prob()
    lp = tr.nodes["x"]["log_prob"]  # [n, T]
    mask = x[:, :lp.shape[1]] != 0
    assert (lp[~mask] == 0).all() and (lp[mask] != 0).all()
    # extra padding columns change neither the loss nor the estimates (same random draws)
    elbo = make_elbo("trace", max_plate_nesting=2)
    vals = []
    for xx in (x, _pad(x, 9)):
        pyro.set_rng_seed(1)
        vals.append((elbo.loss(m.model, m.guide, xx), m.log_prob(xx, num_samples=5), m.elbo_terms(xx)["recon"]))
    assert vals[0][0] == pytest.approx(vals[1][0], rel=1e-5)
    assert torch.allclose(vals[0][1], vals[1][1], atol=1e-4)
    assert torch.allclose(vals[0][2], vals[1][2], atol=1e-4)
    # in training mode too: the gradient of the loss does not reach logits of padded positions
    m.train()
    logits_grad = {}

    def keep(mod, inp, out):
        out[0].retain_grad()
        logits_grad["t"] = out[0]

    h = m.decoder.register_forward_hook(keep)
    pyro.set_rng_seed(2)
    loss = make_elbo("meanfield", max_plate_nesting=2).differentiable_loss(m.model, m.guide, x)
    loss.backward()
    h.remove()
    g = logits_grad["t"].grad  # [n, T, V]
    assert g[~mask].abs().max() == 0 and g[mask].abs().max() > 0


def test_importance_sampling_bounds_the_elbo(corpus):
    m = tiny(corpus, z_dim=3)
    m.fit(corpus.train, epochs=2, batch_size=16, lr=1e-2, progress=False)
    x = corpus.test
    lw = log_weights(m, x, 200)  # [K, n]
    assert lw.shape == (200, len(x))
    iwae = torch.logsumexp(lw, 0) - math.log(200)
    assert (iwae >= lw.mean(0) - 1e-5).all()  # Jensen, per sentence, same draws
    pyro.set_rng_seed(3)
    lp = m.log_prob(x, num_samples=200)
    elbo = torch.stack([m.elbo_terms(x)["elbo"] for _ in range(20)]).mean(0)  # independent ELBO estimate
    assert (lp > elbo - 0.05).all(), (lp, elbo)
    assert m.perplexity(x, log_prob=lp) == pytest.approx(float(torch.exp(-lp.sum() / (x != 0).sum())))


def test_plain_language_model_is_exact(corpus):
    m = tiny(corpus, latent=False).eval()
    assert m.has_exact_log_prob and m.encoder is None
    x = corpus.test
    lp = m.log_prob(x)
    loss = make_elbo("trace", max_plate_nesting=2).loss(m.model, m.guide, x)
    assert float(-lp.sum()) == pytest.approx(loss, rel=1e-5)
    with pytest.raises(ValueError, match="latent"):
        m.interpolate("a cat", "a dog")
    assert all(isinstance(s, str) for s in m.sample(3))


def test_annealing_schedules_and_free_bits(corpus):
    m = tiny(corpus, anneal_steps=100)
    assert m.kl_scale(0) < 0.01 and m.kl_scale(50) == pytest.approx(0.5) and m.kl_scale(100) > 0.99
    lin = tiny(corpus, kl_anneal="linear", anneal_steps=10, kl_weight=0.5)
    assert [round(lin.kl_scale(s), 3) for s in (0, 5, 10, 20)] == [0.0, 0.25, 0.5, 0.5]
    assert tiny(corpus, kl_anneal="none", kl_weight=0.3).kl_scale(0) == pytest.approx(0.3)
    assert m.eval().kl_scale() == 1.0  # evaluation is always the true ELBO
    fb = tiny(corpus, free_bits=8.0).train()
    x = corpus.train[:8]
    g = poutine.trace(fb.guide).get_trace(x)
    tr = poutine.trace(poutine.replay(fb.model, trace=g)).get_trace(x)
    assert "free_bits" in tr.nodes and float(tr.nodes["free_bits"]["fn"].log_factor.detach()) <= 0
    assert int(fb.anneal_step) == 0  # the model does not count: the trainer's step_end does
    fb.step_end()
    assert int(fb.anneal_step) == 1 and int(fb.eval().anneal_step) == 1  # one SVI step counted
    fb.eval().step_end()
    assert int(fb.anneal_step) == 1  # not outside training
    fb.train()
    fb.fit(corpus.train, epochs=2, batch_size=16, lr=1e-2, progress=False)
    hist = fb.train_result.history
    assert all({"kl", "recon", "kl_weight", "active_units"} <= set(r) for r in hist)
    with pytest.raises(ValueError, match="latent=False"):
        tiny(corpus, kl_weight=0)
    with pytest.raises(ValueError, match="vocab"):
        SentenceVAE(10, vocab=["<pad>", "<unk>", "<bos>", "<eos>", "a"])
    with pytest.raises(ValueError, match="token ids"):
        m.log_prob(torch.rand(2, 3))


def test_end_to_end_train_sample_interpolate(corpus, tmp_path):
    m = tiny(corpus, hidden=32, word_dropout=0.1, anneal_steps=20)
    m.fit(corpus.train, val=corpus.val, epochs=6, batch_size=16, lr=2e-2, progress=False, patience=None)
    hist = m.train_result.history
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    assert hist[-1]["kl"] > 0.05  # the code carries information
    out = m.sample(5)
    assert len(out) == 5 and all(isinstance(s, str) for s in out)
    known = set(corpus.vocab.tokens[4:])
    words = [w for s in m.sample(20, greedy=True) for w in s.split()]
    assert words and sum(w in known for w in words) / len(words) > 0.9
    path = m.interpolate("the cat sat on the mat", "a dog ran far away", 5)
    assert len(path) == 5 and all(isinstance(s, str) for s in path)
    loc, scale = m.encode(["the cat sat on the mat", "a bird flew"])
    assert loc.shape == scale.shape == (2, 4) and (scale > 0).all()
    assert len(m.decode(loc)) == 2
    ck = m.save(tmp_path / "s.pt")
    from probgen.models import load

    m2 = load(ck)
    assert m2.vocab.tokens == m.vocab.tokens  # the checkpoint alone can write
    torch.manual_seed(0)
    a = m.sample(4)
    torch.manual_seed(0)
    assert m2.sample(4) == a



@torch.no_grad()
def _score(m, z, seq, max_len):
    """Log-probability per token of ``seq`` (ending in <eos>) as decoding counts it: <pad> <unk> <bos> removed
    and renormalised, the <eos> at step ``max_len + 1`` forced (free)."""
    tok, h, total = torch.tensor([2]), m.decoder.initial_state(z, 1, "cpu"), 0.0
    for step, t in enumerate(seq):
        logits, h = m.decoder(m.embed(tok).unsqueeze(1), z, h)
        logits = logits[:, -1]
        logits[:, [0, 1, 2]] = -math.inf
        total += 0.0 if step == max_len else float(logits.log_softmax(-1)[0, t])
        tok = torch.tensor([t])
    return total / len(seq)


@pytest.mark.parametrize("latent", [False, True])
def test_beam_search_finds_the_likeliest_line_when_wide_enough(corpus, latent):
    import itertools

    torch.manual_seed(0)
    m = tiny(corpus, latent=latent).eval()
    z = torch.randn(1, m.z_dim) if latent else None
    words = list(range(4, m.vocab_size))
    # every line of at most 2 words, then <eos>: with a beam this wide, beam search is exhaustive
    lines = [[3]] + [[w, 3] for w in words] + [[a, b, 3] for a, b in itertools.product(words, words)]
    with torch.no_grad():
        got = m.generate(z, 1, max_len=2, beam=len(lines))[0].tolist()
        best = max(lines, key=lambda s: _score(m, z, s, 2))
        greedy = m.generate(z, 1, max_len=2, greedy=True)[0].tolist()
    assert got[:got.index(3) + 1] == best
    greedy = greedy[:greedy.index(3) + 1]
    assert _score(m, z, best, 2) >= _score(m, z, greedy, 2)
    assert len(m.sample(3, beam=3)) == 3
    with pytest.raises(ValueError, match="beam"):
        m.generate(z, 1, beam=0)
