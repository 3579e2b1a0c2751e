"""The playout queue's sample count (kept, not summed) stays equal to what the queue holds,
whatever mix of pushes, pulls, takes, ducks, flushes, cuts and rewinds came before."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bargein.adapters.audio.playout import Playout

RATE = 24_000

ops = st.lists(st.one_of(
    st.tuples(st.just("push"), st.integers(0, 3000)),
    st.tuples(st.just("pull"), st.integers(1, 2000)),
    st.tuples(st.just("take"), st.integers(1, 2000)),
    st.tuples(st.just("duck"), st.sampled_from([0.2, 1.0])),
    st.tuples(st.just("flush"), st.just(0)),
    st.tuples(st.just("cut"), st.integers(0, 2000)),
    st.tuples(st.just("rewind"), st.integers(0, 2000)),
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_the_queued_count_is_what_the_queue_holds(steps: list[tuple[str, float]]) -> None:
    playout = Playout(RATE)
    clock = 0  # samples: where the next block starts sounding
    for index, (op, arg) in enumerate(steps):
        if op == "push":
            playout.push(f"item{index % 3}", np.ones(int(arg), dtype=np.int16))
        elif op in ("pull", "take"):
            if op == "pull":
                out = playout.pull(int(arg), starts_at=clock / RATE)
            else:
                out, _ = playout.take(int(arg), starts_at=clock / RATE)
            clock += len(out)
        elif op == "duck":
            playout.duck(arg)
        elif op == "flush":
            playout.flush(clock / RATE)
        elif op == "cut":
            playout.cut(max(0, clock - int(arg)) / RATE)
        else:
            playout.rewind(max(0, clock - int(arg)) / RATE)
        held = sum(len(seg.samples) for seg in playout._queue)
        assert playout.queued_samples() == held, (op, arg)
        assert playout.has_queued() == (held > 0)
