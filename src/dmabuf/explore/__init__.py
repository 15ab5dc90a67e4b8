"""The explorer: strategies over the controlled runtime, failures, replay strings."""

from .engine import STRATEGIES, explore
from .failure import ExploreResult, Failure
from .replaying import replay

__all__ = ["STRATEGIES", "ExploreResult", "Failure", "explore", "replay"]
