"""The VAE family's pictures on the command line: ``traverse``, ``latent-map``, ``interpolate``,
``style-transfer``, ``why-vae`` and ``problems`` (the recipes are in :mod:`probgen.recipes.vae`; ``probgen train
cvae|autoencoder`` comes from the registry, :mod:`probgen.recipes.models`).

Every picture command reads a checkpoint, writes one PNG (``--out``) and, with ``--npy``, the raw
images; the data is the checkpoint's own unless ``--data`` is given. ``traverse``, ``latent-map`` and
``interpolate`` work for any checkpoint with ``encode``/``decode`` (VAE, CVAE, AutoEncoder); for a
CVAE they also take ``--label``.
"""
from __future__ import annotations

from .common import add_config_args, add_data_args, add_fit_args, add_run_args, config_from, data_given

__all__ = ["register"]

#: command -> (help, description, config class name, recipe name)
COMMANDS = {
    "traverse": ("fix all code dims but two, sweep those two on a grid",
                 "Latent traversal: every code dimension is fixed at a base code except --dims I J, which sweep "
                 "[-range, range] on a steps × steps grid (rows: dim I, top to bottom; columns: dim J, left to "
                 "right).", "TraverseConfig", "traverse"),
    "latent-map": ("2-D code: decoded grid mosaic + scatter of test codes",
                   "For a model with a 2-D code: decode a regular grid over [-range, range]² into one mosaic "
                   "(--out), and scatter the test codes coloured by label (<out>_scatter.png).",
                   "LatentMapConfig", "latent_map"),
    "interpolate": ("walk between the codes of two test images",
                    "Encode two test images, walk the straight line between their codes (and, with --slerp, the "
                    "great circle as a second row), decode each step. Each row: original, steps, original.",
                    "InterpolateConfig", "interpolate"),
    "style-transfer": ("CVAE: one test digit rewritten as every class",
                       "Encode test image INDEX with its own label (the style code), decode that code with each "
                       "label. Each row: original, then classes 0..C-1.", "StyleTransferConfig", "style_transfer"),
}


def register(sub) -> None:
    from ..recipes import vae
    from ..recipes.config import DataConfig

    for name, (help, description, config, recipe) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=description)
        p.add_argument("checkpoint", help="a .pt file written by probgen (vae, cvae, autoencoder)")
        skip = ("checkpoint", "label") if name == "style-transfer" else ("checkpoint",)
        add_config_args(p, getattr(vae, config), skip=skip)
        add_config_args(p, DataConfig, suppress=True, skip=("seed",), show_defaults=False,
                        title="data (default: the data the checkpoint was trained on)")
        p.set_defaults(func=_picture_command, config=config, recipe=recipe)

    from ..recipes.problems import ProblemsConfig

    q = sub.add_parser("problems", help="the VAE's problems: blur (sharpness) and imitation (nearest training images)",
                       description="Blur: the checkpoint's decoder means, its noisy draws and the draws of each "
                                   "--compare checkpoint (pixelcnn, gan) side by side with a sharpness number "
                                   "(mean |difference| of neighbouring pixels). Imitate or create: each generated "
                                   "image beside its nearest training image with the distance, and the "
                                   "nearest-training-image distances of generated vs held-out real images. "
                                   "Writes OUT/blur.png, nearest.png, distances.png and problems.json.")
    q.add_argument("checkpoint", help="a vae checkpoint (any model with decoder means)")
    add_config_args(q, ProblemsConfig, skip=("checkpoint",))
    add_run_args(q, out=ProblemsConfig().run.out)
    add_config_args(q, DataConfig, suppress=True, skip=("seed",), show_defaults=False,
                    title="data (default: the data the checkpoint was trained on)")
    q.set_defaults(func=cmd_problems)

    w = sub.add_parser("why-vae", help="AE vs VAE: decode the same N(0, I) codes with both, judge the samples",
                       description="Train an AutoEncoder and a VAE with identical encoder/decoder sizes on the "
                                   "same data and seed, decode the same N(0, I) codes with both, and judge the "
                                   "samples with a digit classifier trained on the real data.")
    from ..recipes.code_space import WhyVAEConfig

    cfg = WhyVAEConfig()
    add_data_args(w)
    add_run_args(w, out=cfg.run.out)
    add_config_args(w, WhyVAEConfig)
    add_fit_args(w, fit=cfg.fit)
    w.set_defaults(func=cmd_why_vae)


def cmd_problems(args) -> int:
    from ..recipes.problems import ProblemsConfig, problems

    print("\n".join(problems(config_from(ProblemsConfig, args, data=data_given(args))).lines))
    return 0


def _picture_command(args) -> int:
    from ..recipes import vae

    cfg = config_from(getattr(vae, args.config), args, data=data_given(args))
    print("\n".join(getattr(vae, args.recipe)(cfg).lines))
    return 0


def cmd_why_vae(args) -> int:
    from ..recipes.code_space import WhyVAEConfig, why_vae

    print("\n".join(why_vae(config_from(WhyVAEConfig, args)).lines))
    return 0
