"""Text commands: ``probgen poem`` and ``probgen interpolate-text`` (``probgen train sentence-vae``
is in the registry, :mod:`probgen.recipes.text`)."""
from __future__ import annotations

from .common import add_config_args, config_from

__all__ = ["register", "cmd_poem", "cmd_interpolate"]


def register(sub) -> None:
    from ..recipes.text import InterpolateTextConfig, PoemConfig

    p = sub.add_parser("poem", help="write new lines (or poems) from a sentence-VAE checkpoint",
                       description="Draw codes z ~ N(0, I) and let the decoder write. With --lines L > 1 "
                                   "each poem's codes take a random walk, so its lines share a theme.")
    p.add_argument("checkpoint", help="a .pt file written by `probgen train sentence-vae`")
    add_config_args(p, PoemConfig, skip=("checkpoint",))
    p.set_defaults(func=cmd_poem)

    q = sub.add_parser("interpolate-text", help="walk the code space from one sentence to another",
                       description="Encode both sentences (posterior means), decode the codes on the straight "
                                   "line between them (Bowman et al. 2016, Table 8).")
    q.add_argument("checkpoint", help="a .pt file written by `probgen train sentence-vae`")
    q.add_argument("first", help="first sentence")
    q.add_argument("second", help="second sentence")
    add_config_args(q, InterpolateTextConfig, skip=("checkpoint", "first", "second"))
    q.set_defaults(func=cmd_interpolate)


def cmd_poem(args) -> int:
    from ..recipes.text import PoemConfig, poem

    print(poem(config_from(PoemConfig, args)).text())
    return 0


def cmd_interpolate(args) -> int:
    from ..recipes.text import InterpolateTextConfig, interpolate_text

    res = interpolate_text(config_from(InterpolateTextConfig, args))
    if res.unknown:
        print(f"note: not in the vocabulary (read as <unk>): {' '.join(res.unknown[:10])}")
    print(res.text())
    return 0
