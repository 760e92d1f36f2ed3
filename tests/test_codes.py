"""Paths and grids in code space (probgen.codes); the 1-D Wasserstein distance is scipy's."""
from __future__ import annotations

import pytest
import torch
from scipy.stats import wasserstein_distance

from probgen.codes import grid, lerp, neighbour_change, slerp, traversal


def test_slerp_keeps_the_norm_and_hits_the_endpoints():
    torch.manual_seed(0)
    z0, z1 = torch.randn(16), torch.randn(16)
    z1 = z1 / z1.norm() * z0.norm()
    t = torch.linspace(0, 1, 7)
    path = slerp(z0, z1, t)
    assert path.shape == (7, 16)
    assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)
    assert torch.allclose(path.norm(dim=1), z0.norm().expand(7), atol=1e-4)
    assert float(lerp(z0, z1, t)[3].norm()) < float(z0.norm())  # the straight line cuts inside the sphere


def test_lerp_and_parallel_slerp_are_the_straight_line():
    z0 = torch.tensor([1.0, 2.0])
    t = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(lerp(z0, 3 * z0, t), torch.stack([z0, 2 * z0, 3 * z0]))
    assert torch.allclose(slerp(z0, 3 * z0, t), lerp(z0, 3 * z0, t))  # parallel: no circle to follow


@pytest.mark.parametrize("eps", [1e-2, 1e-3, 1e-4, 1e-5])
def test_slerp_of_near_opposite_codes_stays_on_the_sphere(eps):
    # sin Ω ≈ 0: the arccos-of-cosine angle drifted off the sphere (norm 4.38 at 1e-3) or fell back to the
    # line through 0 (norm 2e-4 at 1e-4); the great circle through the small perpendicular part is defined
    torch.manual_seed(1)
    z0 = torch.randn(16)
    z0 = z0 / z0.norm() * 4
    perp = torch.randn(16)
    perp = perp - (perp @ z0) / (z0 @ z0) * z0
    z1 = -z0 + eps * 4 * perp / perp.norm()
    z1 = z1 / z1.norm() * 4
    path = slerp(z0, z1, torch.linspace(0, 1, 11))
    assert torch.isfinite(path).all() and path.dtype == z0.dtype
    assert torch.allclose(path.norm(dim=1), torch.full((11,), 4.0), atol=1e-4)
    assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)
    steps = (path[1:] - path[:-1]).norm(dim=1)  # equal angles: equal chords along the half circle
    assert torch.allclose(steps, steps.mean().expand(10), rtol=1e-3)


def test_slerp_of_exactly_opposite_or_zero_codes_is_the_line():
    z0, t = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.5, 1.0])
    assert torch.equal(slerp(z0, -z0, t), lerp(z0, -z0, t))  # no circle is defined
    assert torch.equal(slerp(torch.zeros(2), z0, t), lerp(torch.zeros(2), z0, t))


def test_grid_is_laid_out_as_a_picture():
    g = grid(span=2.0, steps=3)
    assert g.shape == (3, 3, 2)
    assert g[0, 0].tolist() == [-2.0, 2.0] and g[0, -1].tolist() == [2.0, 2.0]  # top row: high z₂
    assert g[-1, 0].tolist() == [-2.0, -2.0]


def test_traversal_sweeps_two_dims_and_keeps_the_rest():
    base = torch.tensor([0.5, -1.0, 7.0, 3.0])
    z = traversal(base, (2, 0), span=1.0, steps=5)
    assert z.shape == (5, 5, 4)
    assert torch.equal(z[..., 1], torch.full((5, 5), -1.0)) and torch.equal(z[..., 3], torch.full((5, 5), 3.0))
    assert torch.equal(z[:, 0, 2], torch.linspace(-1, 1, 5)) and torch.equal(z[0, :, 0], torch.linspace(-1, 1, 5))


def test_neighbour_change():
    images = torch.zeros(2, 2, 3, 3)
    images[1, 1] = 1.0  # one bright cell: its two neighbours differ by 1, the other two pairs by 0
    mean, peak = neighbour_change(images)
    assert mean == pytest.approx(0.5) and peak == pytest.approx(1.0)


def test_wasserstein_1d_is_scipys():
    # the GAN toy's W₁ (formerly probgen.models.gan.wasserstein_1d) now comes from scipy
    a = torch.randn(1000)
    assert wasserstein_distance(a.numpy(), (a + 2.5).numpy()) == pytest.approx(2.5)
    assert wasserstein_distance([0.0, 1.0], [0.0, 0.0, 1.0, 1.0]) == pytest.approx(0.0)
    assert wasserstein_distance([0.0], [0.0, 3.0]) == pytest.approx(1.5)
