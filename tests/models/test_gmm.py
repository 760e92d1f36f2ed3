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
    x = _toy()[0].double()  # float64 data: the float64 GMM answers in float64
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
    assert torch.allclose(freq, gmm.weights.float(), atol=0.03)
    assert xs.dtype == torch.float32  # the parameters are float64; samples come in torch's default dtype


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
    gmm = GMM(3, likelihood=likelihood, covariance=covariance)
    x = gmm.prepare(x)[0]  # the data as the trainer sees it (float64 for a Gaussian mixture)
    gmm.fit(x, max_iter=2, progress=False)
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
    x = by_hand.prepare(x)[0]  # the pieces take prepared data (float64 for a Gaussian mixture)
    resp = by_hand.initial_responsibilities(x, init="kmeans", seed=0)
    assert resp.shape == (3, len(x)) and resp.dtype == torch.float64 and torch.all(resp.sum(0) == 1)
    with torch.no_grad():
        by_hand.m_step(x, resp)
        by_hand.m_step(x, torch.softmax(by_hand.joint_log_prob(x), 0))  # the one iteration: E-step, M-step
    torch.testing.assert_close(by_hand.log_prob(x), gmm.log_prob(x))
    assert GMM.fit is Story.fit and len(gmm.em_history) == 1 and gmm.fit_seconds > 0
    random = GMM(3, x_dim=2).initial_responsibilities(x, init="random", seed=1)
    assert torch.allclose(random.sum(0), torch.ones(len(x), dtype=x.dtype))
    with pytest.raises(ValueError, match="init must be"):
        GMM(3).fit(x, init="nearest", progress=False)
    with pytest.raises(ValueError, match="fitted by em or svi"):
        GMM(3).fit(x, method="adversarial", progress=False)


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_the_defaults_match_scikit_learn_held_out_on_digits(covariance):
    """The user's call on the user's data (float32 grey levels in [0, 1]) against scikit-learn's defaults
    on the same values in float64: same k-means start, same iterations, same held-out likelihood. (In
    float32, with reg_covar 1e-6 and constant pixels, this gap was 0.3-1.5 nats per image.)"""
    from sklearn.mixture import GaussianMixture

    from probgen.data import load

    ds = load("digits", seed=0)
    x, xt = (d.reshape(len(d), -1).double().numpy() for d in (ds.train, ds.test))
    sk = GaussianMixture(10, covariance_type=covariance, random_state=0).fit(x)
    ours = GMM(10, covariance=covariance).fit(ds.train, seed=0, progress=False)
    assert ours.means.dtype == torch.float64 and ours.log_prob(ds.test).dtype == torch.float32
    assert len(ours.em_history) == sk.n_iter_
    assert abs(float(ours.log_prob(ds.test).mean()) - sk.score(xt)) < 0.05


def test_dtype_is_float64_for_gaussians_and_float32_on_request():
    x, _ = _toy()
    assert GMM(3).fit(x, progress=False).means.dtype == torch.float64
    assert GMM(3, dtype="float32").fit(x, progress=False).means.dtype == torch.float32
    assert GMM(3, likelihood="bernoulli").fit((x > 0).float(), progress=False).x_logits.dtype == torch.float32
    with pytest.raises(ValueError, match="dtype must be"):
        GMM(3, dtype="half")


@pytest.mark.parametrize("likelihood,covariance", [("normal", "diag"), ("normal", "full"), ("bernoulli", "diag")])
def test_batched_starts_are_the_starts_one_at_a_time(likelihood, covariance):
    """B starts as a batch (parameters B × K × ..., the fits plate in the story) give each start's own
    M-step and enumerated E-step; an M-step of K × n makes one mixture again."""
    x, _ = _toy()
    x = (x > 0).float() if likelihood == "bernoulli" else x
    batched = GMM(3, likelihood=likelihood, covariance=covariance, x_dim=2)
    x = batched.prepare(x)[0]
    resp = batched.initial_responsibilities(x, init="random", seed=0, n_init=4)  # K × B × n
    assert resp.shape == (3, 4, len(x))
    torch.testing.assert_close(resp[:, 0], batched.initial_responsibilities(x, init="random", seed=0))
    with torch.no_grad():
        batched.m_step(x, resp)
        joint = batched.joint_log_prob(x)  # K × B × n, from the trace with the fits plate
        assert batched.n_fits == 4 and joint.shape == (3, 4, len(x))
        for b in range(4):
            one = GMM(3, likelihood=likelihood, covariance=covariance, x_dim=2)
            one.m_step(x, resp[:, b])
            for name, value in one.state_dict().items():
                torch.testing.assert_close(batched.state_dict()[name][b], value)
            torch.testing.assert_close(joint[:, b], one.joint_log_prob(x))
        batched.m_step(x, resp[:, 2])
    assert batched.n_fits == 1 and batched.log_prob(x).shape == (len(x),)


def test_n_init_keeps_the_start_scikit_learn_keeps():
    from sklearn.mixture import GaussianMixture

    from probgen.data import load

    ds = load("digits", seed=0)
    x = ds.train.reshape(len(ds.train), -1).double().numpy()
    sk = GaussianMixture(5, covariance_type="diag", random_state=3, n_init=3).fit(x)
    ours = GMM(5).fit(ds.train, seed=3, n_init=3, progress=False)
    assert ours.n_fits == 1 and ours.converged and ours.train_result.history[-1]["starts_running"] == 0
    assert -ours.train_result.best_val == pytest.approx(sk.lower_bound_, abs=1e-6)  # the same E-steps
    # scikit-learn takes one more M-step after the last E-step, which moves less than tol
    assert float(ours.log_prob(x).mean()) == pytest.approx(sk.score(x), abs=1e-3)


def test_nothing_is_made_on_the_default_device():
    """Every tensor of a fit and of scoring is made on the data's device: with torch's default device set
    to "meta", a tensor made without ``device=`` would be a meta tensor and the fit would fail (on a GPU it
    would be a CPU tensor beside CUDA ones)."""
    x, _ = _toy(60)
    fitted = GMM(3).fit(x, max_iter=2, progress=False)
    torch.set_default_device("meta")
    try:
        for cov, n_init in (("diag", 1), ("full", 2)):
            gmm = GMM(3, covariance=cov).fit(x, n_init=n_init, max_iter=3, progress=False)  # unbuilt: built on x's
            assert gmm.device.type == "cpu" and gmm.log_prob(x).device.type == "cpu"
        b = GMM(3, likelihood="bernoulli").fit((x > 0).float(), n_init=2, max_iter=3, progress=False)
        assert b.responsibilities((x > 0).float()).device.type == "cpu"
        assert fitted.assign(x).device.type == "cpu" and fitted.sample(4).device.type == "cpu"
    finally:
        torch.set_default_device(None)  # no device context left behind for later tests


def test_a_singular_covariance_is_one_line():
    x = torch.cat([torch.randn(40, 2), torch.zeros(40, 1)], 1)  # a constant column: zero variance
    with pytest.raises(ValueError, match="raise reg_covar"):
        GMM(2, covariance="full", reg_covar=0.0).fit(x, progress=False)
