"""States and the transition table as data: the single source of the machine and its diagrams."""

from bargein.errors import StateTableError
from bargein.states.machine import TableMachine
from bargein.states.table import (
    BARGE_IN_TRIGGERS,
    CONDITIONS,
    DEFAULT_TABLE,
    TRIGGERS,
    State,
    StateTable,
    Transition,
)

__all__ = [
    "BARGE_IN_TRIGGERS",
    "CONDITIONS",
    "DEFAULT_TABLE",
    "TRIGGERS",
    "State",
    "StateTable",
    "StateTableError",
    "TableMachine",
    "Transition",
]
