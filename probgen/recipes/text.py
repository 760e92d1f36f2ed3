"""Text recipes: the sentence-VAE family in the registry, ``poem`` and ``interpolate_text``."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .config import DataConfig, FitConfig, RunConfig, device_opt, opt, resolve_device, seed_everything, with_device
from .models import fit_model, register_model

__all__ = ["SentenceVAEConfig", "PoemConfig", "PoemResult", "poem", "InterpolateTextConfig",
           "InterpolateTextResult", "interpolate_text"]


@dataclass
class SentenceVAEConfig(FitConfig):
    """Sentence VAE (Bowman et al. 2016): GRU encoder/decoder, KL annealing, word dropout, free bits."""

    text: str = opt("sonnets", "ptb, tang, sonnets (under --data-dir / $PROBGEN_DATA_DIR), or a path to a .txt "
                               "file (one sentence per line) or chinese-poetry .json file or folder")
    level: str = opt("auto", "tokens: auto = char for JSON poetry, else word", choices=("auto", "word", "char"))
    max_len: int = opt(40, "drop longer sentences, in tokens; 0 keeps all up to 1000 (the bound)")
    min_freq: int = opt(2, "rarer training tokens become <unk> (2: the sonnets' 1,800 one-off words do not "
                           "each take an output row)")
    max_vocab: int | None = opt(None, "keep the most frequent tokens only")
    max_lines: int | None = opt(None, "train on a random subset of this many sentences")
    val_max: int = opt(1000, "validation sentences used for early stopping and the KL log")
    embed_dim: int = opt(128, "token embedding size")
    hidden: int = opt(256, "GRU state size")
    z_dim: int = opt(32, "code size")
    kl_weight: float = opt(1.0, "final KL weight β (1 = ELBO); 0 = no latent code: the plain GRU language model")
    no_latent: bool = opt(False, "the plain GRU language model (same as --kl-weight 0)")
    kl_anneal: str = opt("logistic", "schedule of β over SVI steps (logistic: Bowman et al.)",
                         choices=("logistic", "linear", "none"))
    anneal_steps: int | None = opt(None, "steps for β to reach --kl-weight (default: half of all training steps)")
    word_dropout: float | None = opt(None, "replace decoder inputs by <unk> with this probability (default: 0.5; "
                                           "0 without latent)")
    epochs: int = opt(10, "passes over the data")
    batch_size: int = opt(64, "sentences per step")
    lr: float = opt(2e-3, "Adam learning rate")
    free_bits: float = opt(8.0, "KL nats per sentence left unpenalised, 0 to switch off (8: the code keeps "
                                "enough to tell lines apart; see docs/sentence_vae.md)")
    elbo: str = opt("meanfield", "meanfield = Trace_ELBO with the Gaussian KL in closed form",
                    choices=("meanfield", "trace"))
    eval_samples: int = opt(50, "importance samples K for the test log-likelihood, 0 to skip")
    eval_max: int = opt(500, "test sentences scored at most")


def _load_text(cfg: SentenceVAEConfig, data: DataConfig):
    from ..data import load_text

    from .guard import MAX_TOKENS, check_sizes

    check_sizes(cfg)
    text = load_text(cfg.text, None if cfg.level == "auto" else cfg.level,
                     max_len=cfg.max_len if cfg.max_len and cfg.max_len > 0 else MAX_TOKENS,  # 0: up to the bound
                     min_freq=cfg.min_freq, max_vocab=cfg.max_vocab, max_lines=cfg.max_lines,
                     data_dir=data.data_dir, seed=data.seed)
    if cfg.val_max is not None and cfg.val_max > 0:
        text.val = text.val[:cfg.val_max]
    return text


def _latent(cfg: SentenceVAEConfig) -> bool:
    return not (cfg.no_latent or cfg.kl_weight == 0)


def _build_sentence_vae(cfg: SentenceVAEConfig, text):
    from ..models.sentence_vae import SentenceVAE

    latent = _latent(cfg)
    if cfg.batch_size < 1 or cfg.epochs < 0:  # checked before the annealing schedule divides by them
        raise ValueError(f"--batch-size must be >= 1 and --epochs >= 0, got {cfg.batch_size}, {cfg.epochs}")
    steps = max(1, cfg.epochs * math.ceil(len(text.train) / cfg.batch_size))
    word_dropout = cfg.word_dropout if cfg.word_dropout is not None else (0.5 if latent else 0.0)
    return SentenceVAE.for_data(
        text, embed_dim=cfg.embed_dim, hidden=cfg.hidden, z_dim=cfg.z_dim, latent=latent,
        kl_weight=cfg.kl_weight if latent else 1.0, kl_anneal=cfg.kl_anneal,
        anneal_steps=cfg.anneal_steps or max(1, steps // 2), word_dropout=word_dropout,
        free_bits=cfg.free_bits if latent else 0.0, elbo=cfg.elbo)


def _fit_sentence_vae(model, cfg: SentenceVAEConfig, text, path: Path, run: RunConfig, notes=None):
    """:func:`~probgen.recipes.models.fit_model`, the test numbers (KL, ELBO, NLL, perplexity) measured on the
    trained model into its checkpoint, then the report beside it (``<model>.json``: those, the history and
    five sampled lines)."""
    from ..io import write_json

    notes = notes if notes is not None else []
    notes.append(f"data: {text.describe()}")
    report = {"data": text.describe(), "info": text.info, "latent": _latent(cfg)}

    def measured(trained) -> dict:
        report["test"] = _test_numbers(trained, cfg, text, run, notes)
        return {"test": report["test"]} if report["test"] is not None else {}

    fit_model(model, cfg, text, path, run, extra=measured)
    model.eval()
    report.update(fit_seconds=model.train_result.seconds, n_params=model.n_params(),
                  history=model.train_result.history)
    if report.get("test") is None:
        report.pop("test", None)
    seed_everything(run.seed)
    samples = model.sample(5)
    report["samples"] = samples
    notes.append("samples:\n  " + "\n  ".join(samples))
    write_json(path.with_suffix(".json"), with_device(report, model.device))
    return model


def _test_numbers(model, cfg: SentenceVAEConfig, text, run: RunConfig, notes: list) -> dict | None:
    """KL, ELBO and its perplexity on (up to ``eval_max``) test sentences, and with ``eval_samples`` the
    log-likelihood (exact, or IWAE) and its perplexity; a summary line into ``notes``."""
    import torch

    test = text.test[:cfg.eval_max] if cfg.eval_max and cfg.eval_max > 0 else text.test
    if not len(test):
        return None
    model.eval()
    terms = model.elbo_terms(test)
    ntok = int((test != 0).sum())
    t = {"n": len(test), "tokens": ntok, "kl": float(terms["kl"].mean()), "elbo": float(terms["elbo"].mean()),
         "ppl_elbo": float(torch.exp(-terms["elbo"].sum() / ntok))}
    if cfg.eval_samples > 0:
        seed_everything(run.seed)
        lp = model.log_prob(test, num_samples=cfg.eval_samples)
        t.update(nll=float(-lp.mean()), ppl=model.perplexity(test, log_prob=lp),
                 estimator="exact" if model.traits.exact else f"IWAE K={cfg.eval_samples}")
    notes.append(f"test ({t['n']} sentences): KL {t['kl']:.2f} nats, -ELBO {-t['elbo']:.2f} nats/sentence"
                 + (f", NLL {t['nll']:.2f} ({t['estimator']}), perplexity {t['ppl']:.1f}" if "nll" in t else ""))
    return t


register_model("sentence-vae", SentenceVAEConfig, _build_sentence_vae, fit=_fit_sentence_vae, load=_load_text,
               tour="text", help="sentence VAE (Bowman et al. 2016) over text: GRU encoder/decoder, KL annealing, "
               "word dropout, free bits; --kl-weight 0 trains the plain GRU language model of the same size")


# -- poem / interpolate-text ------------------------------------------------------------------
def _load_text_model(path: str, device: str):
    from ..models import load

    model = load(path, device=str(resolve_device(device)))
    if "text" not in model.traits.offers:
        raise ValueError(f"{path}: holds a {model.kind!r} model, not a sentence-vae")
    return model


@dataclass
class PoemConfig:
    """``probgen poem``: new lines (or poems) from a sentence-VAE checkpoint."""

    checkpoint: str = opt("", "a .pt file written by `probgen train sentence-vae`")
    n: int = opt(5, "number of poems", flag="-n")
    lines: int = opt(1, "lines per poem")
    coherence: float = opt(0.8, "with --lines > 1: correlation of consecutive lines' codes in [0, 1)")
    temperature: float = opt(0.7, "divide the logits by T (0.7: on the sonnets a share 0.61 of word pairs occur in "
                                  "the training lines, real held-out lines 0.66, T = 1 0.37; docs/sentence_vae.md)")
    greedy: bool = opt(False, "most likely token at each step (variety from z only)")
    beam: int = opt(1, "beam search of this width: the likeliest line for each code (the most fluent; variety "
                       "from z only); 1 = sample (or --greedy)")
    no_repeat: int = opt(2, "never write the same run of this many tokens twice in a line (2: no repeated word "
                            "pair, against 'to thee to thee'); 0 = off")
    max_len: int | None = opt(None, "longest line in tokens (default: the model's)")
    allow_unk: bool = opt(False, "let the decoder write <unk> (default: renormalise over known tokens)")
    seed: int = opt(0, "random seed")
    device: str = device_opt()


@dataclass
class PoemResult:
    poems: list = field(default_factory=list)  # each a list of lines

    def text(self) -> str:
        sep = "\n\n" if any(len(p) > 1 for p in self.poems) else "\n"
        return sep.join("\n".join(p) for p in self.poems)


def poem(cfg: PoemConfig) -> PoemResult:
    """Draw codes z ~ N(0, I) and decode; with ``lines > 1`` each poem's codes take a random walk."""
    import torch

    from .guard import check_sizes

    check_sizes(cfg)  # -n × --lines, --max-len: bounded
    if not 0 <= cfg.coherence < 1:
        raise ValueError(f"--coherence must be in [0, 1), got {cfg.coherence}")
    if not cfg.temperature > 0:
        raise ValueError(f"--temperature must be > 0, got {cfg.temperature}")
    seed_everything(cfg.seed)
    model = _load_text_model(cfg.checkpoint, cfg.device)
    kw = dict(temperature=cfg.temperature, greedy=cfg.greedy, max_len=cfg.max_len, allow_unk=cfg.allow_unk,
              beam=cfg.beam, no_repeat=cfg.no_repeat)
    with torch.no_grad():
        if "decode" not in model.traits.offers or cfg.lines == 1:  # no code (a plain LM): no walk
            lines = model.sample(cfg.n * cfg.lines, **kw)
        else:
            # a stationary random walk in code space: every z is N(0, I), neighbours are correlated
            c = cfg.coherence
            z = [torch.randn(cfg.n, model.z_dim, device=model.device)]
            for _ in range(cfg.lines - 1):
                z.append(c * z[-1] + math.sqrt(1 - c * c) * torch.randn_like(z[-1]))
            z = torch.stack(z, dim=1).reshape(-1, model.z_dim)  # [n * lines, z]
            lines = model.sample(len(z), z=z, **kw)
    return PoemResult([lines[i * cfg.lines:(i + 1) * cfg.lines] for i in range(cfg.n)])


@dataclass
class InterpolateTextConfig:
    """``probgen interpolate-text``: decode the codes on the line between two sentences."""

    checkpoint: str = opt("", "a .pt file written by `probgen train sentence-vae`")
    first: str = opt("", "first sentence")
    second: str = opt("", "second sentence")
    steps: int = opt(7, "codes on the path, both ends included")
    sample: bool = opt(False, "sample each line instead of greedy decoding")
    beam: int = opt(1, "beam search of this width instead of greedy decoding (the likeliest line per code)")
    no_repeat: int = opt(2, "never write the same run of this many tokens twice in a line (2: no repeated word "
                            "pair); 0 = off")
    temperature: float = opt(1.0, "with --sample")
    seed: int = opt(0, "random seed")
    device: str = device_opt()


@dataclass
class InterpolateTextResult:
    first: str
    second: str
    t: list  # positions on the path, 0..1
    lines: list  # the decoded sentences
    unknown: list = field(default_factory=list)  # tokens read as <unk>

    def text(self) -> str:
        width = len(f"{1:.2f}")
        rows = [f"{'a':>{width}}  {self.first}"]
        rows += [f"{t:>{width}.2f}  {line}" for t, line in zip(self.t, self.lines)]
        return "\n".join(rows + [f"{'b':>{width}}  {self.second}"])


def interpolate_text(cfg: InterpolateTextConfig) -> InterpolateTextResult:
    """Encode both sentences (posterior means) and decode the straight line between the codes."""
    import torch

    from .guard import check_sizes

    check_sizes(cfg)
    seed_everything(cfg.seed)
    model = _load_text_model(cfg.checkpoint, cfg.device)
    if "decode" not in model.traits.offers:
        raise ValueError(f"{cfg.checkpoint}: a plain language model (no latent code) cannot interpolate")
    unknown = []
    for s, name in ((cfg.first, "first"), (cfg.second, "second")):
        if not s.strip():
            raise ValueError(f"the {name} sentence is empty")
        if model.vocab is not None:
            unknown += [t for t in model.vocab.tokenize(s) if t not in model.vocab]
    with torch.no_grad():
        lines = model.interpolate(cfg.first, cfg.second, cfg.steps, greedy=not cfg.sample,
                                  temperature=cfg.temperature, beam=cfg.beam, no_repeat=cfg.no_repeat)
    return InterpolateTextResult(cfg.first, cfg.second, torch.linspace(0, 1, cfg.steps).tolist(), lines, unknown)
