"""The edge router: confident, uncertain or audit; upload budget, dedupe, anomaly hysteresis."""

from edge_node.router.budget import BudgetSet, TokenBucket
from edge_node.router.config import RouterConfig, UploadCrop
from edge_node.router.hysteresis import AnomalyGate, Transition
from edge_node.router.phash import hamming, phash
from edge_node.router.router import RouteDecision, RouteName, Router, SkipReason, encode_upload
from edge_node.router.scoring import UncertainReason, effective_thresholds, uncertain_reason

__all__ = [
    "AnomalyGate",
    "BudgetSet",
    "RouteDecision",
    "RouteName",
    "Router",
    "RouterConfig",
    "SkipReason",
    "TokenBucket",
    "Transition",
    "UncertainReason",
    "UploadCrop",
    "effective_thresholds",
    "encode_upload",
    "hamming",
    "phash",
    "uncertain_reason",
]
