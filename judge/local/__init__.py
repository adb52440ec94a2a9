"""Local judges: no model provider, no cost.

- :class:`~judge.local.signals.SignalsJudge`: deterministic rules over outcome signals;
- :class:`~judge.local.learned.LearnedJudge`: a scikit-learn text classifier with calibrated
  probabilities, trained with :func:`~judge.local.learned.train_learned_judge` (``judge train``).

Importing this package does not import scikit-learn; that happens on first training or loading.
"""

from __future__ import annotations

from judge.local.learned import LearnedJudge
from judge.local.signals import SignalsJudge
from judge.panel import LearnedJudgeSpec, SignalsJudgeSpec

__all__ = ["LearnedJudge", "SignalsJudge", "local_judge"]


def local_judge(spec: SignalsJudgeSpec | LearnedJudgeSpec) -> SignalsJudge | LearnedJudge:
    """The judge for a panel's local judge spec (``kind: signals`` or ``kind: learned``).

    >>> local_judge(SignalsJudgeSpec(kind="signals")).name
    'signals'
    """
    if isinstance(spec, SignalsJudgeSpec):
        return SignalsJudge(spec)
    if isinstance(spec, LearnedJudgeSpec):
        return LearnedJudge(spec)
    raise TypeError(f"not a local judge spec: {type(spec).__name__}")
