"""What a story *is*, declared once on its class: :class:`Traits`.

Trainers (``trainers``), the estimator (``estimator``, ``guide``, ``memory_per_example``), the recipes
and the report (``labels``, ``offers``) read these fields and nothing else: no ``hasattr`` probing, no
family names. A story sets ``traits = Traits(...)`` on its class, or per instance in ``__init__``
(``dataclasses.replace(type(self).traits, ...)``) when a constructor argument decides it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["Traits", "ESTIMATORS", "OFFERS", "fold_legacy_traits"]

@dataclass(frozen=True)
class Traits:
    """What a story *is*, declared once on its class (``traits = Traits(...)``, or per instance in
    ``__init__`` when a constructor argument decides it). Trainers, the estimator, the recipes and
    the report read these fields and nothing else: no ``hasattr`` probing, no family names.

    :param trainers: names of the trainers that can fit it (:data:`probgen.infer.TRAINERS`: ``"svi"``,
        ``"em"``, ``"adversarial"``); the first is what :meth:`Story.fit` uses by default.
    :param labels: ``model(x, y)`` needs labels ``y`` (a conditional story).
    :param estimator: how :func:`probgen.evaluate.score` estimates log p(x): ``"exact"`` (the
        story's own ``log_prob``), ``"iwae"`` (importance sampling with the guide), ``"proposal"``
        (importance sampling with a proposal the story declares: ``log_prob`` supplies it), or
        ``"parzen"`` (kernel density on samples: GANs).
    :param proposal_name: the table's name of a ``"proposal"`` estimator (e.g. ``"IS, fitted code prior"``).
    :param guide: the guide is a real posterior approximation over per-example latents, so an IWAE
        estimate exists (for an ``"exact"`` story too: then ``score(estimator="iwae")`` can check it).
    :param memory_per_example: floats one example costs per importance sample when scored, beyond
        the data (e.g. decoder logits T × V of a sentence); ``0``: the estimator's default budget.
    :param offers: optional abilities, named: ``"encode"``/``"decode"`` (a code space),
        ``"sample_mean"`` (``sample(n, mean=True)``), ``"transfer"`` (style transfer),
        ``"complete"`` (image completion), ``"responsibilities"`` (posterior over a discrete site),
        ``"text"`` (sentences in and out), ``"label_prior"`` (a p(y) site of its own), ``"cluster"``
        (``cluster(x)`` / ``cluster_probs(x)``: the cluster of each example), ``"sample_label"``
        (``sample(n, label=c)`` draws class or cluster ``c``), ``"sample_temperature"``
        (``sample(n, temperature=t)``).
    """

    trainers: tuple[str, ...] = ("svi",)
    labels: bool = False
    estimator: str = "iwae"
    proposal_name: str | None = None
    guide: bool = True
    memory_per_example: int = 0
    offers: frozenset = frozenset()

    def __post_init__(self):
        if not self.trainers or not all(isinstance(t, str) for t in self.trainers):
            raise ValueError(f"traits: trainers must name at least one trainer, got {self.trainers!r}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"traits: estimator must be one of {', '.join(ESTIMATORS)}, got {self.estimator!r}")
        unknown = set(self.offers) - set(OFFERS)
        if unknown:
            raise ValueError(f"traits: unknown abilities {sorted(unknown)} (known: {', '.join(OFFERS)})")
        object.__setattr__(self, "trainers", tuple(self.trainers))
        object.__setattr__(self, "offers", frozenset(self.offers))

    @property
    def trainer(self) -> str:
        """The default trainer."""
        return self.trainers[0]

    @property
    def exact(self) -> bool:
        """log p(x) is computed exactly (no sampling)."""
        return self.estimator == "exact"


#: ``Traits.estimator`` values
ESTIMATORS = ("exact", "iwae", "proposal", "parzen")
#: ``Traits.offers`` values
OFFERS = ("encode", "decode", "sample_mean", "transfer", "complete", "responsibilities", "text", "label_prior",
          "cluster", "sample_label", "sample_temperature")


def fold_legacy_traits(cls: type) -> None:
    """Fold the older class attributes ``has_exact_log_prob`` / ``needs_labels`` of a user story into
    its :class:`Traits` (they are read-only views of ``traits`` on :class:`Story`)."""
    changes = {}
    if "has_exact_log_prob" in cls.__dict__ and not isinstance(cls.__dict__["has_exact_log_prob"], property):
        if cls.__dict__["has_exact_log_prob"]:
            changes["estimator"] = "exact"
        delattr(cls, "has_exact_log_prob")
    if "needs_labels" in cls.__dict__ and not isinstance(cls.__dict__["needs_labels"], property):
        changes["labels"] = bool(cls.__dict__["needs_labels"])
        delattr(cls, "needs_labels")
    if changes:
        cls.traits = replace(cls.traits, **changes)
