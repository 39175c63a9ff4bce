"""Drift monitoring: features, reference, calibrated tests, Evidently adapter, retrain policy.

Nothing here imports Evidently at import time; `check_drift(..., render=True)` loads it on use and
computes the verdict inside Evidently's report (`evidently_verdict.py`).
"""

from xferlib.drift.calibrated import TestResult, run_tests
from xferlib.drift.check import DriftInputError, DriftReport, check_drift
from xferlib.drift.estimate import AccuracyEstimate, AccuracyModel
from xferlib.drift.features import (
    META_COLUMNS,
    MODEL_COLUMNS,
    PROPERTY_COLUMNS,
    PCAProjector,
    feature_columns,
    image_properties,
    monitoring_frame,
)
from xferlib.drift.policy import DriftState, RetrainDecision, should_retrain
from xferlib.drift.reference import (
    Reference,
    build_model_reference,
    build_reference,
    load_reference,
)

__all__ = [
    "AccuracyEstimate",
    "AccuracyModel",
    "META_COLUMNS",
    "MODEL_COLUMNS",
    "PROPERTY_COLUMNS",
    "DriftInputError",
    "DriftReport",
    "DriftState",
    "PCAProjector",
    "Reference",
    "RetrainDecision",
    "TestResult",
    "build_model_reference",
    "build_reference",
    "check_drift",
    "feature_columns",
    "image_properties",
    "load_reference",
    "monitoring_frame",
    "run_tests",
    "should_retrain",
]
