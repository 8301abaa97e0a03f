"""Stages of work that overlap: each stage is a generator run in its own thread, handing its items to
the next through a bounded queue, so a slow stage never holds more than `depth` finished items and
memory stays flat however many items pass through. Decoding, the network and encoding release the
GIL (FFmpeg, torch), so the stages really run at the same time.

    with Stages(depth=2) as stages:
        for item in stages.add(network(stages.add(decode(), "decode")), "network"):
            encode(item)

depth=0 runs every stage in the calling thread, one after another: the same items, no threads.
A stage may drop stale items for a live source (`stale`): an item it calls stale is skipped when a
newer one is already waiting, and makes room at once when the queue is full (the producer never waits
for it), so a consumer slower than its source keeps up with it; `dropped` counts.
An error in a stage is raised in the consumer; leaving the block (normally, on an error, on Ctrl-C)
stops every stage's thread and waits for it, so no thread outlives what it reads from.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()
_POLL_SECONDS = 0.1  # how often a blocked thread looks whether it was cancelled


class _Stage:
    def __init__(self, items: Iterator[T], depth: int, name: str, stale: Callable[[T], int] | None) -> None:
        self.waiting: deque = deque()  # at most `depth` items, oldest first
        self.depth = depth
        self.changed = threading.Condition()
        self.stale = stale
        self.dropped = 0
        self.cancelled = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(items,), name=f"stylenet-{name}", daemon=True)
        self.thread.start()

    def _run(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    break
            else:
                self._put(_END)
        except BaseException as error:  # handed to the consumer, which raises it
            self.error = error
            self._put(_END)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator's clean-up runs here, in its own thread, before stop() returns

    def _drop_stale(self, index: int) -> bool:
        """Drops waiting item `index` if `stale` calls it stale (called with `changed` held)."""
        count = self.stale(self.waiting[index]) if self.stale is not None else 0
        if count:
            del self.waiting[index]
            self.dropped += count
        return bool(count)

    def _put(self, item: object) -> bool:
        """Waits for room, except that a full queue's stale oldest item makes room at once for a newer item: a
        live source is never held back by a slower consumer (whether the consumer's thread wakes in time or not)."""
        with self.changed:
            while len(self.waiting) >= self.depth and (item is _END or not self._drop_stale(0)):
                if self.cancelled.is_set():
                    return False
                self.changed.wait(_POLL_SECONDS)
            self.waiting.append(item)
            self.changed.notify_all()
        return True

    def _take(self) -> Any:
        """The oldest waiting item, unless it is stale and a newer item (not the end) waits; _END when cancelled."""
        with self.changed:
            while not self.waiting or (len(self.waiting) > 1 and self.waiting[1] is not _END and self._drop_stale(0)):
                if self.cancelled.is_set():
                    return _END
                if not self.waiting:
                    self.changed.wait(_POLL_SECONDS)
            item = self.waiting.popleft()
            self.changed.notify_all()
        return item

    def __iter__(self) -> Iterator[T]:
        while (item := self._take()) is not _END:
            yield item
        if self.error is not None and not self.cancelled.is_set():
            raise self.error

    def stop(self) -> None:
        self.cancelled.set()
        self.thread.join()


class Stages:
    """The stages of one pipeline; a context manager that stops them all when left."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.stages: list[_Stage] = []

    def add(self, items: Iterator[T], name: str, stale: Callable[[T], int] | None = None) -> Iterator[T]:
        """`items` produced in a thread of its own (depth > 0), or as they are (depth 0). stale(item): how
        many units (frames) the item holds if it may be dropped while a newer item waits, 0 to keep it."""
        if self.depth == 0:
            return items
        stage = _Stage(items, self.depth, name, stale)
        self.stages.append(stage)
        return iter(stage)

    @property
    def dropped(self) -> int:
        return sum(stage.dropped for stage in self.stages)

    def __enter__(self) -> Stages:
        return self

    def __exit__(self, *exc: object) -> None:
        for stage in self.stages:  # cancel all first: a stage may be waiting on the one before it
            stage.cancelled.set()
        for stage in self.stages:
            stage.stop()
