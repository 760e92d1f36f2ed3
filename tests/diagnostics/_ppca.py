"""A tiny PPCA whose guide is set to its exact posterior (a perfectly trained encoder), and ways to break it."""
from __future__ import annotations

import math

import torch

from probgen.models import PPCA


def exact_ppca(x_dim: int = 6, z_dim: int = 2, sigma: float = 0.5, seed: int = 0) -> PPCA:
    """PPCA with random W, μ, σ and the guide q(z | x) = p(z | x) in closed form:
    mean M⁻¹Wᵀ(x − μ), covariance σ² M⁻¹, M = WᵀW + σ² I."""
    g = torch.Generator().manual_seed(seed)
    m = PPCA(x_dim, z_dim=z_dim)
    with torch.no_grad():
        m.W.copy_(torch.randn(x_dim, z_dim, generator=g))
        m.mu.copy_(torch.randn(x_dim, generator=g))
        m.log_sigma.fill_(math.log(sigma))
        M = m.W.T @ m.W + sigma**2 * torch.eye(z_dim)
        A = torch.linalg.solve(M, m.W.T)  # q × D
        m.encoder.weight.copy_(A)
        m.encoder.bias.copy_(-A @ m.mu)
        L = torch.linalg.cholesky(sigma**2 * torch.linalg.inv(M))
        m.posterior_tril.copy_(torch.tril(L, -1) + torch.diag(L.diagonal().log()))
    return m


def scale_guide(m: PPCA, factor: float) -> PPCA:
    """Multiply the guide's scale by ``factor``: L -> factor · L."""
    with torch.no_grad():
        strict = torch.tril(m.posterior_tril, -1) * factor
        m.posterior_tril.copy_(strict + torch.diag(m.posterior_tril.diagonal() + math.log(factor)))
    return m


def shift_guide(m: PPCA, sds: float) -> PPCA:
    """Move the guide's mean by ``sds`` of its own standard deviations in every dimension."""
    with torch.no_grad():
        m.encoder.bias.add_(sds * (m.scale_tril @ m.scale_tril.T).diagonal().sqrt())
    return m
