"""An uninterruptible greeting: the assistant says hello, and nothing cuts it short.

When the session is ready the machine enters ``greeting``, whose entry action asks the
model for a response (the session's instructions say what to greet with). ``greeting`` is
not interruptible, and its ``user_speech`` policy is ``hold``: what the user says meanwhile
is not streamed to the server (whose turn detection would otherwise cancel the greeting
itself) but kept, and sent when the greeting is over, so the server hears the user then
and answers after. ``DISCLAIMER`` is the same segment with ``ignore``: a legal notice that
is said in full, and whatever the user says over it is dropped::

    bargein check --machine examples.machines.greeting:GREETING
"""

from __future__ import annotations

from bargein.core.actions import ActionContext
from bargein.core.commands import Command, CreateResponse
from bargein.states import DEFAULT_TABLE, State, Transition
from bargein.states.names import SpeechPolicy


def ask_for_greeting(ctx: ActionContext) -> list[Command]:
    """Entering ``greeting``: ask the model to speak first."""
    return [CreateResponse()]


def _segment(name: str, policy: SpeechPolicy, description: str
             ) -> tuple[State, list[Transition]]:
    state = State(name, interruptible=False, description=description,
                  on_enter=(ask_for_greeting,), user_speech=policy)
    edges = [
        Transition("session_ready", "idle", name, unless=("paused",), reason="say hello"),
        Transition("session_ready", name, None),
        Transition("response_created", name, None),
        Transition("audio_started", name, None),
        Transition("speech_stopped", name, None),
        Transition("response_done", name, "listening", unless=("playing",), reason="said"),
        Transition("response_done", name, None),
        Transition("playback_finished", name, "listening", unless=("generating",), reason="said"),
        Transition("playback_finished", name, None),
    ]
    return state, edges


_greeting, _greeting_edges = _segment(
    "greeting", "hold",
    "the assistant greets the user; nothing interrupts it; the user's speech is held and "
    "answered after",
)
GREETING = DEFAULT_TABLE.extend([_greeting], _greeting_edges, name="greeting")
"""``idle -> greeting`` when the session is ready; ``greeting -> listening`` once the
greeting has been said and played. Speech meanwhile: held, then sent."""

_disclaimer, _disclaimer_edges = _segment(
    "disclaimer", "ignore",
    "a notice said in full; nothing interrupts it; what the user says over it is dropped",
)
DISCLAIMER = DEFAULT_TABLE.extend([_disclaimer], _disclaimer_edges, name="disclaimer")
"""The same segment with the ``ignore`` policy."""
