"""Data sets as plain tensors: images (:mod:`probgen.data.images`) and text (:mod:`probgen.data.text`); the
checks of a user's data (:mod:`probgen.data.checks`).

``probgen.data.load`` / ``batches`` / ``Dataset`` are the image API; ``load_text`` / ``TextData`` /
``Vocab`` the text API. A :attr:`Dataset.spec` records how a data set was loaded (checkpoints keep
it) and :func:`from_spec` loads it again.
"""
from __future__ import annotations

from .checks import MAX_CLASSES, check_data, check_images, check_labels, check_tensor
from .images import DATASETS, ENV_VAR, Dataset, batches, data_dir_from_env, from_spec, load
from .text import (BOS, EOS, PAD, SPECIALS, TEXT_CORPORA, UNK, TextData, Vocab, detokenize, load_text,
                   pad_sequences, read_lines, tokenize)

__all__ = ["DATASETS", "ENV_VAR", "MAX_CLASSES", "Dataset", "load", "from_spec", "batches", "data_dir_from_env",
           "check_images", "check_data", "check_labels", "check_tensor", "PAD", "UNK", "BOS", "EOS", "SPECIALS", "TEXT_CORPORA", "Vocab", "TextData", "load_text",
           "tokenize", "detokenize", "read_lines", "pad_sequences"]
