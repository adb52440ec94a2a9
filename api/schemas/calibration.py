"""The calibration report (``GET /v1/calibration``): the JSON of ``judge calibrate --json``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CalibrationReport(BaseModel):
    """Agreement of the panel's verdicts with human labels. Undefined values are ``null``.

    The same keys as ``judge calibrate --json``; ``by`` holds one block per judge and per
    criterion, ``counts`` the join counts (outcomes with a verdict, labelled, compared).
    """

    model_config = ConfigDict(extra="allow")

    n: int = Field(description="Compared outcomes where the panel did not abstain.")
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    cohen_kappa: float | None
    cohen_kappa_ci: list[float | None]
    krippendorff_alpha: float | None
    confusion: dict[str, Any]
    abstain_rate: float | None
    human_ceiling: Any = None
    by: dict[str, dict[str, dict[str, Any]]]
    reliability: Any = None
    over_time: Any = None
    counts: dict[str, int]
    settings: dict[str, Any]
