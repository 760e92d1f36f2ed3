import pyro
import pytest
import torch

from probgen.models import GMM


def _toy(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[-3.0, 0.0], [3.0, 1.0], [0.0, 4.0]])
    m = torch.randint(0, 3, (n,), generator=g)
    return centers[m] + 0.5 * torch.randn(n, 2, generator=g), m


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_exact_log_prob_matches_brute_force(covariance):
    x, _ = _toy()
    gmm = GMM(3, covariance=covariance).fit(x, progress=False)
    brute = torch.stack([
        gmm.weights[k].log() + gmm._component_dist(torch.tensor(k)).log_prob(x) for k in range(3)
    ]).logsumexp(0)
    assert torch.allclose(gmm.log_prob(x), brute, atol=1e-4)


def test_bernoulli_mixture_matches_brute_force(digits):
    gmm = GMM(4, likelihood="bernoulli").fit(digits.train, progress=False)
    x = digits.test.reshape(len(digits.test), -1)
    p = torch.sigmoid(gmm.x_logits)
    per_k = (x[:, None] * p.log() + (1 - x[:, None]) * (1 - p).log()).sum(-1) + gmm.weights.log()
    assert torch.allclose(gmm.log_prob(digits.test), per_k.logsumexp(-1), atol=1e-3)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_em_matches_scikit_learn(covariance):
    from sklearn.mixture import GaussianMixture

    x, _ = _toy()
    sk = GaussianMixture(3, covariance_type=covariance, random_state=0).fit(x.double().numpy())
    ours = GMM(3, covariance=covariance).fit(x, seed=0, progress=False)
    assert abs(float(ours.log_prob(x).mean()) - sk.score(x.double().numpy())) < 0.01


def test_assign_and_responsibilities_agree():
    x, m = _toy()
    gmm = GMM(3).fit(x, progress=False)
    resp = gmm.responsibilities(x)
    assert resp.shape == (300, 3) and torch.allclose(resp.sum(-1), torch.ones(300), atol=1e-5)
    assert torch.equal(gmm.assign(x), resp.argmax(-1))
    # components recover the true clusters up to relabelling
    agree = max((gmm.assign(x) == perm[m]).float().mean() for perm in
                [torch.tensor(p) for p in ([0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0])])
    assert agree > 0.98


def test_sample_follows_the_story():
    x, _ = _toy()
    gmm = GMM(3, x_shape=[2]).fit(x, progress=False)
    pyro.set_rng_seed(1)
    xs, ms = gmm.sample(3000, return_components=True)
    assert xs.shape == (3000, 2) and ms.shape == (3000,)
    freq = torch.bincount(ms, minlength=3).float() / 3000
    assert torch.allclose(freq, gmm.weights, atol=0.03)


def test_svi_with_enumeration_improves_the_likelihood(digits):
    gmm = GMM(5, likelihood="bernoulli", x_dim=64)
    gmm.fit(digits.train, init="random", max_iter=1, progress=False)
    before = float(gmm.log_prob(digits.val).mean())
    gmm.fit(digits.train, method="svi", init="random", epochs=15, lr=0.05, progress=False, val=digits.val)
    assert gmm.train_result.history[-1]["train_loss"] < gmm.train_result.history[0]["train_loss"]
    assert float(gmm.log_prob(digits.val).mean()) > before


def test_save_load_round_trip(tmp_path, digits):
    gmm = GMM(3, likelihood="bernoulli", x_shape=[8, 8]).fit(digits.train, progress=False)
    gmm.save(tmp_path / "g.pt")
    back = GMM.load(tmp_path / "g.pt")
    assert torch.allclose(back.log_prob(digits.test), gmm.log_prob(digits.test))
    assert back.sample(2).shape == (2, 8, 8)


def test_errors():
    with pytest.raises(ValueError, match="n_components"):
        GMM(0)
    with pytest.raises(ValueError, match="larger than the data"):
        GMM(10).fit(torch.randn(5, 2), progress=False)
    with pytest.raises(ValueError, match="binary"):
        GMM(2, likelihood="bernoulli").fit(torch.rand(20, 3), progress=False)
    with pytest.raises(ValueError, match="fit"):
        GMM(2).sample(3)


@pytest.mark.parametrize("likelihood,covariance", [("normal", "diag"), ("normal", "full"), ("bernoulli", "diag")])
def test_reused_enumerated_trace_follows_the_parameters(likelihood, covariance):
    """EM re-scores one recorded trace per data tensor: after the parameters move, it must give
    what a freshly recorded enumerated trace gives (and the model is not re-run)."""
    x, _ = _toy()
    if likelihood == "bernoulli":
        x = (x > 0).float()
    gmm = GMM(3, likelihood=likelihood, covariance=covariance).fit(x, max_iter=2, progress=False)
    with torch.no_grad():
        before = gmm.joint_log_prob(x)
        traces = gmm._data_cache[2]["traces2048"]
        for p in gmm.parameters():
            p.add_(0.1 * torch.randn_like(p))
        reused = gmm.joint_log_prob(x)
        assert gmm._data_cache[2]["traces2048"] is traces
        fresh = [gmm._enumerated_traces(x, 2048)[0]]
        fresh[0].compute_log_prob()
    expected = fresh[0].nodes["m"]["log_prob"] + fresh[0].nodes["x"]["log_prob"]
    assert not torch.allclose(before, reused)
    torch.testing.assert_close(reused, expected)
    assert reused.shape == (3, len(x)) and "_data_cache" not in GMM(3).fit(x, progress=False).__dict__


def test_float64_data_keeps_its_precision():
    x = torch.randn(100, 2, dtype=torch.float64) * (1 + 1e-12)
    gmm = GMM(2, x_dim=2)
    gmm.double()
    got, _ = gmm.prepare(x)
    assert got.dtype == torch.float64 and torch.equal(got, x)  # not rounded through float32


def test_em_pieces_are_public_and_fit_is_the_base_fit():
    """The trainer's pieces (initial_responsibilities, m_step, joint_log_prob) by hand give what fit gives."""
    from probgen.story import Story

    x, _ = _toy()
    gmm = GMM(3).fit(x, max_iter=1, progress=False)  # the k-means start, then one iteration
    by_hand = GMM(3, x_dim=2)
    resp = by_hand.initial_responsibilities(x, init="kmeans", seed=0)
    assert resp.shape == (3, len(x)) and torch.allclose(resp.sum(0), torch.ones(len(x)))
    with torch.no_grad():
        by_hand.m_step(x, resp)
        by_hand.m_step(x, torch.softmax(by_hand.joint_log_prob(x), 0))  # the one iteration: E-step, M-step
    torch.testing.assert_close(by_hand.log_prob(x), gmm.log_prob(x))
    assert GMM.fit is Story.fit and len(gmm.em_history) == 1 and gmm.fit_seconds > 0
    random = GMM(3, x_dim=2).initial_responsibilities(x, init="random", seed=1)
    assert torch.allclose(random.sum(0), torch.ones(len(x)))
    with pytest.raises(ValueError, match="init must be"):
        GMM(3).fit(x, init="nearest", progress=False)
    with pytest.raises(ValueError, match="fitted by em or svi"):
        GMM(3).fit(x, method="adversarial", progress=False)
