"""The playout queue and heard-audio ledger every sink shares, so all sinks stop and count alike.

A sink pulls fixed blocks from the queue on its output clock and records, per block, which
item's samples sit where and when the block starts sounding. "Heard" is then the part of each
recorded block whose start time has passed. A flush replaces the queue with a short fade of its
head, so the output goes silent one fade after the blocks already handed to the device.

A sink whose device can drop what it was handed (PulseAudio's flush) pushes ahead with
``take()`` instead of pulling fixed blocks, and at a flush calls ``cut()`` with the device
position where the drop took effect: the handed audio from there on is forgotten (it was not
heard) and the fade is made of the samples that would have sounded next, so the fade joins the
last sample heard without a step.

Flat over hours: what the ledger reports (``heard_samples``, ``flush``, ``cut``) is the items
still in the queue or in handed blocks, plus the ``KEEP_SETTLED`` items that finished most
recently; an item that finished longer ago is forgotten, so a progress tick costs the same
after two hours as after one minute. (Audio pushed for a forgotten item counts from zero
again; the core has settled such an item long before.)
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FADE_MS = 5.0
KEEP_SETTLED = 16
"""Finished items whose final count is still reported, most recent first (see above)."""


@dataclass(slots=True)
class _Segment:
    item_id: str
    samples: npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class _Block:
    starts_at: float  # seconds on the sink's output clock when the block's first sample sounds
    ends_at: float  # when its last item sample has sounded
    parts: tuple[tuple[str, int, int], ...]  # (item_id, offset in block, sample count)
    samples: npt.NDArray[np.int16]  # what the block carried (the source of a fade at a cut)


class Playout:
    """Thread-safe queue of item audio plus the ledger of what each pulled block carried."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._queue: deque[_Segment] = deque()
        self._blocks: deque[_Block] = deque()
        self._settled: dict[str, int] = {}  # samples per item in blocks fully heard
        # (most recently settled last; bounded by _forget_settled)
        self._handed_end = 0.0  # output-clock time when the last handed item sample ends

    def push(self, item_id: str, samples: npt.NDArray[np.int16]) -> None:
        if len(samples):
            with self._lock:
                self._queue.append(_Segment(item_id, samples))

    def pull(self, frames: int, starts_at: float) -> npt.NDArray[np.int16]:
        """Take the next block for the device; what the queue lacks is silence (underrun)."""
        out = np.zeros(frames, dtype=np.int16)
        parts: list[tuple[str, int, int]] = []
        filled = 0
        with self._lock:
            while filled < frames and self._queue:
                head = self._queue[0]
                n = min(frames - filled, len(head.samples))
                out[filled : filled + n] = head.samples[:n]
                parts.append((head.item_id, filled, n))
                filled += n
                if n == len(head.samples):
                    self._queue.popleft()
                else:
                    head.samples = head.samples[n:]
            if parts:
                self._handed_end = starts_at + filled / self.rate
                self._blocks.append(_Block(starts_at, self._handed_end, tuple(parts), out))
        return out

    def take(
        self, max_frames: int, starts_at: float
    ) -> tuple[npt.NDArray[np.int16], tuple[str, ...]]:
        """Take up to ``max_frames`` queued samples (no silence padding), recorded as one block.

        Returns the samples and the ids of the items they belong to, in order.
        """
        with self._lock:
            queued = sum(len(seg.samples) for seg in self._queue)
        frames = min(max_frames, queued)
        if frames <= 0:
            return np.zeros(0, dtype=np.int16), ()
        out = self.pull(frames, starts_at)
        with self._lock:
            parts = self._blocks[-1].parts if self._blocks else ()
        return out, tuple(item_id for item_id, _, _ in parts)

    def queued_samples(self) -> int:
        """Samples pushed but not yet handed to the device."""
        with self._lock:
            return sum(len(seg.samples) for seg in self._queue)

    def cut(self, at: float, *, fade: bool = True) -> tuple[dict[str, int], int]:
        """The device dropped everything handed for ``at`` onwards; fade into the next samples.

        Blocks (or their parts) that start sounding at ``at`` or later are forgotten: they were
        not heard. The queue becomes a ``FADE_MS`` ramp of the samples that would have sounded
        from ``at`` on (the dropped handed audio first, then the queue), which the next
        ``take()``/``pull()`` hands over; ``fade=False`` drops it too (when the device went
        silent before the fade could reach it). Returns the final samples per item (heard,
        plus the fade) and the fade's length in samples.
        """
        fade_len = round(self.rate * FADE_MS / 1000) if fade else 0
        with self._lock:
            kept: deque[_Block] = deque()
            tail: list[_Segment] = []
            for block in self._blocks:
                played = max(0, round((at - block.starts_at) * self.rate))
                parts = []
                for item_id, offset, n in block.parts:
                    heard = max(0, min(n, played - offset))
                    if heard:
                        parts.append((item_id, offset, heard))
                    if heard < n:
                        start = offset + heard
                        tail.append(_Segment(item_id, block.samples[start : offset + n]))
                if parts:
                    end = block.starts_at + (parts[-1][1] + parts[-1][2]) / self.rate
                    kept.append(_Block(block.starts_at, end, tuple(parts), block.samples))
            self._blocks = kept
            tail.extend(self._queue)
            self._queue = self._faded(tail, fade_len)
            self._handed_end = min(self._handed_end, at)
            final = dict(self._settled)
            for block in self._blocks:
                for item_id, _, n in block.parts:
                    final[item_id] = final.get(item_id, 0) + n
            faded = 0
            for seg in self._queue:
                final[seg.item_id] = final.get(seg.item_id, 0) + len(seg.samples)
                faded += len(seg.samples)
        return final, faded

    @staticmethod
    def _faded(source: list[_Segment], fade_len: int) -> deque[_Segment]:
        """The first ``fade_len`` samples of ``source``, ramped down linearly towards zero."""
        fade: deque[_Segment] = deque()
        remaining = fade_len
        for seg in source:
            if not remaining:
                break
            take = seg.samples[:remaining]
            if len(take):
                fade.append(_Segment(seg.item_id, take.copy()))
                remaining -= len(take)
        ramp = np.linspace(1.0, 0.0, fade_len + 1)[1:]
        at = 0
        for seg in fade:
            n = len(seg.samples)
            seg.samples = np.rint(seg.samples * ramp[at : at + n]).astype(np.int16)
            at += n
        return fade

    def heard_samples(self, now: float) -> dict[str, int]:
        """Samples per item that have sounded by ``now`` on the output clock."""
        with self._lock:
            settled = self._settled
            popped = False
            while self._blocks and self._blocks[0].ends_at <= now:
                popped = True
                for item_id, _, n in self._blocks.popleft().parts:
                    settled[item_id] = settled.pop(item_id, 0) + n  # now the most recent
            if popped and len(settled) > KEEP_SETTLED:
                self._forget_settled()
            heard = dict(settled)
            for block in self._blocks:
                played = int((now - block.starts_at) * self.rate + 1e-6)  # float noise
                for item_id, offset, n in block.parts:
                    heard[item_id] = heard.get(item_id, 0) + max(0, min(n, played - offset))
            return heard

    def _forget_settled(self) -> None:
        """Drop the oldest finished items beyond ``KEEP_SETTLED`` (never one still open).
        Called with the lock held."""
        open_ids = {item_id for block in self._blocks for item_id, _, _ in block.parts}
        open_ids.update(seg.item_id for seg in self._queue)
        excess = len(self._settled) - KEEP_SETTLED
        for item_id in list(self._settled):
            if excess <= 0:
                break
            if item_id not in open_ids:
                del self._settled[item_id]
                excess -= 1

    def tracked_items(self) -> int:
        """How many items a report carries at most right now (for tests and benches)."""
        with self._lock:
            ids = set(self._settled)
            ids.update(item_id for block in self._blocks for item_id, _, _ in block.parts)
            return len(ids)

    def has_queued(self) -> bool:
        """Whether anything waits to be handed to the device (cheap: no sum)."""
        return bool(self._queue)

    def flush(self, now: float) -> tuple[dict[str, int], float]:
        """Keep only a fade of the queue's head; return final samples per item and silence time.

        The blocks already handed to the device will still sound, so they count as heard; so
        does the fade, which the next pulled block carries.
        """
        fade_len = round(self.rate * FADE_MS / 1000)
        with self._lock:
            fade = self._faded(list(self._queue), fade_len)
            at = sum(len(seg.samples) for seg in fade)
            self._queue = fade
            final = dict(self._settled)
            for block in self._blocks:
                for item_id, _, n in block.parts:
                    final[item_id] = final.get(item_id, 0) + n
            for seg in fade:
                final[seg.item_id] = final.get(seg.item_id, 0) + len(seg.samples)
            silent_at = max(self._handed_end, now) + at / self.rate
        return final, max(0.0, silent_at - now)

    def idle(self, now: float) -> bool:
        with self._lock:
            return not self._queue and now >= self._handed_end


def to_ms(samples: Mapping[str, int], rate: int) -> dict[str, float]:
    """Sample counts at ``rate`` as milliseconds."""
    return {item_id: n * 1000.0 / rate for item_id, n in samples.items()}
