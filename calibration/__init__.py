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

# Drift, canary re-grades, bias probes, the calibration gate and corrected counts (`judge drift`,
# `judge canary`, `judge bias`, `judge gate`, `judge correct`). The module names (drift, canary,
# bias, gate, correction) are not shadowed.
from calibration.bias import (  # noqa: E402
    FlipRate,
    ProbeResult,
    flip_rate,
    inject_instruction,
    pad_verbosity,
    persuade,
    run_probe,
)
from calibration.bias_position import PositionResult, position_swap_probe  # noqa: E402
from calibration.canary import (  # noqa: E402
    CanaryResult,
    CanaryTrigger,
    canary_check,
    needs_canary_regrade,
)
from calibration.correction import (  # noqa: E402
    CorrectedCount,
    ErrorRates,
    UndefinedCorrection,
    corrected_count_ci,
    corrected_verified,
    error_rates,
    rogan_gladen,
)
from calibration.drift import (  # noqa: E402
    DriftReport,
    LabelledRecord,
    Window,
    agreement_windows,
    drift_report,
    psi,
    psi_chance,
    two_proportion_ztest,
)
from calibration.gate import GateState, evaluate_gate  # noqa: E402

__all__ += [
    "CanaryResult",
    "CanaryTrigger",
    "CorrectedCount",
    "DriftReport",
    "ErrorRates",
    "FlipRate",
    "GateState",
    "LabelledRecord",
    "PositionResult",
    "ProbeResult",
    "UndefinedCorrection",
    "Window",
    "agreement_windows",
    "canary_check",
    "corrected_count_ci",
    "corrected_verified",
    "drift_report",
    "error_rates",
    "evaluate_gate",
    "flip_rate",
    "inject_instruction",
    "needs_canary_regrade",
    "pad_verbosity",
    "persuade",
    "position_swap_probe",
    "psi",
    "psi_chance",
    "rogan_gladen",
    "run_probe",
    "two_proportion_ztest",
]
