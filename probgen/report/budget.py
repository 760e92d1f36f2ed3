"""How big the tour's runs are and how long they take (:mod:`probgen.report.tour`).

A **profile** sizes every section's runs (epochs, network sizes, importance samples K, how many validation
and test images). It is chosen by the run: ``quick`` for ``--quick``; ``full`` for small images (the
built-in 8×8 digits); for larger images (MNIST's 28×28) ``large`` on CUDA (the full-size networks) and
``large-cpu`` on the CPU (smaller pixel networks, fewer GAN epochs, K and the test set cut to fit 2 cores).

The epochs of a profile are meant for :data:`PROFILE_IMAGES` training images (the digits' training split);
with more images the tour trains proportionally fewer epochs (at least one), so every family sees about the
same number of examples whatever the data: MNIST's 50,000 images give the VAE 4 epochs instead of 150.

Before it starts, the tour prints its **estimated time**: per-section seconds measured on each profile's
reference run (:data:`COST`), scaled by the training images and pixels of this run. Before each section it
prints where it stands: section k of n, the time elapsed and the time left, the estimate of the sections still
to come scaled by the pace of the sections done (:class:`Eta`). Both are estimates, and say so.
"""
from __future__ import annotations

import time

__all__ = ["PROFILES", "PROFILE_IMAGES", "EPOCH_KEYS", "COST", "choose_profile", "tour_profile", "estimate",
           "duration", "Eta"]

#: the training images the profiles' epochs are meant for (the built-in digits' training split)
PROFILE_IMAGES = 1297
#: the profile's epochs that shrink with more training images (the faces page and the text corpus keep theirs)
EPOCH_KEYS = ("vae_epochs", "cvae_epochs", "warmup_epochs", "pixel_epochs", "gan_epochs")
#: images with more pixels than this take the ``large`` profiles
LARGE_PIXELS = 256

#: sizes of the runs (``val_n`` / ``test_n``: validation images each epoch's early stopping reads and test
#: images every section scores, drawn at random when the split is larger; None: all). ``quick`` ≤ 1 minute and
#: ``full`` ≤ 5 minutes on 2 CPU cores on the digits (docs/tour.md); ``large``: MNIST on one GPU (the full
#: networks, the whole test set, K = 1000), ``large-cpu``: MNIST on 2 CPU cores (``--train-size 5000`` within
#: 20 minutes: PixelCNN 16 × 3 at 17 s an epoch of 5,000 images instead of 32 × 4 at 51 s, 5 GAN epochs,
#: K = 200 on 1,000 test images). The GAN trains on grey levels, in ``full`` for ``probgen train gan``'s 100
#: epochs (issue 18's target)
PROFILES = {
    "quick": dict(vae_epochs=30, cvae_epochs=30, warmup_epochs=3, batch=256,
                  pixel_epochs=2, pixel_channels=16, pixel_layers=3, pixel_batch=128,
                  gan_epochs=5, gan_arch="dcgan", toy_steps=300, eval_n=300,
                  text_epochs=1, text_lines=300, text_hidden=64, text_embed=32,
                  iwae_k=50, face_epochs=40, face_steps=7, val_n=500, test_n=500),
    "full": dict(vae_epochs=150, cvae_epochs=150, warmup_epochs=10, batch=128,
                 pixel_epochs=10, pixel_channels=32, pixel_layers=4, pixel_batch=64,
                 gan_epochs=100, gan_arch="dcgan", toy_steps=2000, eval_n=1000,
                 text_epochs=6, text_lines=None, text_hidden=128, text_embed=64,
                 iwae_k=1000, face_epochs=300, face_steps=9, val_n=None, test_n=None),
    "large": dict(vae_epochs=150, cvae_epochs=150, warmup_epochs=10, batch=128,
                  pixel_epochs=10, pixel_channels=32, pixel_layers=4, pixel_batch=64,
                  gan_epochs=100, gan_arch="dcgan", toy_steps=2000, eval_n=1000,
                  text_epochs=6, text_lines=None, text_hidden=128, text_embed=64,
                  iwae_k=1000, face_epochs=300, face_steps=9, val_n=None, test_n=None),
    "large-cpu": dict(vae_epochs=150, cvae_epochs=150, warmup_epochs=10, batch=128,
                      pixel_epochs=10, pixel_channels=16, pixel_layers=3, pixel_batch=128,
                      gan_epochs=20, gan_arch="dcgan", toy_steps=2000, eval_n=1000,
                      text_epochs=6, text_lines=None, text_hidden=128, text_embed=64,
                      iwae_k=200, face_epochs=300, face_steps=9, val_n=1000, test_n=1000),
}

#: per profile: the reference run its section times come from — device, training images, pixels per image —
#: and the seconds of each section there (1 torch thread: process CPU seconds of a measured tour, the wall time
#: of an idle machine; 2026-12-04: ``quick`` and ``full`` on the digits, ``large-cpu`` on ``--data mnist
#: --train-size 5000``, 380 s of CPU in 595 s wall on 2 shared cores). ``large`` is not measured yet: its times
#: are guesses from issue 32's H200 numbers (PixelCNN ~30× its CPU speed, the small VAEs ~1×, launch-bound)
#: for MNIST's 50,000 images; the faces page's and the encoder section's are guesses too
COST = {
    "quick": {"device": "cpu", "images": 1297, "pixels": 64,
              "sections": {"pixels": 3.5, "mixture": 1, "gmm-to-vae": 9, "conditional": 1, "adversarial": 13,
                           "compare": 3, "problems": 1, "encoder": 4, "text": 1, "faces": 6, "story": 2}},
    "full": {"device": "cpu", "images": 1297, "pixels": 64,
             "sections": {"pixels": 31, "mixture": 1, "gmm-to-vae": 31, "conditional": 3, "adversarial": 66,
                          "compare": 15, "problems": 1, "encoder": 12, "text": 9, "faces": 25, "story": 5}},
    "large": {"device": "cuda", "images": 50000, "pixels": 784,
              "sections": {"pixels": 35, "mixture": 10, "gmm-to-vae": 90, "conditional": 15, "adversarial": 55,
                           "compare": 40, "problems": 5, "encoder": 10, "text": 30, "faces": 20, "story": 15}},
    "large-cpu": {"device": "cpu", "images": 5000, "pixels": 784,
                  "sections": {"pixels": 115, "mixture": 6, "gmm-to-vae": 93, "conditional": 10,
                               "adversarial": 95, "compare": 48, "problems": 5, "encoder": 17, "text": 7,
                               "faces": 25, "story": 10}},
}


def choose_profile(*, quick: bool, pixels: int, device: str) -> str:
    """The profile of a run: ``quick``; else ``full`` for images of at most :data:`LARGE_PIXELS` pixels, else
    ``large`` on CUDA and ``large-cpu`` on the CPU.

    :param pixels: pixels per image; ``device``: the run's device (``cpu``, ``cuda``, ``cuda:1``).
    """
    if quick:
        return "quick"
    if pixels <= LARGE_PIXELS:
        return "full"
    return "large" if str(device).startswith("cuda") else "large-cpu"


def tour_profile(name: str, n_train: int) -> dict:
    """Profile ``name`` for ``n_train`` training images: its :data:`EPOCH_KEYS` scaled by
    ``PROFILE_IMAGES / n_train`` when there are more (rounded, at least 1)."""
    profile = dict(PROFILES[name])
    if n_train > PROFILE_IMAGES:
        for key in EPOCH_KEYS:
            profile[key] = max(1, round(profile[key] * PROFILE_IMAGES / n_train))
    return profile


def _work(images: int, pixels: int) -> float:
    """What training costs grow with: pixels times the examples seen (epochs × images, which
    :func:`tour_profile` keeps at about ``epochs × PROFILE_IMAGES`` with more images)."""
    return pixels * min(images, PROFILE_IMAGES)


def estimate(name: str, sections, *, n_train: int, pixels: int) -> dict[str, float]:
    """Estimated seconds of each of ``sections`` (their keys) under profile ``name``: :data:`COST`'s reference
    times scaled by the work of ``n_train`` images of ``pixels`` pixels against the reference run's. A section
    without a reference time gets the mean of the others."""
    ref = COST[name]
    times = ref["sections"]
    scale = _work(n_train, pixels) / _work(ref["images"], ref["pixels"])
    default = sum(times.values()) / len(times)
    return {key: times.get(key, default) * scale for key in sections}


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``: a time as a person reads it."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Eta:
    """The tour's clock: the estimate before it starts, then before each section where it stands.

    :param estimates: section key -> estimated seconds (:func:`estimate`), in the order they run.
    """

    def __init__(self, estimates: dict[str, float]):
        self.estimates = dict(estimates)
        self.t0 = time.perf_counter()
        self.done: list[str] = []

    @property
    def total(self) -> float:
        return sum(self.estimates.values())

    def pace(self) -> float:
        """Seconds taken per second estimated over the sections done (1 before any; kept within 0.2–5)."""
        planned = sum(self.estimates[k] for k in self.done)
        if planned <= 0:
            return 1.0
        return min(5.0, max(0.2, (time.perf_counter() - self.t0) / planned))

    def section(self, key: str, title: str) -> str:
        """The line before section ``key`` starts: k of n, elapsed, the estimated time left (this one included)."""
        keys = list(self.estimates)
        k = keys.index(key) + 1
        left = self.pace() * sum(self.estimates[x] for x in keys[k - 1:])
        return (f"[{k}/{len(keys)}] {title} ... {duration(time.perf_counter() - self.t0)} elapsed, "
                f"about {duration(left)} left (estimate)")

    def finished(self, key: str) -> None:
        """Section ``key`` is done: its estimate joins the pace."""
        self.done.append(key)
