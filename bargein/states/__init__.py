"""States and the transition table as data: the single source of the machine and its diagrams."""

from bargein.errors import StateTableError
from bargein.states.machine import Step, TableMachine
from bargein.states.table import (
    BARGE_IN_TRIGGERS,
    CONDITIONS,
    DEFAULT_TABLE,
    TRIGGERS,
    Action,
    State,
    StateTable,
    TableProblems,
    Transition,
    after,
    timer_trigger,
)

__all__ = [
    "BARGE_IN_TRIGGERS",
    "CONDITIONS",
    "DEFAULT_TABLE",
    "TRIGGERS",
    "Action",
    "State",
    "StateTable",
    "StateTableError",
    "Step",
    "TableMachine",
    "TableProblems",
    "Transition",
    "after",
    "timer_trigger",
]
