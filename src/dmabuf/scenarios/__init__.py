"""Built-in scenarios: the design hazards H1-H10 of the dynamic dma-buf threads, runnable under every
mapping-tracking policy, each with a naive and a careful driver.

* :mod:`.base`: the framework (how to write a scenario: see its docstring), a correct :class:`Importer`;
* :mod:`.runner`: verdicts (``safe by design`` / ``driver duty`` / ``unsafe`` / ``n/a``) and :func:`check`;
* ``hN_*.py``: one scenario per hazard.

``dmabuf check`` prints the hazards x designs table.
"""

from __future__ import annotations

from .base import (
    VARIANTS,
    Contract,
    Importer,
    MappingLeak,
    Scenario,
    contract_of,
    finish,
    get_scenario,
    make_fence,
    register,
    scenarios,
)
from .runner import DESIGNS, Budget, Run, Verdict, check, verdict

__all__ = [
    "DESIGNS",
    "VARIANTS",
    "Budget",
    "Contract",
    "Importer",
    "MappingLeak",
    "Run",
    "Scenario",
    "Verdict",
    "check",
    "contract_of",
    "finish",
    "get_scenario",
    "make_fence",
    "register",
    "scenarios",
    "verdict",
]
