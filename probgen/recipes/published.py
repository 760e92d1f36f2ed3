"""Published test log-likelihoods the ``compare`` table prints beside its own rows (``probgen compare`` on
``binarized-mnist``), each with the binarization of its test set and where the number comes from.

Numbers in nats per image, negative log-likelihood (lower is better). A number measured on dynamically
binarized MNIST (each pixel drawn from its grey level anew) is not comparable with one on the fixed,
statically binarized split (Larochelle & Murray) that ``binarized-mnist`` loads: ``binarization`` says which.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Published", "PUBLISHED", "published"]

_BURDA = "Burda, Grosse & Salakhutdinov 2016 (IWAE), ICLR"
_PIXEL = "van den Oord, Kalchbrenner & Kavukcuoglu 2016, ICML, Table 4"


@dataclass(frozen=True)
class Published:
    """One number of the literature table."""

    model: str  # the model as the paper names it
    nll: float  # test negative log-likelihood, nats per image
    binarization: str  # "static" (the fixed split binarized-mnist loads) or "dynamic"
    source: str  # paper (and table) the number comes from
    note: str = ""  # what else a reader must know to compare with it

    def as_dict(self) -> dict:
        return asdict(self)


#: data set name -> the published numbers on it, best last
PUBLISHED: dict[str, tuple[Published, ...]] = {
    "binarized-mnist": (
        Published("mixture of Bernoullis, K=500", 137.64, "static",
                  "Larochelle & Murray 2011 (NADE), AISTATS, Table 2"),
        Published("VAE, 1 stochastic layer (k=1 training)", 88.71, "static",
                  f"as cited in issue 17 (eval k=5000); {_BURDA}",
                  "Burda et al. Table 1 print 86.76 for this model on dynamically binarized MNIST"),
        Published("IWAE, 1 stochastic layer, k=50", 87.10, "static", f"as cited in issue 17; {_BURDA}",
                  "Burda et al. Table 1 print 84.78 on dynamically binarized MNIST"),
        Published("PixelCNN", 81.30, "static", _PIXEL),
        Published("PixelRNN (Row LSTM)", 80.54, "static", _PIXEL),
        Published("PixelRNN (Diagonal BiLSTM)", 79.20, "static", _PIXEL),
    ),
}


def published(data: str) -> tuple[Published, ...]:
    """The published numbers on data set ``data`` (empty for one without)."""
    return PUBLISHED.get(data, ())
