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

# Helpers building on the statistics core (replay/calibrate, drift/gates) append exports below.

# Replay of recorded judge outputs and the judge-vs-human calibration report (`judge replay`,
# `judge calibrate`). The functions named like their modules (calibration.replay.replay,
# calibration.join.join) are not re-exported so they cannot shadow the submodules.
from calibration.html import render_html
from calibration.join import (
    CalibrationInputError,
    JoinResult,
    LabelRecord,
    load_files,
)
from calibration.replay import (
    AdaptivePolicy,
    ReplayInputError,
    ReplayResult,
    compare_policies,
    load_recordings,
)
from calibration.report import agreement_block, calibrate, human_ceiling, reliability

__all__ += [
    "AdaptivePolicy",
    "CalibrationInputError",
    "JoinResult",
    "LabelRecord",
    "ReplayInputError",
    "ReplayResult",
    "agreement_block",
    "calibrate",
    "compare_policies",
    "human_ceiling",
    "load_files",
    "load_recordings",
    "reliability",
    "render_html",
]
