"""Backchannels: what a listener says over a speaker without taking the turn.

"Mhm", "uh-huh", "yeah", "right", "okay": they tell the assistant the user is following,
and must never cut its reply. A transcript is a backchannel when every word of it (case,
punctuation and hyphens aside) is one of ``BACKCHANNEL_WORDS``, at most
``MAX_BACKCHANNEL_WORDS`` of them: "Mhm." and "yeah, yeah" are; "yeah, but wait" and
"stop" are not. A transcript with no words at all (a cough the transcriber heard as
nothing) is not words either: ``is_words`` says whether a transcript may confirm a
barge-in.
"""

from __future__ import annotations

import re

BACKCHANNEL_WORDS = frozenset({
    "mhm", "mm", "mmm", "hm", "hmm", "mmhmm", "mhmm", "uh", "huh", "uhhuh", "um", "ah", "aha",
    "oh", "ooh", "yeah", "yea", "yes", "yep", "yup", "ok", "okay", "right", "sure", "alright",
    "i", "see", "got", "it", "cool", "nice", "wow", "true",
})
"""The words a backchannel is made of ("i see" and "got it" are two of them each)."""

MAX_BACKCHANNEL_WORDS = 4

_WORD = re.compile(r"[a-z']+")


def _words(transcript: str) -> list[str]:
    return _WORD.findall(transcript.lower().replace("-", "").replace("'", ""))


def is_backchannel(transcript: str) -> bool:
    """Whether ``transcript`` is only a backchannel ("Mhm.", "uh-huh", "yeah, right")."""
    words = _words(transcript)
    return 0 < len(words) <= MAX_BACKCHANNEL_WORDS and all(w in BACKCHANNEL_WORDS
                                                            for w in words)


def is_words(transcript: str) -> bool:
    """Whether ``transcript`` holds words that are not a backchannel: what may confirm a
    barge-in."""
    return bool(_words(transcript)) and not is_backchannel(transcript)
