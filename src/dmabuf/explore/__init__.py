"""The explorer: strategies over the controlled runtime, failures, replay strings."""

from .engine import STRATEGIES, explore, replay
from .failure import ExploreResult, Failure

__all__ = ["STRATEGIES", "ExploreResult", "Failure", "explore", "replay"]
