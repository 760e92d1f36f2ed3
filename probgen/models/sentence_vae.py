"""The sentence VAE (Bowman et al. 2016, "Generating Sentences from a Continuous Space").

The generative story of one sentence x = (x_1 … x_T, <eos>)::

    z ~ N(0, I)                                   a code for the whole sentence
    h_0 = tanh(W z)
    h_t = GRU(h_{t-1}, [embed(x_{t-1}); z])       z is fed at every step, x_0 = <bos>
    x_t ~ Categorical(softmax(V h_t))             one token per step, until <eos>

and the guide q(z | x) = N(μ(x), σ(x)) reads the sentence with a GRU encoder. Tokens
are observed under a ``pyro.plate`` over positions, masked by the sentence length, so
padding never enters the loss.

The known failure is *posterior collapse*: an autoregressive decoder can model the
text alone, the KL term pushes q(z | x) onto the prior, and z is ignored (KL → 0).
Three standard remedies are options here:

- **KL annealing** (Bowman et al.): the latent site is wrapped in ``poutine.scale(β)``
  with β rising from ~0 to ``kl_weight`` over ``anneal_steps`` SVI steps (logistic or
  linear), so the code is used before it is penalised;
- **word dropout** (Bowman et al.): during training, decoder inputs are replaced by
  ``<unk>`` with probability ``word_dropout``, so the decoder must lean on z;
- **free bits** (Kingma et al. 2016): KL below ``free_bits`` nats per sentence (spread
  over the code dimensions, batch-averaged per dimension) is not penalised.

All three act in training mode only; in ``eval`` mode the model is the plain ELBO, so
validation losses, ``log_prob`` and perplexities are true bounds/estimates.

With ``latent=False`` there is no z and the same decoder is a plain GRU language model
(the baseline that shows what the code costs and buys); its ``log_prob`` is exact.
"""
from __future__ import annotations

from dataclasses import replace

import math
import sys
from typing import Sequence

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch import nn

from ..data import check_tensor
from ..data.text import SPECIALS, Vocab
from ..nn import SentenceDecoder, SentenceEncoder, check_positive_int
from ..nn.decoding import beam_search, repeat_mask
from ..runtime import log
from ..story import Story, Traits

__all__ = ["SentenceVAE", "ANNEAL_SCHEDULES"]

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
ANNEAL_SCHEDULES = ("logistic", "linear", "none")


# -- the story --------------------------------------------------------------------------
class SentenceVAE(Story):
    """Sentence VAE with GRU encoder and decoder (or, ``latent=False``, a GRU language model).

    :param vocab_size: number of token ids (specials included).
    :param embed_dim: token embedding size (shared by encoder and decoder).
    :param hidden: GRU state size.
    :param z_dim: code size.
    :param vocab: the tokens, id order (``<pad> <unk> <bos> <eos>`` first); stored in the
        checkpoint so that sampling and encoding need no data. ``None``: ids only.
    :param level: ``"word"`` or ``"char"``: how strings are split and joined.
    :param lower: lower-case strings given to :meth:`encode`.
    :param split_punct: split punctuation off words in :meth:`encode`.
    :param latent: ``False`` drops z: a plain GRU language model of the same size.
    :param kl_weight: final weight β of the KL term (1 = the ELBO).
    :param kl_anneal: ``"logistic"`` (Bowman et al.), ``"linear"`` or ``"none"``.
    :param anneal_steps: SVI steps over which β rises to ``kl_weight``.
    :param word_dropout: probability of replacing a decoder input by ``<unk>`` in training.
    :param free_bits: KL (nats per sentence, split evenly over dimensions) that is free.
    :param max_len: longest sentence :meth:`sample` writes (tokens, ``<eos>`` excluded).
    :param elbo: training objective: ``meanfield`` (Trace_ELBO with the Gaussian KL in
        closed form, lower variance) or ``trace`` (Monte Carlo KL).
    """

    kind = "sentence-vae"
    max_plate_nesting = 2  # sentences (dim -2) × token positions (dim -1)
    # the VAE: IWAE with its guide q(z | x); the LM (latent=False) replaces these in __init__
    static_graph = False  # sentence lengths change the graph from batch to batch
    traits = Traits(offers={"text", "encode", "decode", "sample_temperature"})

    def __init__(self, vocab_size: int, embed_dim: int = 128, hidden: int = 256, z_dim: int = 32, *,
                 vocab: Sequence[str] | None = None, level: str = "word", lower: bool = False,
                 split_punct: bool = True, latent: bool = True, kl_weight: float = 1.0,
                 kl_anneal: str = "logistic", anneal_steps: int = 2000, word_dropout: float = 0.25,
                 free_bits: float = 0.0, max_len: int = 60, elbo: str = "meanfield"):
        super().__init__()
        self.vocab_size = check_positive_int("vocab_size", vocab_size)
        if vocab_size <= len(SPECIALS):
            raise ValueError(f"vocab_size must exceed the {len(SPECIALS)} special tokens, got {vocab_size}")
        self.embed_dim = check_positive_int("embed_dim", embed_dim)
        self.hidden = check_positive_int("hidden", hidden)
        self.z_dim = check_positive_int("z_dim", z_dim)
        self.vocab = None
        if vocab is not None:
            if len(vocab) != vocab_size:
                raise ValueError(f"vocab has {len(vocab)} tokens but vocab_size is {vocab_size}")
            self.vocab = Vocab(list(vocab), level=level, lower=lower, split_punct=split_punct)
        elif level not in ("word", "char"):
            raise ValueError(f"level must be 'word' or 'char', got {level!r}")
        self.level = level
        self.latent = bool(latent)
        if kl_anneal not in ANNEAL_SCHEDULES:
            raise ValueError(f"kl_anneal must be one of {ANNEAL_SCHEDULES}, got {kl_anneal!r}")
        if not (isinstance(kl_weight, (int, float)) and kl_weight >= 0):
            raise ValueError(f"kl_weight must be >= 0, got {kl_weight!r}")
        if self.latent and kl_weight == 0:
            raise ValueError("kl_weight=0 with a latent code is an unregularised auto-encoder; "
                             "use latent=False for the plain language model")
        if not 0 <= word_dropout < 1:
            raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout!r}")
        if not free_bits >= 0:
            raise ValueError(f"free_bits must be >= 0, got {free_bits!r}")
        if elbo not in ("meanfield", "trace"):
            raise ValueError(f"elbo must be 'meanfield' or 'trace', got {elbo!r}")
        self.kl_weight, self.kl_anneal = float(kl_weight), kl_anneal
        self.anneal_steps = check_positive_int("anneal_steps", anneal_steps)
        self.word_dropout, self.free_bits = float(word_dropout), float(free_bits)
        self.max_len = check_positive_int("max_len", max_len)
        self.elbo = elbo
        # the LM baseline has no code and hence an exact likelihood
        if not self.latent:
            self.traits = replace(type(self).traits, estimator="exact", guide=False,
                                  offers={"text", "sample_temperature"})

        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.encoder = SentenceEncoder(embed_dim, hidden, z_dim) if self.latent else None
        self.decoder = SentenceDecoder(embed_dim, hidden, z_dim if self.latent else 0, vocab_size)
        # SVI steps taken, for the annealing schedule (advanced by step_end); a buffer so that it is checkpointed
        self.register_buffer("anneal_step", torch.zeros((), dtype=torch.long))
        self._q = None  # (loc, scale) of the current training batch, for free bits
        self._monitor = None  # (probe sentences, print the line) while fitting: see begin_fit

    @classmethod
    def for_data(cls, data, **kwargs) -> "SentenceVAE":
        """A model sized for a :class:`probgen.data.TextData` (its vocabulary and lengths)."""
        v = data.vocab
        kwargs.setdefault("max_len", max(1, int(data.train_lengths.max()) - 1))
        return cls(len(v), vocab=list(v.tokens), level=v.level, lower=v.lower, split_punct=v.split_punct,
                   **kwargs)

    # -- annealing -------------------------------------------------------------------------
    def kl_scale(self, step: int | None = None) -> float:
        """β at SVI step ``step`` (default: now); 1 outside training."""
        if step is None:
            if not self.training:
                return 1.0
            step = int(self.anneal_step)
        if self.kl_anneal == "none":
            return self.kl_weight
        frac = step / self.anneal_steps
        if self.kl_anneal == "linear":
            w = min(1.0, frac)
        else:  # logistic, centred at the middle of the window: ~0.007 → ~0.993
            w = 1.0 / (1.0 + math.exp(-10.0 * (frac - 0.5)))
        return max(self.kl_weight * w, 1e-6)  # poutine.scale needs a positive scale

    # -- the generative story and its guide, side by side --------------------------------
    def model(self, x: torch.Tensor | None = None, y=None, n: int | None = None):
        """p(z) Π_t p(x_t | x_<t, z), tokens masked beyond each sentence's <eos>."""
        self.register_params()
        if x is None:
            raise ValueError("SentenceVAE.model scores sentences; use sample(n) to write new ones")
        x = _trim(x)  # [n, T]
        n, t = x.shape
        with pyro.plate("sentences", n, dim=-2):
            z = None
            if self.latent:
                loc = torch.zeros(n, 1, self.z_dim, device=x.device)
                with poutine.scale(scale=self.kl_scale()):
                    z = pyro.sample("z", dist.Normal(loc, torch.ones_like(loc)).to_event(1))  # [*, n, 1, z]
            logits = self._logits(x, z)  # [*, n, T, V]
            with pyro.plate("tokens", t, dim=-1):
                pyro.sample("x", dist.Categorical(logits=logits).mask(x != PAD_ID), obs=x)
        if self.training and self.latent:
            if self.free_bits > 0 and self._q is not None:
                # objective β·n·Σ_d max(KL_d, floor) instead of β·n·Σ_d KL_d (KL_d: batch mean of
                # dimension d, q from the guide of this step): below the floor the factor cancels
                # the KL's gradient, so the optimiser has no reason to shrink it further
                loc, scale = self._q
                kl = _gauss_kl(loc, scale).mean(0)  # [z]
                floor = self.free_bits / self.z_dim
                pyro.factor("free_bits", (kl - kl.clamp(min=floor)).sum() * n * self.kl_scale())
        self._q = None

    def guide(self, x: torch.Tensor | None = None, y=None, n: int | None = None):
        """q(z | x) = N(μ(x), σ(x)) from the GRU encoder."""
        self.register_params()
        if not self.latent:
            return
        x = _trim(x)
        with pyro.plate("sentences", x.shape[0], dim=-2):
            loc, scale = self.encoder(self.embed(x), (x != PAD_ID).sum(-1))  # [n, z] each
            if self.training:
                self._q = (loc, scale)
            with poutine.scale(scale=self.kl_scale()):
                pyro.sample("z", dist.Normal(loc.unsqueeze(-2), scale.unsqueeze(-2)).to_event(1))

    def _logits(self, x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """Teacher-forced decoder logits ``[*lead, n, T, V]`` for codes ``z [*lead, n, 1, z]``."""
        n, t = x.shape
        inputs = torch.cat([torch.full_like(x[:, :1], BOS_ID), x[:, :-1]], dim=1)  # [n, T]
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(inputs.shape, device=x.device) < self.word_dropout) & (inputs > BOS_ID)
            inputs = inputs.masked_fill(drop, UNK_ID)
        emb = self.embed(inputs)  # [n, T, E]
        if z is None:
            return self.decoder(emb, None)[0]
        lead = z.shape[:-3]  # particle dims of importance sampling, if any
        z = z.reshape(-1, n, self.z_dim)  # [L, n, z]
        L = z.shape[0]
        emb = emb.unsqueeze(0).expand(L, n, t, emb.shape[-1]).reshape(L * n, t, -1)
        logits = self.decoder(emb, z.reshape(L * n, self.z_dim))[0]
        return logits.reshape(*lead, n, t, self.vocab_size)

    # -- data in and out ---------------------------------------------------------------------
    def _need_vocab(self) -> Vocab:
        if self.vocab is None:
            raise ValueError("this model was built without a vocabulary: pass token ids, not strings")
        return self.vocab

    def tokens(self, sentences) -> torch.Tensor:
        """Strings (or a token-id tensor) → ``[n, T]`` ids with ``<eos>``, padded."""
        if isinstance(sentences, str):
            sentences = [sentences]
        if isinstance(sentences, (list, tuple)) and (not sentences or isinstance(sentences[0], str)):
            if not sentences:
                raise ValueError("no sentences given")
            from ..data.text import pad_sequences

            vocab = self._need_vocab()
            ids = [vocab.encode(s) for s in sentences]
            empty = [s for s, i in zip(sentences, ids) if len(i) == 1]
            if empty:
                raise ValueError(f"empty sentence {empty[0]!r}")
            return pad_sequences(ids).to(self.device)
        return self.prepare(sentences)[0].to(self.device)

    def prepare(self, x, y=None):
        if isinstance(x, (list, tuple, str)):
            return self.tokens(x), y
        # a tensor is checked before as_tensor (under a default-device context that would copy a meta tensor)
        x = check_tensor(x if torch.is_tensor(x) else torch.as_tensor(x))
        if x.dim() != 2 or x.is_floating_point() or x.dtype == torch.bool:
            raise ValueError(f"expected token ids [n, T] (integers), got {x.dtype} of shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("empty data (no sentences)")
        if int(x.min()) < 0 or int(x.max()) >= self.vocab_size:
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got {int(x.min())}..{int(x.max())}")
        if bool((x[:, 0] == PAD_ID).any()):
            raise ValueError("a sentence is empty (starts with <pad>)")
        return x.long(), y

    def to_text(self, ids: torch.Tensor) -> list[str]:
        """Token ids ``[n, T]`` → strings (up to ``<eos>``)."""
        if self.vocab is None:
            return [" ".join(str(int(i)) for i in row if int(i) > EOS_ID) for row in ids]
        return [self.vocab.decode(row) for row in ids]

    # -- the code space ----------------------------------------------------------------------
    def _need_latent(self, what: str) -> None:
        if not self.latent:
            raise ValueError(f"{what} needs a latent code; this checkpoint is a plain language model "
                             "(latent=False)")

    @torch.no_grad()
    def encode(self, sentences) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and scale of q(z | x), ``[n, z_dim]`` each, for strings or ids."""
        self._need_latent("encode")
        x = _trim(self.tokens(sentences))
        return self.encoder(self.embed(x), (x != PAD_ID).sum(-1))

    @torch.no_grad()
    def generate(self, z: torch.Tensor | None, n: int, *, temperature: float = 1.0, greedy: bool = False,
                 max_len: int | None = None, allow_unk: bool = False, beam: int = 1,
                 no_repeat: int = 0) -> torch.Tensor:
        """Run the decoder from ``<bos>``: token ids ``[n, ≤max_len+1]`` (``<eos>``, then padding).

        ``allow_unk=False`` renormalises over the known tokens (``<unk>`` stands for thousands
        of rare ones, so it is often the single likeliest token, especially for greedy decoding).
        ``beam > 1``: beam search for the likeliest line per code instead of sampling or greedy.
        ``no_repeat = m``: never write an m-gram twice in a line (2: "to thee to thee" cannot happen)."""
        if not greedy and not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        max_len = self.max_len if max_len is None else check_positive_int("max_len", max_len)
        beam = check_positive_int("beam", beam)
        if isinstance(no_repeat, bool) or not isinstance(no_repeat, int) or no_repeat < 0:
            raise ValueError(f"no_repeat must be a whole number >= 0, got {no_repeat!r}")
        banned = [PAD_ID, BOS_ID] if allow_unk else [PAD_ID, UNK_ID, BOS_ID]
        dev = self.device
        zz = None if z is None else z.repeat_interleave(beam, 0)  # [n*beam, z]

        def step(tok, h):  # tokens [B], state [1, B, H] -> logits [B, V], state
            logits, h = self.decoder(self.embed(tok).unsqueeze(1), zz, h)
            return logits[:, -1], h

        h = self.decoder.initial_state(zz, n * beam, dev)
        if beam > 1:
            return beam_search(step, h, n=n, k=beam, max_len=max_len, bos=BOS_ID, eos=EOS_ID, pad=PAD_ID,
                               banned=banned, no_repeat=no_repeat)
        tok = torch.full((n,), BOS_ID, dtype=torch.long, device=dev)
        done = torch.zeros(n, dtype=torch.bool, device=dev)
        out = []
        for _ in range(max_len + 1):
            logits, h = step(tok, h)
            logits[:, banned] = -math.inf
            if no_repeat and out:
                block = repeat_mask(torch.stack(out, 1), no_repeat, logits.shape[-1])
                block[:, EOS_ID] = False  # a line may always end
                logits[block] = -math.inf
            if len(out) == max_len:  # out of room: end the sentence
                tok = torch.full_like(tok, EOS_ID)
            elif greedy:
                tok = logits.argmax(-1)
            else:
                tok = torch.distributions.Categorical(logits=logits / temperature).sample()
            tok = tok.masked_fill(done, PAD_ID)
            out.append(tok)
            done = done | (tok == EOS_ID)
            if bool(done.all()):
                break
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, *, greedy: bool = True, temperature: float = 1.0,
               max_len: int | None = None, allow_unk: bool = False, beam: int = 1,
               no_repeat: int = 0) -> list[str]:
        """Sentences for codes ``z [n, z_dim]`` (greedy by default: the decoder's best guess)."""
        self._need_latent("decode")
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device).reshape(-1, self.z_dim)
        ids = self.generate(z, len(z), temperature=temperature, greedy=greedy, max_len=max_len,
                            allow_unk=allow_unk, beam=beam, no_repeat=no_repeat)
        return self.to_text(ids)

    @torch.no_grad()
    def sample(self, n: int, *, temperature: float = 1.0, greedy: bool = False, z: torch.Tensor | None = None,
               max_len: int | None = None, allow_unk: bool = False, beam: int = 1,
               no_repeat: int = 0) -> list[str]:
        """Write ``n`` new sentences: z ~ N(0, I) (or the given ``z``), then the decoder.

        :param temperature: divides the logits (< 1: safer, > 1: wilder).
        :param greedy: most likely token at each step (for a VAE, diversity comes from z).
        :param allow_unk: let the decoder write ``<unk>`` (default: no, see :meth:`generate`).
        :param beam: with ``> 1``, beam search of this width: the likeliest line per code (the most fluent).
        :param no_repeat: never repeat an n-gram of this size within a line (0: off).
        """
        n = check_positive_int("n", n)
        if self.latent and z is None:
            z = torch.randn(n, self.z_dim, device=self.device)
        elif z is not None:
            self._need_latent("sampling from given codes")
            z = torch.as_tensor(z, dtype=torch.float32, device=self.device).reshape(n, self.z_dim)
        return self.to_text(self.generate(z, n, temperature=temperature, greedy=greedy, max_len=max_len,
                                          allow_unk=allow_unk, beam=beam, no_repeat=no_repeat))

    @torch.no_grad()
    def interpolate(self, a, b, steps: int = 7, *, greedy: bool = True, temperature: float = 1.0,
                    beam: int = 1, no_repeat: int = 0) -> list[str]:
        """Homotopy between two sentences (Bowman et al., Table 8): decode the codes on the
        straight line between the posterior means of ``a`` and ``b``, ends included."""
        self._need_latent("interpolate")
        if check_positive_int("steps", steps) < 2:
            raise ValueError(f"steps must be >= 2, got {steps}")
        loc, _ = self.encode([a, b])
        t = torch.linspace(0, 1, steps, device=self.device).unsqueeze(1)
        return self.decode((1 - t) * loc[0] + t * loc[1], greedy=greedy, temperature=temperature, beam=beam,
                           no_repeat=no_repeat)

    # -- likelihoods -------------------------------------------------------------------------
    @torch.no_grad()
    def _exact_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = _trim(x)
        logits = self._logits(x, None)
        lp = torch.distributions.Categorical(logits=logits).log_prob(x) * (x != PAD_ID)
        return lp.sum(-1)

    def log_prob(self, x, y=None, *, num_samples: int = 100, batch_size: int | None = None,
                 memory_budget: int = 2**25, **options) -> torch.Tensor:
        """log p(x) per sentence in nats: importance-weighted (IWAE, :func:`probgen.evaluate.log_likelihood`)
        with K = ``num_samples`` codes from q(z | x); exact for ``latent=False``.

        :param x: strings or token ids ``[n, T]``.
        :param memory_budget: floats one chunk of decoder logits may hold (K × n × T × V).
        """
        x, _ = self.prepare(x)
        x = x.to(self.device)
        check_positive_int("num_samples", num_samples)
        if not self.latent:
            was = self.training
            self.eval()
            try:
                values = torch.cat([self._exact_log_prob(xb) for xb in x.split(batch_size or 256)])
            finally:
                self.train(was)
            return (values, None) if options.get("return_weights") else values
        # the estimator budgets K × n × T floats; a chunk of logits is V times that
        return super().log_prob(x, num_samples=num_samples, batch_size=batch_size,
                                memory_budget=max(1, memory_budget * 64 // self.vocab_size), **options)

    @torch.no_grad()
    def elbo_terms(self, x, *, batch_size: int = 256) -> dict[str, torch.Tensor]:
        """Per sentence: ``kl`` (closed form), ``recon`` (−log p(x | z), one z ~ q) and ``elbo``,
        in nats; for the LM, ``recon`` is the exact NLL and ``kl`` is 0."""
        x, _ = self.prepare(x)
        x = x.to(self.device)
        was = self.training
        self.eval()
        try:
            kls, recs, locs = [], [], []
            for start in range(0, len(x), batch_size):
                xb = _trim(x[start:start + batch_size])
                if not self.latent:
                    recs.append(-self._exact_log_prob(xb))
                    kls.append(torch.zeros(len(xb), device=self.device))
                    continue
                loc, scale = self.encoder(self.embed(xb), (xb != PAD_ID).sum(-1))
                z = loc + scale * torch.randn_like(loc)
                logits = self._logits(xb, z.unsqueeze(-2))
                lp = torch.distributions.Categorical(logits=logits).log_prob(xb) * (xb != PAD_ID)
                recs.append(-lp.sum(-1))
                kls.append(_gauss_kl(loc, scale).sum(-1))
                locs.append(loc)
            kl, rec = torch.cat(kls), torch.cat(recs)
            out = {"kl": kl, "recon": rec, "elbo": -(kl + rec)}
            if locs:
                out["posterior_mean"] = torch.cat(locs)
            return out
        finally:
            self.train(was)

    def perplexity(self, x, *, num_samples: int = 100, log_prob: torch.Tensor | None = None) -> float:
        """exp(−Σ log p(x) / Σ tokens), tokens counting each sentence's ``<eos>``."""
        x, _ = self.prepare(x)
        lp = self.log_prob(x, num_samples=num_samples) if log_prob is None else log_prob
        return float(torch.exp(-lp.sum() / (x != PAD_ID).sum()))

    # -- training: the annealing counter and the KL term logged, as hooks of Story.fit ------------
    def begin_fit(self, x: torch.Tensor, y=None, *, method: str, options: dict, val=None, val_y=None) -> None:
        """Keep the probe of :meth:`epoch_end`: up to ``monitor`` (an option of ``fit``, default 512)
        validation sentences, else training sentences; print its line unless ``progress=False``."""
        monitor = check_positive_int("monitor", options.pop("monitor", 512))
        probe = val if val is not None and len(val) else x
        self._monitor = (probe[:monitor], bool(options.get("progress", True)))

    def end_fit(self, x: torch.Tensor, y=None, *, val=None, val_y=None) -> None:
        self._monitor = None

    def epoch_end(self, record: dict) -> None:
        """Add ``kl``, ``recon`` (nats/sentence: closed-form KL, one-draw reconstruction, on the
        probe), ``kl_weight`` (β reached) and ``active_units`` (code dimensions whose posterior
        mean varies, Cov > 0.01, Burda et al. 2016) to the epoch's record, and print them."""
        if self._monitor is None:  # a trainer outside fit (no probe chosen): nothing to add
            return
        probe, show = self._monitor
        terms = self.elbo_terms(probe)
        record["kl"] = float(terms["kl"].mean())
        record["recon"] = float(terms["recon"].mean())
        record["kl_weight"] = self.kl_scale(int(self.anneal_step)) if self.latent else 0.0
        if "posterior_mean" in terms and len(probe) > 1:
            record["active_units"] = int((terms["posterior_mean"].var(0) > 0.01).sum())
        if show:
            msg = (f"epoch {record['epoch']}: loss {record['train_loss']:.2f}"
                   + (f", val -ELBO {record['val_loss']:.2f}" if "val_loss" in record else "")
                   + f", KL {record['kl']:.2f} nats (β {record['kl_weight']:.2f})"
                   + (f", active units {record['active_units']}/{self.z_dim}" if "active_units" in record else ""))
            log(msg, file=sys.stdout)  # above the progress bar

    def step_end(self) -> None:
        """One SVI step taken: advance the annealing schedule (in training mode only)."""
        if self.training and self.latent:
            self.anneal_step += 1


# -- helpers -----------------------------------------------------------------------------
def _trim(x: torch.Tensor) -> torch.Tensor:
    """Drop padding columns that no sentence of the batch reaches (less work, same loss)."""
    t = int((x != PAD_ID).sum(-1).max()) if x.numel() else 1
    return x[:, :max(t, 1)]


def _gauss_kl(loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """KL(N(loc, scale) ‖ N(0, 1)) per dimension."""
    return 0.5 * (loc.pow(2) + scale.pow(2) - 1) - torch.log(scale)
