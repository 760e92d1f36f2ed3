"""Text corpora as padded token tensors, with a vocabulary that travels in checkpoints.

One sentence (or verse line) per example. ``load_text`` reads:

- a plain text file, one sentence per line (blank lines ignored, CRLF handled);
- a chinese-poetry JSON file (``[{"title", "author", "paragraphs": [...]}]``, or the
  nested *Three Hundred Tang Poems* layout): one example per ``paragraphs`` entry;
- a folder of such files, or a folder with ``*.train.txt``/``*.valid.txt``/``*.test.txt``
  (the splits are then taken as given);
- the named corpora under ``$PROBGEN_DATA_DIR``: ``ptb`` (Mikolov's Penn Treebank, word
  level), ``tang`` (Tang poems, character level) and ``sonnets`` (Shakespeare, word level;
  shipped inside the package too, so it loads with no data folder).

Each split is a ``long`` tensor ``[n, T]``: the tokens of a sentence, then ``<eos>``,
then ``<pad>`` (id 0) up to the longest sentence of the split. The decoder's ``<bos>``
is not stored; a model prepends it. Corpora without given splits are shuffled with
``seed`` and cut 90 / 5 / 5.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .safe import missing, path_like, read_bytes

__all__ = ["PAD", "UNK", "BOS", "EOS", "SPECIALS", "TEXT_CORPORA", "SHIPPED_CORPORA", "Vocab", "TextData", "load_text",
           "tokenize", "detokenize", "read_lines", "pad_sequences"]

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)  # ids 0, 1, 2, 3 in every vocabulary
LEVELS = ("word", "char")

#: named corpus -> (path under the data folder, default level)
TEXT_CORPORA = {
    "ptb": ("ptb", "word"),
    "tang": ("poetry/tang", "char"),
    "sonnets": ("poetry/english/shakespeare_sonnets.txt", "word"),
}
#: named corpora shipped inside the package (public domain; see data/corpora/README.md), used
#: when the data folder does not hold them
SHIPPED_CORPORA = {"sonnets": Path(__file__).resolve().parent / "corpora" / "sonnets.txt"}

# punctuation split off words at word level (apostrophes stay: "beauty's", "n't")
_PUNCT = re.compile(r"""([.,;:!?"()\[\]{}])""")
_SPECIAL_TOKEN = re.compile(r"^<[a-z]+>$")


# -- tokens -------------------------------------------------------------------------------
def tokenize(line: str, level: str = "word", *, lower: bool = False, split_punct: bool = True) -> list[str]:
    """Split one line into tokens.

    :param line: the text.
    :param level: ``"word"`` (whitespace, with ``.,;:!?"()`` split off) or ``"char"``
        (every character, spaces included, outer spaces stripped).
    :param lower: lower-case first.
    :param split_punct: split punctuation off words (off for pre-tokenised text like PTB,
        where ``mr.`` is one token).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    line = line.strip()
    if lower:
        line = line.lower()
    if level == "char":
        return list(line)
    out: list[str] = []
    for word in line.split():
        if not split_punct or _SPECIAL_TOKEN.match(word):  # PTB's literal "<unk>"
            out.append(word)
        else:
            out.extend(t for t in _PUNCT.split(word) if t)
    return out


def detokenize(tokens: Sequence[str], level: str = "word") -> str:
    """Join tokens back into a line (spaces between words, nothing between characters)."""
    return ("" if level == "char" else " ").join(tokens)


@dataclass
class Vocab:
    """Token <-> id table. Ids 0..3 are ``<pad> <unk> <bos> <eos>``.

    :param tokens: all tokens, specials first (``itos``).
    :param level: ``"word"`` or ``"char"``: how :meth:`encode` splits a string.
    :param lower: lower-case strings before splitting them.
    :param split_punct: split punctuation off words (word level).
    """

    tokens: list[str]
    level: str = "word"
    lower: bool = False
    split_punct: bool = True
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self.tokens = list(self.tokens)
        if tuple(self.tokens[:4]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {' '.join(SPECIALS)}, got {self.tokens[:4]}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("a vocabulary must not repeat tokens")
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")
        self._index = {t: i for i, t in enumerate(self.tokens)}

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    @classmethod
    def build(cls, lines: Iterable[Sequence[str]], *, level: str = "word", lower: bool = False,
              split_punct: bool = True, min_freq: int = 1, max_size: int | None = None) -> "Vocab":
        """Vocabulary of tokenised lines: tokens seen at least ``min_freq`` times, most frequent
        first (ties alphabetical), at most ``max_size`` entries including the four specials."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < len(SPECIALS) + 1:
            raise ValueError(f"max_vocab must be >= {len(SPECIALS) + 1}, got {max_size}")
        counts = Counter(t for line in lines for t in line if t not in SPECIALS)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max_size - len(SPECIALS)]
        return cls(list(SPECIALS) + kept, level=level, lower=lower, split_punct=split_punct)

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, self.level, lower=self.lower, split_punct=self.split_punct)

    def encode(self, text: str | Sequence[str], *, eos: bool = True) -> list[int]:
        """Ids of a string (tokenised like the corpus) or of a token list; unknown -> ``<unk>``."""
        tokens = self.tokenize(text) if isinstance(text, str) else list(text)
        ids = [self._index.get(t, self.unk_id) for t in tokens]
        return ids + [self.eos_id] if eos else ids

    def decode(self, ids: Iterable[int], *, join: bool = True) -> str | list[str]:
        """Tokens of ids up to the first ``<eos>``, without ``<pad>``/``<bos>``; a string if ``join``."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else UNK)
        return detokenize(out, self.level) if join else out

    def to_dict(self) -> dict:
        """Plain values for a checkpoint config."""
        return {"tokens": list(self.tokens), "level": self.level, "lower": self.lower,
                "split_punct": self.split_punct}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        return cls(d["tokens"], level=d.get("level", "word"), lower=d.get("lower", False),
                   split_punct=d.get("split_punct", True))


def pad_sequences(seqs: Sequence[Sequence[int]], *, length: int | None = None) -> torch.Tensor:
    """``[n, T]`` long tensor, right-padded with ``<pad>`` (0)."""
    t = max((len(s) for s in seqs), default=1) if length is None else length
    out = torch.zeros(len(seqs), max(t, 1), dtype=torch.long)
    for i, s in enumerate(seqs):
        s = list(s)[:t]
        if s:
            out[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


# -- the data set -------------------------------------------------------------------------
@dataclass
class TextData:
    """Train/validation/test token tensors of one corpus, and its vocabulary.

    ``train``/``val``/``test`` are ``long`` tensors ``[n, T]`` (tokens, ``<eos>``, ``<pad>``…);
    ``*_lengths`` count the tokens including ``<eos>``.
    """

    name: str
    vocab: Vocab
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    info: dict = field(default_factory=dict)

    @property
    def level(self) -> str:
        return self.vocab.level

    @staticmethod
    def lengths(x: torch.Tensor) -> torch.Tensor:
        return (x != 0).sum(-1)

    @property
    def train_lengths(self) -> torch.Tensor:
        return self.lengths(self.train)

    @property
    def val_lengths(self) -> torch.Tensor:
        return self.lengths(self.val)

    @property
    def test_lengths(self) -> torch.Tensor:
        return self.lengths(self.test)

    def sentences(self, split: str = "train") -> list[str]:
        """The split as strings (rare tokens show as ``<unk>``)."""
        return [self.vocab.decode(row) for row in getattr(self, split)]

    def unk_rate(self, split: str = "test") -> float:
        x = getattr(self, split)
        return float((x == Vocab.unk_id).sum()) / max(1, int((x != 0).sum()))

    def describe(self) -> str:
        tl = self.train_lengths.float()
        return (f"{self.name}: {len(self.train)}/{len(self.val)}/{len(self.test)} train/val/test "
                f"{self.level}-level sentences, vocabulary {len(self.vocab)}, mean length "
                f"{float(tl.mean()) - 1:.1f} tokens (max {int(tl.max()) - 1}), "
                f"test <unk> rate {100 * self.unk_rate('test'):.1f}%")


def _read_text_file(path: Path) -> list[str]:
    try:
        raw = read_bytes(path, "text file").decode("utf-8-sig")  # regular files only; drops a BOM
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    # splitlines handles \n, \r\n and \r; blank lines separate stanzas and are dropped
    return [ln.strip() for ln in raw.splitlines() if ln.strip()]


def _collect_paragraphs(obj, out: list[str]) -> None:
    if isinstance(obj, dict):
        if isinstance(obj.get("paragraphs"), list):
            out.extend(p.strip() for p in obj["paragraphs"] if isinstance(p, str) and p.strip())
        else:
            for v in obj.values():
                if isinstance(v, (list, dict)):
                    _collect_paragraphs(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _collect_paragraphs(v, out)


def _read_json_file(path: Path) -> list[str]:
    try:
        obj = json.loads(read_bytes(path, "JSON file").decode("utf-8-sig"))
        lines: list[str] = []
        _collect_paragraphs(obj, lines)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a chinese-poetry JSON file ({type(e).__name__}: {e})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply to be chinese-poetry data") from None
    if not lines:
        raise ValueError(f"{path}: no \"paragraphs\" entries found (expected chinese-poetry JSON: "
                         "[{\"title\", \"author\", \"paragraphs\": [...]}])")
    return lines


def read_lines(path: str | os.PathLike) -> list[str]:
    """Non-blank lines of a text file, ``paragraphs`` entries of a JSON file, or of every
    ``*.txt``/``*.json`` file of a folder (sorted by name)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".txt", ".json") and p.is_file())
        if not files:
            raise ValueError(f"{path}: folder holds no .txt or .json files")
        return [ln for f in files for ln in read_lines(f)]
    problem = missing(path, "text file")
    if problem is not None:
        raise problem
    return _read_json_file(path) if path.suffix.lower() == ".json" else _read_text_file(path)


def _given_splits(path: Path) -> dict[str, Path] | None:
    """``X.train.txt``, ``X.valid.txt`` (or ``X.val.txt``), ``X.test.txt`` in a folder."""
    if not path.is_dir():
        return None
    found = {}
    for split, names in (("train", ("train",)), ("val", ("valid", "val")), ("test", ("test",))):
        hits = [p for p in sorted(path.glob("*.txt")) if p.stem.split(".")[-1] in names]
        if len(hits) != 1:
            return None
        found[split] = hits[0]
    return found


def _resolve(path_or_name: str | os.PathLike, data_dir) -> tuple[Path, str, str | None]:
    """-> (path, display name, default level or None)."""
    key = str(path_or_name).strip()
    if key.lower() in TEXT_CORPORA:
        rel, level = TEXT_CORPORA[key.lower()]
        env = os.environ.get("PROBGEN_DATA_DIR")
        root = Path(data_dir) if data_dir is not None else (Path(env) if env else None)
        shipped = SHIPPED_CORPORA.get(key.lower())
        if shipped is not None and (root is None or not (root / rel).exists()):
            return shipped, key.lower(), level  # the same text, inside the package: works offline
        if root is None:
            raise FileNotFoundError(f"text corpus {key!r} needs a data folder: pass --data-dir DIR or set "
                                    f"PROBGEN_DATA_DIR (expected DIR/{rel})")
        path = root / rel
        if not path.exists():
            raise FileNotFoundError(f"text corpus {key!r}: {path} not found")
        return path, key.lower(), level
    path = Path(path_or_name).expanduser()
    problem = missing(path, "text file")
    if isinstance(problem, FileNotFoundError) and not path_like(path):
        raise FileNotFoundError(f"no text file or corpus {key!r} (named corpora: "
                                f"{', '.join(TEXT_CORPORA)}; else give a path to a .txt or .json file)")
    if problem is not None:  # a symlink loop, a dangling link, a deleted file: said as such
        raise problem
    if path.is_dir():
        level = "char" if any(p.suffix.lower() == ".json" for p in path.iterdir()) else None
    else:
        level = "char" if path.suffix.lower() == ".json" else None
    return path, path.stem if path.is_file() else path.name, level


def load_text(
    path_or_name: str | os.PathLike,
    level: str | None = None,
    *,
    max_len: int | None = None,
    min_freq: int = 1,
    max_vocab: int | None = None,
    lower: bool | None = None,
    max_lines: int | None = None,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    vocab: Vocab | dict | None = None,
) -> TextData:
    """Load a text corpus as padded token tensors with a vocabulary.

    :param path_or_name: ``ptb``, ``tang``, ``sonnets`` (under ``data_dir``), or a path to a
        ``.txt`` file (one sentence per line), a chinese-poetry ``.json`` file, or a folder.
    :param level: ``"word"`` or ``"char"``; ``None``: ``char`` for JSON poetry, else ``word``.
    :param max_len: drop sentences longer than this many tokens (``<eos>`` not counted);
        how many were dropped is in ``info["dropped"]``.
    :param min_freq: training-set count below which a token becomes ``<unk>``.
    :param max_vocab: keep at most this many entries (the most frequent), specials included.
    :param lower: lower-case the text (``None``: yes at word level, except for corpora with
        given splits such as PTB, which are pre-tokenised; no at char level).
    :param max_lines: keep at most this many training sentences (a deterministic random
        subset), for quick runs; the vocabulary still comes from the whole training split,
        and validation and test are kept whole.
    :param data_dir: folder of the named corpora (default ``$PROBGEN_DATA_DIR``).
    :param seed: seed of the 90/5/5 split (corpora without given splits) and of ``max_lines``.
    :param vocab: use this vocabulary (e.g. a trained model's) instead of building one.
    :raises FileNotFoundError: no such file/corpus. :raises ValueError: bad options or content.
    """
    if level is not None and level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS} (or None for automatic), got {level!r}")
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if max_lines is not None and max_lines < 1:
        raise ValueError(f"max_lines must be >= 1, got {max_lines}")
    path, name, default_level = _resolve(path_or_name, data_dir)
    if isinstance(vocab, dict):
        vocab = Vocab.from_dict(vocab)
    level = level or (vocab.level if vocab is not None else None) or default_level or "word"
    if vocab is not None and vocab.level != level:
        raise ValueError(f"the given vocabulary is {vocab.level}-level, not {level}-level")
    given = _given_splits(path)
    # corpora shipped with splits (PTB) are pre-tokenised (and cased as intended: PTB's
    # "N" is a number, not "n"): split on whitespace only and keep the case
    split_punct = vocab.split_punct if vocab is not None else given is None
    if lower is None:
        lower = vocab.lower if vocab is not None else (level == "word" and given is None)
    if given is not None:
        raw = {split: read_lines(p) for split, p in given.items()}
    else:
        lines = read_lines(path)
        perm = np.random.default_rng(seed).permutation(len(lines))
        n_val = n_test = max(1, len(lines) // 20)
        n_train = len(lines) - n_val - n_test
        if n_train < 1:
            raise ValueError(f"{path}: {len(lines)} non-blank lines is too few to split into train/val/test")
        raw = {"train": [lines[i] for i in perm[:n_train]],
               "val": [lines[i] for i in perm[n_train:n_train + n_val]],
               "test": [lines[i] for i in perm[n_train + n_val:]]}
    toks = {s: [tokenize(ln, level, lower=lower, split_punct=split_punct) for ln in v] for s, v in raw.items()}
    dropped = {}
    for s, v in toks.items():
        kept = [t for t in v if t and (max_len is None or len(t) <= max_len)]
        dropped[s] = len(v) - len(kept)
        toks[s] = kept
    if not toks["train"]:
        raise ValueError(f"{path}: no training sentences left (max_len={max_len})")
    if vocab is None:  # from the whole training split, so a subset keeps the corpus's vocabulary
        vocab = Vocab.build(toks["train"], level=level, lower=lower, split_punct=split_punct,
                            min_freq=min_freq, max_size=max_vocab)
    if max_lines is not None and len(toks["train"]) > max_lines:
        pick = np.sort(np.random.default_rng(seed + 1).permutation(len(toks["train"]))[:max_lines])
        toks["train"] = [toks["train"][i] for i in pick]
    tensors = {s: pad_sequences([vocab.encode(t) for t in v]) if v else torch.zeros(0, 1, dtype=torch.long)
               for s, v in toks.items()}
    info = {"path": str(path), "dropped": dropped, "max_len": max_len, "min_freq": min_freq,
            "splits": "given" if given is not None else f"90/5/5 shuffled, seed {seed}"}
    return TextData(name=name, vocab=vocab, train=tensors["train"], val=tensors["val"],
                    test=tensors["test"], info=info)
