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
from bargein.states.two_phase import (
    TWO_PHASE_SERVER_VAD_TABLE,
    TWO_PHASE_TABLE,
    two_phase_table,
)

__all__ = [
    "BARGE_IN_TRIGGERS",
    "CONDITIONS",
    "DEFAULT_TABLE",
    "TRIGGERS",
    "TWO_PHASE_SERVER_VAD_TABLE",
    "TWO_PHASE_TABLE",
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
    "two_phase_table",
]
