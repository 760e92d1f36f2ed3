"""``probgen diagnose CKPT``: is the guide good enough, is it calibrated, has its code collapsed, and how far
is it from the true posterior?

See :mod:`probgen.recipes.diagnose` for the files it writes. The data is the checkpoint's own
unless ``--data`` is given.
"""
from __future__ import annotations

from .common import add_config_args, config_from, data_given

__all__ = ["register", "cmd_diagnose"]


def register(sub) -> None:
    from ..recipes.config import DataConfig, RunConfig
    from ..recipes.diagnose import DiagnoseConfig

    p = sub.add_parser(
        "diagnose", help="is the encoder right? SBC, collapse, PSIS k̂, NUTS vs guide, ArviZ files",
        description="Posterior diagnostics of a trained model on test points: Pareto k̂ of the guide's "
                    "importance weights (k̂ > 0.7: its IWAE log-likelihood is unreliable), simulation-based "
                    "calibration of the guide (calibrated / over-dispersed / under-dispersed / biased per latent "
                    "dimension), posterior collapse (active units, KL per dimension, I(x; z)), NUTS on the "
                    "codes of chosen points with the decoder fixed (r-hat, ESS, guide-vs-NUTS distance), "
                    "an ArviZ netCDF file with log p(x, z) and log q(z | x) per draw, and figures.")
    p.add_argument("checkpoint", help="a .pt file written by probgen (vae, gmm, ...)")
    add_config_args(p, DataConfig, suppress=True, title="data (default: the checkpoint's)")
    add_config_args(p, RunConfig, defaults={"out": DiagnoseConfig().run.out})
    add_config_args(p, DiagnoseConfig, skip=("checkpoint",))
    p.set_defaults(func=cmd_diagnose)


def cmd_diagnose(args) -> int:
    from ..recipes.diagnose import DiagnoseConfig, diagnose

    res = diagnose(config_from(DiagnoseConfig, args, data=data_given(args)))
    print("\n".join(res.lines))
    return 0
