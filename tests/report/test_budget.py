"""The tour's sizes and time estimate (probgen.report.budget): the profile the data and device pick, epochs
scaled to the training images, and the estimate / ETA lines the tour prints (present, not timed)."""
from __future__ import annotations

import json
import re

from probgen.report import budget, sections
from probgen.report.budget import (COST, PROFILE_IMAGES, PROFILES, Eta, choose_profile, duration, estimate,
                                   tour_profile)
from probgen.report.tour import FACE_SECTIONS, SECTIONS, TourConfig, tour


def test_the_data_and_the_device_choose_the_profile():
    assert choose_profile(quick=True, pixels=784, device="cuda") == "quick"
    assert choose_profile(quick=False, pixels=64, device="cpu") == "full"
    assert choose_profile(quick=False, pixels=64, device="cuda") == "full"
    assert choose_profile(quick=False, pixels=784, device="cpu") == "large-cpu"
    assert choose_profile(quick=False, pixels=784, device="cuda:0") == "large"
    # every profile has every key, and a reference time for every section of both pages
    keys = set(PROFILES["full"])
    for name, profile in PROFILES.items():
        assert set(profile) == keys, name
        assert set(SECTIONS) | set(FACE_SECTIONS) <= set(COST[name]["sections"]), name
    # on CUDA the full-size networks and the whole test set; on the CPU smaller ones and a subset
    assert PROFILES["large"]["pixel_channels"] == PROFILES["full"]["pixel_channels"]
    assert PROFILES["large"]["test_n"] is None and PROFILES["large"]["iwae_k"] == PROFILES["full"]["iwae_k"]
    assert PROFILES["large-cpu"]["pixel_channels"] < PROFILES["large"]["pixel_channels"]
    assert PROFILES["large-cpu"]["test_n"] == 1000


def test_epochs_shrink_with_more_training_images():
    assert tour_profile("full", PROFILE_IMAGES) == PROFILES["full"]
    assert tour_profile("full", 500) == PROFILES["full"]  # fewer images: the profile's epochs
    p = tour_profile("large-cpu", 5000)
    assert p["vae_epochs"] == round(150 * PROFILE_IMAGES / 5000) == 39 and p["pixel_epochs"] == 3
    assert p["gan_epochs"] == 5 and p["face_epochs"] == PROFILES["large-cpu"]["face_epochs"]
    big = tour_profile("large", 50000)
    assert big["vae_epochs"] == 4 and big["pixel_epochs"] == 1 and big["warmup_epochs"] == 1


def test_the_estimate_scales_with_the_images():
    ref = estimate("large-cpu", SECTIONS, n_train=5000, pixels=784)
    assert list(ref) == list(SECTIONS) and ref["pixels"] == COST["large-cpu"]["sections"]["pixels"]
    half = estimate("large-cpu", SECTIONS, n_train=5000, pixels=392)
    assert abs(sum(half.values()) * 2 - sum(ref.values())) < 1e-6
    small = estimate("full", SECTIONS, n_train=600, pixels=64)
    assert sum(small.values()) < sum(estimate("full", SECTIONS, n_train=1297, pixels=64).values())
    assert estimate("full", ["story"], n_train=1297, pixels=64)["story"] > 0
    assert duration(42.4) == "42 s" and duration(185) == "3 min 05 s" and duration(3720) == "1 h 02 min"


def test_eta_lines_count_sections_and_follow_the_pace(monkeypatch):
    clock = iter([0.0, 0.0, 20.0, 20.0])
    monkeypatch.setattr(budget.time, "perf_counter", lambda: next(clock))
    eta = Eta({"a": 10.0, "b": 30.0})
    assert eta.total == 40.0
    assert eta.section("a", "A") == "[1/2] A ... 0 s elapsed, about 40 s left (estimate)"
    eta.finished("a")  # a took 20 s where 10 were estimated: the rest is expected twice as slow
    assert eta.section("b", "B") == "[2/2] B ... 20 s elapsed, about 1 min 00 s left (estimate)"


def test_the_tour_says_its_estimate_and_an_eta_per_section(tmp_path, monkeypatch, capsys):
    from probgen.recipes.config import RunConfig

    for key in SECTIONS:
        monkeypatch.setattr(sections, key.replace("-", "_"), lambda sec, t: None)
    res = tour(TourConfig(quick=True, run=RunConfig(out=str(tmp_path), quiet=False)))
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert re.search(r"profile quick: about .+ \(an estimate: section times measured on 2 idle CPU cores", first), first
    for k, title in enumerate(SECTIONS.values(), 1):
        line = rf"\[{k}/{len(SECTIONS)}\] {re.escape(title)} \.\.\. .+ elapsed, about .+ left \(estimate\)"
        assert re.search(line, out), title
    assert re.search(r"  pixels: section \([0-9.]+ s wall\)", out)
    assert "wall" in res.lines[0] and "estimated" in res.lines[0]
    r = json.loads((tmp_path / "report.json").read_text())
    assert r["profile_name"] == "quick" and r["seconds"]["estimate"] > 0
    assert set(r["seconds"]["estimate_sections"]) == set(SECTIONS)
    assert r["device"].startswith("cpu (1 thread")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "s wall on cpu (1 thread)" in page and "profile quick" in page


def test_quiet_tour_prints_no_progress(tmp_path, monkeypatch, capsys):
    from probgen.recipes.config import RunConfig

    for key in SECTIONS:
        monkeypatch.setattr(sections, key.replace("-", "_"), lambda sec, t: None)
    tour(TourConfig(quick=True, run=RunConfig(out=str(tmp_path), quiet=True)))
    assert "estimate" not in capsys.readouterr().out


def test_fewer_test_images_keep_the_data_spec(tmp_path, monkeypatch):
    """A profile's test_n draws a random subset (the same for every copy of the data); checkpoints still record
    the whole set's splits, so that commands find the data again."""
    from probgen.data import load
    from probgen.recipes.config import RunConfig
    from probgen.report.tour import Tour

    monkeypatch.setitem(PROFILES["quick"], "test_n", 100)
    monkeypatch.setitem(PROFILES["quick"], "val_n", 50)
    ds = load("digits", binarize=True, seed=0)
    t = Tour(TourConfig(quick=True, run=RunConfig(out=str(tmp_path), quiet=True)), ds, tmp_path)
    assert len(t.ds.test) == len(t.ds.test_labels) == 100 and len(t.ds.val) == 50 and len(t.ds.train) == 1297
    assert t.ds.spec["splits"] == ds.spec["splits"] == [1297, 250, 250]
    grey = t.grey()
    assert len(grey.test) == 100 and (grey.test_labels == t.ds.test_labels).all()
    assert ((grey.test > 0.5).float() == t.ds.test).all()  # the same images, binarized or not
