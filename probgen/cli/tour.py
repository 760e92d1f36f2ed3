"""``probgen tour``: the whole lecture in one command, as one HTML page (:mod:`probgen.report.tour`)."""
from __future__ import annotations

from .common import add_config_args, add_run_args, config_from

__all__ = ["register", "cmd_tour"]


def register(sub) -> None:
    from ..report.tour import TourConfig

    p = sub.add_parser("tour", help="train every family on digits and write one HTML report (report.html)",
                       description="The whole lecture in one command: trains every family on the built-in "
                                   "digits (offline), draws each family's figures, compares all of them on "
                                   "the same test set, and writes OUT/report.html (one self-contained page) "
                                   "and OUT/report.json. On the built-in digits about 2 minutes on 2 CPU cores "
                                   "(--quick about 30 s); --data mnist --train-size 5000 10-14 minutes there. It "
                                   "prints its estimated time first and an ETA before each section. Every input "
                                   "is checked before the first section. OUT/tour.json records what the tour "
                                   "wrote: a rerun into the same --out (also after Ctrl-C) starts afresh; a tour "
                                   "of other data there is refused unless --force.")
    add_config_args(p, TourConfig)
    add_run_args(p, out=TourConfig().run.out)
    p.set_defaults(func=cmd_tour)


def cmd_tour(args) -> int:
    from ..report.tour import TourConfig, tour

    print("\n".join(tour(config_from(TourConfig, args)).lines))
    return 0
