"""Tokenisation, vocabulary round trips, file formats and named corpora of probgen.data.text."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from probgen.data.text import SPECIALS, Vocab, detokenize, load_text, pad_sequences, read_lines, tokenize


def test_tokenize_word_and_char():
    assert tokenize("  Shall I compare thee, to a summer's day?  ", "word", lower=True) == \
        ["shall", "i", "compare", "thee", ",", "to", "a", "summer's", "day", "?"]
    assert tokenize("mr. <unk> is n't", "word", split_punct=False) == ["mr.", "<unk>", "is", "n't"]
    assert tokenize("<unk> said.", "word") == ["<unk>", "said", "."]  # PTB's literal <unk> stays whole
    assert tokenize("秦川雄帝宅，函谷壯皇居。", "char") == list("秦川雄帝宅，函谷壯皇居。")
    assert detokenize(list("白日依山盡"), "char") == "白日依山盡"
    with pytest.raises(ValueError, match="level"):
        tokenize("x", "sentence")


def test_vocab_round_trip_with_unk_and_plain_dict():
    lines = [tokenize(s, "word") for s in ("the cat sat", "the dog sat", "a cat")]
    v = Vocab.build(lines, level="word", min_freq=2)
    assert v.tokens[:4] == list(SPECIALS)
    assert set(v.tokens[4:]) == {"the", "cat", "sat"}  # seen twice or more
    ids = v.encode("the zebra sat")
    assert ids == [v.tokens.index("the"), v.unk_id, v.tokens.index("sat"), v.eos_id]
    assert v.decode(ids) == "the <unk> sat"
    assert v.decode([v.bos_id, *ids, 5, 6]) == "the <unk> sat"  # stops at <eos>, skips <bos>
    d = v.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain values, fit for a checkpoint config
    w = Vocab.from_dict(d)
    assert w.tokens == v.tokens and w.encode("the zebra sat") == ids
    with pytest.raises(ValueError, match="start with"):
        Vocab(["a", "b"])
    assert Vocab.build(lines, max_size=6).tokens[4:] == ["cat", "sat"]  # most frequent, ties by name
    assert pad_sequences([[5, 3], [3]]).tolist() == [[5, 3], [3, 0]]


def test_plain_text_crlf_blank_lines_and_splits(tmp_path):
    words = ("one", "two", "three", "four")
    lines = [f"Line {words[i % 4]} of the poem," if i % 5 else f"Line {words[i % 4]} of the long, long poem;"
             for i in range(40)]
    raw = "\r\n".join(lines[:20]) + "\r\n\r\n  \r\n" + "\r\n".join(lines[20:]) + "\r\n"
    f = tmp_path / "poem.txt"
    f.write_bytes(raw.encode("utf-8"))
    assert read_lines(f) == lines  # CRLF and blank lines gone
    d = load_text(f, seed=3)
    assert (len(d.train), len(d.val), len(d.test)) == (36, 2, 2)
    assert d.level == "word" and d.name == "poem"
    assert all("\r" not in t for t in d.vocab.tokens)
    # every sentence: tokens, <eos>, then padding; lengths count the <eos>
    for row, n in zip(d.train, d.train_lengths):
        assert row[n - 1] == d.vocab.eos_id and (row[n:] == 0).all() and (row[:n - 1] > 3).all()
    got = sorted(d.sentences("train") + d.sentences("val") + d.sentences("test"))
    assert got == sorted(detokenize(tokenize(s, lower=True), "word") for s in lines)
    again = load_text(f, seed=3)
    assert torch.equal(again.train, d.train)  # deterministic split
    assert not torch.equal(load_text(f, seed=4).train, d.train)
    short = load_text(f, max_len=6)  # "line one of the poem ," has 6 tokens, the long lines 9
    assert sum(short.info["dropped"].values()) == 8
    assert int(short.train_lengths.max()) == 7
    with pytest.raises(ValueError, match="no training sentences"):
        load_text(f, max_len=5)


def test_char_level_json_and_given_splits(tmp_path):
    poems = [{"title": "t", "author": "a", "paragraphs": ["白日依山盡，黃河入海流。", "欲窮千里目，更上一層樓。"]}] * 5
    f = tmp_path / "poet.tang.json"
    f.write_text(json.dumps(poems, ensure_ascii=False), encoding="utf-8")
    d = load_text(f)  # JSON -> char level by default
    assert d.level == "char" and len(d.train) == 8
    assert d.vocab.decode(d.vocab.encode("白日依山盡")) == "白日依山盡"
    assert d.vocab.decode(d.vocab.encode("白日依山X")) == "白日依山<unk>"
    w = load_text(f, "word")
    assert w.level == "word"
    folder = tmp_path / "corpus"
    folder.mkdir()
    for split, n in (("train", 8), ("valid", 3), ("test", 2)):
        (folder / f"c.{split}.txt").write_text("\n".join(f" mr. smith said N {i} " for i in range(n)) + "\n")
    g = load_text(folder)
    assert (len(g.train), len(g.val), len(g.test)) == (8, 3, 2) and g.info["splits"] == "given"
    assert "mr." in g.vocab and "N" in g.vocab  # pre-tokenised: no punctuation split, case kept
    sub = load_text(folder, max_lines=5)
    assert len(sub.train) == 5 and len(sub.test) == 2 and sub.vocab.tokens == g.vocab.tokens
    v = load_text(folder, vocab=g.vocab.to_dict())
    assert v.vocab.tokens == g.vocab.tokens


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="named corpora"):
        load_text("no-such-corpus")  # a bare word: a misspelt corpus name
    with pytest.raises(FileNotFoundError, match="missing.txt .no such file"):
        load_text(tmp_path / "missing.txt")  # a path: the file is not there
    with pytest.raises(ValueError, match="level"):
        load_text(tmp_path, level="byte")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="chinese-poetry"):
        load_text(bad)
    (tmp_path / "two.txt").write_text("one\ntwo\n")
    with pytest.raises(ValueError, match="too few"):
        load_text(tmp_path / "two.txt")


def test_named_corpora(data_dir):
    s = load_text("sonnets", data_dir=data_dir)
    n = len(s.train) + len(s.val) + len(s.test)
    assert n == 2155 and len(s.test) == 107  # the file's non-empty lines (one is blank after CRLF strip)
    assert all("\r" not in t for t in s.vocab.tokens)
    p = load_text("ptb", data_dir=data_dir)
    assert (len(p.train), len(p.val), len(p.test)) == (42068, 3370, 3761)
    assert len(p.vocab) == 4 + 9998  # PTB's 9,999 types incl. <unk>, plus <pad> <bos> <eos>


def test_sonnets_ship_with_the_package_and_load_offline(tmp_path, monkeypatch):
    from probgen.data.text import SHIPPED_CORPORA

    monkeypatch.delenv("PROBGEN_DATA_DIR", raising=False)
    s = load_text("sonnets")  # no data folder at all
    assert Path(s.info["path"]) == SHIPPED_CORPORA["sonnets"] and s.level == "word"
    assert len(s.train) + len(s.val) + len(s.test) == 2155 and len(s.test) == 107
    assert "From fairest creatures we desire increase," in SHIPPED_CORPORA["sonnets"].read_text(encoding="utf-8")
    assert (SHIPPED_CORPORA["sonnets"].parent / "README.md").read_text().count("public domain") >= 1
    # a data folder without the file: the shipped copy; other named corpora still need the folder
    assert Path(load_text("sonnets", data_dir=tmp_path).info["path"]) == SHIPPED_CORPORA["sonnets"]
    with pytest.raises(FileNotFoundError, match="needs a data folder"):
        load_text("tang")


def test_shipped_sonnets_equal_the_shared_data_copy(data_dir):
    shipped, shared = load_text("sonnets", data_dir=Path("/nonexistent")), load_text("sonnets", data_dir=data_dir)
    assert shipped.info["path"] != shared.info["path"]
    assert shipped.vocab.tokens == shared.vocab.tokens
    assert all(torch.equal(getattr(shipped, k), getattr(shared, k)) for k in ("train", "val", "test"))
