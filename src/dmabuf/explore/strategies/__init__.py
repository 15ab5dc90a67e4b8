"""Search strategies (pluggable objects that propose the choice at every branch)."""

from .base import Branch, PathStrategy, ReplayStrategy
from .dfs import DFS

__all__ = ["DFS", "Branch", "PathStrategy", "ReplayStrategy"]
