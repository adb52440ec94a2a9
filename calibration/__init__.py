"""Calibration: how well judges agree with humans, with intervals, drift and gates.

Pure functions over arrays (no database). The statistics core:

- :func:`cohen_kappa`, :func:`krippendorff_alpha`, :func:`classification_agreement`,
  :func:`human_agreement` (agreement, :mod:`calibration.agreement`)
- :func:`correlations` (Pearson / Spearman / Kendall tau-b, overall and per group)
- :func:`bootstrap_ci`, :func:`bootstrap_distribution`, :func:`kappa_ci`, :func:`accuracy_ci`
  (percentile bootstrap intervals, :mod:`calibration.bootstrap`)

Undefined statistics (no variation in the data) are ``nan``, never a silent 0 or 1; wrong input
raises ``ValueError`` naming the argument and the fix.
"""

from calibration.agreement import (
    BINARY_LABELS,
    classification_agreement,
    cohen_kappa,
    human_agreement,
    krippendorff_alpha,
)
from calibration.bootstrap import (
    BootstrapResult,
    DegenerateBootstrapError,
    accuracy_ci,
    bootstrap_ci,
    bootstrap_distribution,
    contingency_table,
    kappa_ci,
    kappa_from_tables,
)
from calibration.correlation import correlations

__all__ = [
    "BINARY_LABELS",
    "BootstrapResult",
    "DegenerateBootstrapError",
    "accuracy_ci",
    "bootstrap_ci",
    "bootstrap_distribution",
    "classification_agreement",
    "cohen_kappa",
    "contingency_table",
    "correlations",
    "human_agreement",
    "kappa_ci",
    "kappa_from_tables",
    "krippendorff_alpha",
]
