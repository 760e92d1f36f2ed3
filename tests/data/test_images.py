import numpy as np
import pytest
import torch

from probgen.data import batches, load


def test_digits_splits_shapes_and_determinism():
    a = load("digits", seed=0)
    b = load("digits", seed=0)
    c = load("digits", seed=1)
    assert (len(a.train), len(a.val), len(a.test)) == (1297, 250, 250)
    assert a.shape == (8, 8) and a.x_dim == 64 and a.n_classes == 10
    assert a.train.dtype == torch.float32 and 0 <= a.train.min() and a.train.max() <= 1
    assert torch.equal(a.train, b.train) and not torch.equal(a.train, c.train)
    # the three splits partition the 1,797 images
    assert len(torch.cat([a.train, a.val, a.test]).reshape(1797, -1).unique(dim=0)) <= 1797


def test_binarize_and_dequantize():
    b = load("digits", binarize=True)
    assert b.binarized and set(b.train.unique().tolist()) <= {0.0, 1.0}
    d = load("digits", dequantize=True)
    assert d.dequantized and 0 < d.train.min() and d.train.max() < 1
    with pytest.raises(ValueError, match="either binarize or dequantize"):
        load("digits", binarize=True, dequantize=True)


def test_unknown_name_and_missing_files(tmp_path, monkeypatch):
    monkeypatch.delenv("PROBGEN_DATA_DIR", raising=False)
    with pytest.raises(ValueError, match="unknown data set"):
        load("cifar")
    with pytest.raises(FileNotFoundError, match="PROBGEN_DATA_DIR"):
        load("mnist")
    with pytest.raises(FileNotFoundError, match="mnist.npz"):
        load("mnist", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="binarized_mnist.npz"):
        load("binarized-mnist", data_dir=tmp_path)


def test_user_npz_npy_and_png_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 6, 5), dtype=np.uint8)
    np.savez(tmp_path / "mine.npz", x=x, y=np.arange(50) % 3)
    ds = load(str(tmp_path / "mine.npz"))
    assert ds.shape == (6, 5) and len(ds.train) + len(ds.val) + len(ds.test) == 50
    assert ds.n_classes == 3
    np.save(tmp_path / "mine.npy", x.astype(np.float32) / 255)
    assert load(str(tmp_path / "mine.npy")).shape == (6, 5)
    for cls in ("a", "b"):
        (tmp_path / "png" / cls).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(x[i]).save(tmp_path / "png" / cls / f"{i}.png")
    ds = load(str(tmp_path / "png"))
    assert ds.shape == (6, 5) and ds.n_classes == 2


@pytest.mark.parametrize("bad, match", [
    (np.full((4, 3, 3), np.nan, dtype=np.float32), "NaN"),
    (np.full((4, 3, 3), 2.0, dtype=np.float32), r"\[0, 1\]"),
    (np.zeros((0, 3, 3), dtype=np.float32), "no data"),
    (np.zeros((4, 3, 3, 3), dtype=np.uint8), "colour"),
])
def test_user_data_errors(tmp_path, bad, match):
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match=match):
        load(str(tmp_path / "bad.npy"))


def test_shared_mnist_and_binarized(data_dir):
    m = load("mnist", data_dir=data_dir)
    assert (len(m.train), len(m.val), len(m.test)) == (50000, 10000, 10000) and m.shape == (28, 28)
    b = load("binarized-mnist", data_dir=data_dir)
    assert (len(b.train), len(b.val), len(b.test)) == (50000, 10000, 10000)
    assert b.binarized and set(b.test[:100].unique().tolist()) <= {0.0, 1.0}
    assert b.test_labels is not None and b.test_labels[0] == 0  # sorted by class


def test_batches_cover_everything_once():
    x = torch.arange(10.0)
    seen = torch.cat([xb for xb, _ in batches(x, 3, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == x.tolist()


def test_spec_records_how_the_data_was_loaded_and_from_spec_loads_it_again():
    from probgen.data import from_spec

    ds = load("digits", binarize=True, seed=3)
    spec = ds.spec
    assert spec == {"name": "digits", "data_dir": None, "binarize": True, "dequantize": False, "seed": 3,
                    "splits": [1297, 250, 250]}
    again = from_spec(spec)
    assert torch.equal(again.test, ds.test) and again.binarized
    with pytest.raises(ValueError, match="split sizes"):
        from_spec({**spec, "splits": [1, 2, 3]})
    with pytest.raises(ValueError, match="a data spec must be a dict"):
        from_spec({"seed": 0})


def test_check_data():
    from probgen.data import check_data

    assert check_data(np.zeros((2, 3), dtype=np.uint8)).dtype == torch.float32
    with pytest.raises(ValueError, match="each example must have 4 values"):
        check_data(torch.zeros(2, 3), x_dim=4)
    with pytest.raises(ValueError, match="NaN or inf"):
        check_data(torch.tensor([[float("nan")]]))
    with pytest.raises(ValueError, match="Bernoulli likelihood needs values in"):
        check_data(torch.tensor([[2.0]]), binary=True)


def test_spec_of_a_user_file_is_its_absolute_path(tmp_path, monkeypatch):
    from probgen.data import from_spec

    np.savez(tmp_path / "mine.npz", x=np.random.default_rng(0).random((20, 4, 4)).astype(np.float32))
    monkeypatch.chdir(tmp_path)
    ds = load("mine.npz", seed=1)
    assert ds.spec["name"] == str(tmp_path / "mine.npz") and ds.spec["splits"] == [16, 2, 2]
    monkeypatch.chdir("/")
    assert torch.equal(from_spec(ds.spec).train, ds.train)
