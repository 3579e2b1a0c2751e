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

Ducking: ``duck(gain)`` sets the level of what is handed from then on; the change is a
linear ramp of ``FADE_MS`` from the gain the output had, so it makes no click. A pulling sink
ducks from its next block; a pushing sink first takes back what the device has not read yet
(``rewind()``) and hands it again. Queued samples and heard counts are the same ducked or
not: only the level changes. A flush or cut fades from the ducked level and ends the duck
(the next audio plays at full level), so a committed barge-in never leaves the next reply
quiet.

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
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from bargein.errors import AudioError

FADE_MS = 5.0
KEEP_SETTLED = 16
"""Finished items whose final count is still reported, most recent first (see above)."""


@dataclass(slots=True)
class _Segment:
    item_id: str
    samples: npt.NDArray[np.int16]


class _Block(NamedTuple):
    """One block handed to the device (a named tuple: made 100 times a second while a reply
    plays, it costs a third of a frozen dataclass's ``__init__``)."""

    starts_at: float  # seconds on the sink's output clock when the block's first sample sounds
    ends_at: float  # when its last item sample has sounded
    parts: tuple[tuple[str, int, int], ...]  # (item_id, offset in block, sample count)
    samples: npt.NDArray[np.int16]  # what the block carried before any duck (a cut's source)
    gain_from: float = 1.0  # the output's gain before the block's first sample
    gain_to: float = 1.0  # the gain its ramp heads for (reached after ``ramp`` samples)
    ramp: int = 1

    def gain_at(self, index: int) -> float:
        """The gain applied to sample ``index`` of the block (before it, at 0)."""
        if index <= 0:
            return self.gain_from
        step = min(1.0, index / self.ramp)
        return self.gain_from + (self.gain_to - self.gain_from) * step


class Playout:
    """Thread-safe queue of item audio plus the ledger of what each pulled block carried."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._queue: deque[_Segment] = deque()
        self._queued = 0  # samples in the queue (kept, not summed: the monitor asks often)
        self._blocks: deque[_Block] = deque()
        self._settled: dict[str, int] = {}  # samples per item in blocks fully heard
        # (most recently settled last; bounded by _forget_settled)
        self._handed_end = 0.0  # output-clock time when the last handed item sample ends
        self._ramp = max(1, round(rate * FADE_MS / 1000))
        self._gain = 1.0  # the gain after the last handed sample
        self._target = 1.0  # the gain asked for by duck()

    def push(self, item_id: str, samples: npt.NDArray[np.int16]) -> None:
        if len(samples):
            with self._lock:
                self._queue.append(_Segment(item_id, samples))
                self._queued += len(samples)

    def pull(self, frames: int, starts_at: float) -> npt.NDArray[np.int16]:
        """Take the next block for the device; what the queue lacks is silence (underrun).

        The block may be a read-only view of the pushed samples (no copy when one item's
        audio fills it at full gain): callers read it, never write into it."""
        with self._lock:
            queue = self._queue
            if queue and len(queue[0].samples) >= frames and self._gain == self._target == 1.0:
                head = queue[0]  # the common case, a reply playing: one slice, no copy
                out = head.samples[:frames]
                if len(head.samples) == frames:
                    queue.popleft()
                else:
                    head.samples = head.samples[frames:]
                self._queued -= frames
                self._handed_end = starts_at + frames / self.rate
                self._blocks.append(_Block(starts_at, self._handed_end,
                                           ((head.item_id, 0, frames),), out))
                return out
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
            self._queued -= filled
            if parts:
                self._handed_end = starts_at + filled / self.rate
                block = _Block(starts_at, self._handed_end, tuple(parts), out,
                               self._gain, self._target, self._ramp)
                self._blocks.append(block)
                if self._gain != 1.0 or self._target != 1.0:
                    out = self._apply_gain(block)
                self._gain = block.gain_at(filled)
            else:  # silence: the level can change without a ramp
                self._gain = self._target
        return out

    @staticmethod
    def _apply_gain(block: _Block) -> npt.NDArray[np.int16]:
        """The block's samples at its gain (a ramp from ``gain_from`` to ``gain_to``)."""
        steps = np.minimum(1.0, np.arange(1, len(block.samples) + 1) / block.ramp)
        gains = block.gain_from + (block.gain_to - block.gain_from) * steps
        return np.rint(block.samples * gains).astype(np.int16)

    def duck(self, gain: float) -> None:
        """Hand samples from now on at ``gain`` (1.0 restores), ramping from the present gain
        over ``FADE_MS``."""
        if not 0.0 <= gain <= 1.0:
            raise AudioError(f"a duck's gain is within 0.0-1.0, got {gain}")
        with self._lock:
            self._target = gain

    @property
    def gain(self) -> float:
        """The gain asked for (``duck``): 1.0 when not ducked."""
        return self._target

    def take(
        self, max_frames: int, starts_at: float
    ) -> tuple[npt.NDArray[np.int16], tuple[str, ...]]:
        """Take up to ``max_frames`` queued samples (no silence padding), recorded as one block.

        Returns the samples and the ids of the items they belong to, in order.
        """
        with self._lock:
            frames = min(max_frames, self._queued)
        if frames <= 0:
            return np.zeros(0, dtype=np.int16), ()
        out = self.pull(frames, starts_at)
        with self._lock:
            parts = self._blocks[-1].parts if self._blocks else ()
        return out, tuple(item_id for item_id, _, _ in parts)

    def queued_samples(self) -> int:
        """Samples pushed but not yet handed to the device."""
        with self._lock:
            return self._queued

    def cut(self, at: float, *, fade: bool = True) -> tuple[dict[str, int], int]:
        """The device dropped everything handed for ``at`` onwards; fade into the next samples.

        Blocks (or their parts) that start sounding at ``at`` or later are forgotten: they were
        not heard. The queue becomes a ``FADE_MS`` ramp of the samples that would have sounded
        from ``at`` on (the dropped handed audio first, then the queue), at the gain the
        output had at ``at``, which the next ``take()``/``pull()`` hands over; ``fade=False``
        drops it too (when the device went silent before the fade could reach it). Ends any
        duck. Returns the final samples per item (heard, plus the fade) and the fade's length
        in samples.
        """
        fade_len = round(self.rate * FADE_MS / 1000) if fade else 0
        with self._lock:
            gain = self._gain_at(at)
            tail = self._take_back(at)
            tail.extend(self._queue)
            self._set_queue(self._faded(tail, fade_len, gain))
            self._gain = self._target = 1.0
            final = dict(self._settled)
            for block in self._blocks:
                for item_id, _, n in block.parts:
                    final[item_id] = final.get(item_id, 0) + n
            faded = 0
            for seg in self._queue:
                final[seg.item_id] = final.get(seg.item_id, 0) + len(seg.samples)
                faded += len(seg.samples)
        return final, faded

    def rewind(self, at: float) -> None:
        """The device dropped everything handed for ``at`` onwards, to be handed again: it
        goes back to the head of the queue (not heard, not forgotten), and the next block
        carries on from the gain the output had at ``at`` (a pushing sink's duck)."""
        with self._lock:
            self._gain = self._gain_at(at)
            tail = self._take_back(at)
            tail.extend(self._queue)
            self._set_queue(deque(tail))

    def _set_queue(self, segments: deque[_Segment]) -> None:
        """With the lock held: ``segments`` become the queue (a cut, rewind or flush)."""
        self._queue = segments
        self._queued = sum(len(seg.samples) for seg in segments)

    def _gain_at(self, at: float) -> float:
        """With the lock held: the gain of the output at time ``at``."""
        for block in self._blocks:
            if at < block.starts_at + len(block.samples) / self.rate:
                return block.gain_at(max(0, round((at - block.starts_at) * self.rate)))
        return self._gain

    def _take_back(self, at: float) -> list[_Segment]:
        """With the lock held: cut the handed blocks at ``at``; return what sounds from there."""
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
                kept.append(_Block(block.starts_at, end, tuple(parts), block.samples,
                                   block.gain_from, block.gain_to, block.ramp))
        self._blocks = kept
        self._handed_end = min(self._handed_end, at)
        return tail

    @staticmethod
    def _faded(source: list[_Segment], fade_len: int, gain: float) -> deque[_Segment]:
        """The first ``fade_len`` samples of ``source``, ramped down linearly from ``gain``
        towards zero."""
        fade: deque[_Segment] = deque()
        remaining = fade_len
        for seg in source:
            if not remaining:
                break
            take = seg.samples[:remaining]
            if len(take):
                fade.append(_Segment(seg.item_id, take.copy()))
                remaining -= len(take)
        ramp = np.linspace(gain, 0.0, fade_len + 1)[1:]
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
        does the fade, which the next pulled block carries (from the ducked level, if ducked:
        the flush ends the duck).
        """
        fade_len = round(self.rate * FADE_MS / 1000)
        with self._lock:
            self._set_queue(self._faded(list(self._queue), fade_len, self._gain))
            at = self._queued
            self._gain = self._target = 1.0
            final = dict(self._settled)
            for block in self._blocks:
                for item_id, _, n in block.parts:
                    final[item_id] = final.get(item_id, 0) + n
            for seg in self._queue:
                final[seg.item_id] = final.get(seg.item_id, 0) + len(seg.samples)
            silent_at = max(self._handed_end, now) + at / self.rate
        return final, max(0.0, silent_at - now)

    def idle(self, now: float) -> bool:
        with self._lock:
            return not self._queue and now >= self._handed_end

    def ends_in(self, now: float, earliest: float) -> float:
        """Seconds from ``now`` until the last sample given has sounded, if the device takes
        the rest without a gap and the next queued sample sounds no sooner than ``earliest``
        (both on the output clock); 0.0 when it has all sounded. An estimate: audio pushed
        later, a duck's rewind or a dropout moves the end."""
        with self._lock:
            end = self._handed_end
            if self._queued:
                end = max(end, earliest) + self._queued / self.rate
        return max(0.0, end - now)


def to_ms(samples: Mapping[str, int], rate: int) -> dict[str, float]:
    """Sample counts at ``rate`` as milliseconds."""
    return {item_id: n * 1000.0 / rate for item_id, n in samples.items()}
