"""Live updates that cost what they deliver: one poller per topic, its updates fanned out.

A subscription names a topic (say: the blended forecasts of one series). The first subscriber
opens the topic's feed and starts its poller; later subscribers join it; the poller reads the
storage once per interval (the shortest any subscriber asked for) and puts each non-empty update
on every subscriber's queue; the last one to leave stops it. A thousand dashboards watching one
series cost one query per interval, not a thousand.

A subscriber whose queue fills up (it does not read, or its socket does not drain) is dropped
with :class:`~sparkhu.gateway.errors.LimitExceeded` rather than let memory grow.

>>> import anyio, pyarrow as pa
>>> class Counter:
...     polls = 0
...     def poll(self) -> pa.Table:
...         self.polls += 1
...         return pa.table({"n": [self.polls]})
>>> async def main() -> list[int]:
...     feeds, counter = LiveFeeds(), Counter()
...     async with feeds.subscribe("t", lambda: counter, 0.01) as a:
...         async with feeds.subscribe("t", lambda: counter, 0.01) as b:
...             first_a, first_b = await a.next(), await b.next()
...     return [first_a["n"][0].as_py(), first_b["n"][0].as_py(), feeds.topics()]
>>> anyio.run(main)
[1, 1, 0]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Protocol

import anyio.to_thread
import pyarrow as pa

from sparkhu.gateway.errors import LimitExceeded

log = logging.getLogger(__name__)

DEFAULT_QUEUE = 64
"""Updates a subscriber may have pending before it is dropped as too slow."""


class Feed(Protocol):
    """What a topic polls: the rows that changed since its previous poll (blocking; run in a thread)."""

    def poll(self) -> pa.Table:
        """Rows new since the previous call (maybe none)."""
        ...


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


@dataclass(eq=False)
class Subscriber:
    """One subscriber's view of a topic: its queue of updates and the interval it asked for."""

    interval: float
    queue: asyncio.Queue[pa.Table | _Failed]

    async def next(self) -> pa.Table:
        """The next update of the topic (raises what the poller or the queue ran into)."""
        item = await self.queue.get()
        if isinstance(item, _Failed):
            raise item.error
        return item

    def __aiter__(self) -> AsyncIterator[pa.Table]:
        return self._updates()

    async def _updates(self) -> AsyncIterator[pa.Table]:
        while True:
            yield await self.next()


@dataclass(eq=False)
class _Topic:
    opening: asyncio.Future[Feed]
    subscribers: set[Subscriber] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class LiveFeeds:
    """The topics of one gateway; each has one poller however many subscribe to it."""

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE) -> None:
        self._queue_size = queue_size
        self._topics: dict[Hashable, _Topic] = {}

    def topics(self) -> int:
        """Topics with a running poller (or opening one)."""
        return len(self._topics)

    def subscribers(self) -> int:
        """Subscribers over all topics."""
        return sum(len(topic.subscribers) for topic in self._topics.values())

    @contextlib.asynccontextmanager
    async def subscribe(
        self, key: Hashable, open_feed: Callable[[], Feed], interval: float
    ) -> AsyncIterator[Subscriber]:
        """Join topic ``key`` (opening it with ``open_feed``, in a thread, if it is new) for the block."""
        topic = self._topics.get(key)
        if topic is None:
            topic = _Topic(opening=asyncio.get_running_loop().create_future())
            self._topics[key] = topic
            try:
                feed = await anyio.to_thread.run_sync(open_feed)
            except BaseException as exc:
                del self._topics[key]
                if isinstance(exc, Exception):
                    topic.opening.set_exception(exc)
                    topic.opening.exception()  # retrieved here; joiners re-raise it from the future
                else:
                    topic.opening.cancel()
                raise
            topic.opening.set_result(feed)
        else:
            feed = await asyncio.shield(topic.opening)
        subscriber = Subscriber(interval, asyncio.Queue(self._queue_size))
        topic.subscribers.add(subscriber)
        if topic.task is None or topic.task.done():
            topic.task = asyncio.create_task(self._poll(key, topic, feed), name=f"live {key!r}")
        try:
            yield subscriber
        finally:
            topic.subscribers.discard(subscriber)
            if not topic.subscribers and self._topics.get(key) is topic:
                del self._topics[key]
                if topic.task is not None:
                    topic.task.cancel()

    async def _poll(self, key: Hashable, topic: _Topic, feed: Feed) -> None:
        while topic.subscribers:
            await asyncio.sleep(min(s.interval for s in topic.subscribers))
            if not topic.subscribers:
                return
            try:
                table = await anyio.to_thread.run_sync(feed.poll)
            except Exception as exc:  # every subscriber is told; the next one opens a fresh topic
                if self._topics.get(key) is topic:
                    del self._topics[key]
                for subscriber in list(topic.subscribers):
                    _offer(subscriber, _Failed(exc))
                return
            if table.num_rows:
                for subscriber in list(topic.subscribers):
                    if not _offer(subscriber, table):
                        topic.subscribers.discard(subscriber)


def _offer(subscriber: Subscriber, item: pa.Table | _Failed) -> bool:
    """Queue ``item``; a full queue gets the subscriber dropped (told once, in place of the update)."""
    try:
        subscriber.queue.put_nowait(item)
        return True
    except asyncio.QueueFull:
        with contextlib.suppress(asyncio.QueueEmpty):
            subscriber.queue.get_nowait()  # make room for the reason it is dropped
        subscriber.queue.put_nowait(
            _Failed(LimitExceeded("this subscription fell behind its updates; subscribe again"))
        )
        return False
