"""The tour's GAN section (probgen.report.adversarial): the judge's numbers against issue 18's targets."""
from __future__ import annotations

from probgen.metrics import QUALITY_TARGETS
from probgen.report.adversarial import check_targets
from probgen.report.tour import PROFILES, tour_families

TARGETS = QUALITY_TARGETS["samples"]


def test_targets_are_checked_one_by_one():
    good = check_targets({"mean_confidence": 0.9, "classes_found": 10, "max_class_fraction": 0.14}, 10)
    assert good["met"] and all(good[k]["met"] for k in ("mean_confidence", "classes_found", "max_class_fraction"))
    bad = check_targets({"mean_confidence": 0.796, "classes_found": 7, "max_class_fraction": 0.25}, 10)
    assert not bad["met"] and not bad["classes_found"]["met"] and not bad["max_class_fraction"]["met"]
    assert check_targets({"mean_confidence": 0.85, "classes_found": 10, "max_class_fraction": 0.2}, 10)["met"]
    assert TARGETS == {"mean_confidence": 0.85, "max_class_fraction": 0.20}


def test_the_full_tour_trains_the_gan_as_probgen_train_gan_does():
    from probgen.recipes.models import model_spec

    assert tour_families("adversarial") == ["gan"]
    assert PROFILES["full"]["gan_epochs"] == model_spec("gan").config().epochs == 100
    assert PROFILES["quick"]["gan_epochs"] <= 5  # the quick page stays fast
