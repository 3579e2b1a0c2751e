"""State machines an extender would copy, each checked, drawn in ``diagrams/`` and covered
by generated tests (``bargein check --machine examples.machines.confirm:CONFIRM``):

- ``thinking``: a ``thinking`` sub-state of ``responding`` with a filler cue on a timer;
- ``greeting``: an uninterruptible greeting whose user speech is held and answered after;
- ``tools``: a ``tool_running`` sub-state driven by the program's own events, with a timeout;
- ``confirm``: a confirm-then-commit barge-in: a timed edge commits, history resumes.
"""

from examples.machines.confirm import CONFIRM
from examples.machines.greeting import GREETING
from examples.machines.thinking import THINKING
from examples.machines.tools import TOOLS

MACHINES = {"thinking": THINKING, "greeting": GREETING, "tools": TOOLS, "confirm": CONFIRM}
"""Every example machine by the name of its module (and of its diagrams)."""

__all__ = ["CONFIRM", "GREETING", "MACHINES", "THINKING", "TOOLS"]
