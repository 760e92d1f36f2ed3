"""The edges of the Python API for a user's program: one-line ValueError/TypeError as built-ins give."""
from __future__ import annotations

import pyro
import pytest
import torch

import probgen
from tests.test_adapt import PlainVAE, _data, guide_fn, model_fn


def test_a_class_instead_of_an_instance_is_a_clear_type_error():
    with pytest.raises(TypeError, match=r"PlainVAE is a class: pass an instance, PlainVAE\(\.\.\.\)"):
        probgen.fit(PlainVAE, _data(), epochs=1, progress=False)


@pytest.mark.parametrize("pair", [(model_fn, model_fn), (guide_fn, guide_fn)], ids=["model", "guide"])
def test_the_model_as_its_own_guide_is_one_line(pair):
    with pytest.raises(ValueError, match=r"the guide is the model itself") as err:
        probgen.fit(pair, _data(), epochs=1, progress=False)
    assert "\n" not in str(err.value)


def test_data_of_another_shape_is_a_value_error_and_keeps_the_shape():
    program = PlainVAE()
    probgen.fit(program, _data(), epochs=1, batch_size=32, progress=False)
    with pytest.raises(ValueError, match=r"PlainVAE: the data have shape \(7,\) per example; it was fitted on \(6,\)"):
        probgen.log_likelihood(program, torch.ones(5, 7), num_samples=2)
    assert probgen.sample(program, 3).shape == (3, 6)  # the failed call changed nothing


def test_a_program_checkpoint_with_nan_weights_is_refused(tmp_path):
    story = probgen.fit(PlainVAE(), _data(), epochs=1, batch_size=32, progress=False)
    with torch.no_grad():
        story.program.dec.weight.fill_(float("nan"))
    path = story.save(tmp_path / "nan.pt")
    pyro.clear_param_store()
    with pytest.raises(ValueError, match=r"nan.pt: checkpoint holds NaN or infinite weights \(program.dec.weight\)"):
        probgen.load(path, story=PlainVAE)
