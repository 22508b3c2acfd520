"""Steady AMQP traffic through a broker's node list, kept honest across node losses.

``Publisher`` sends numbered persistent messages with publisher confirms and counts a message
as sent only once the broker confirmed it; a publish that fails (connection lost, nack,
returned) is sent again with the same number on a new connection, so a confirmed number is
never skipped and an unconfirmed one may arrive twice. ``Consumer`` acknowledges each message
after recording it, so a lost ack means a redelivery: duplicates are counted, never hidden.
Both reconnect through the whole node list (the client-side endpoint a service is given), and
every wait here is bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pika
import pika.exceptions

# What a broker going away (killed, frozen, paused, restarting) looks like to a pika client.
LOST = (pika.exceptions.AMQPError, OSError, AssertionError)
RECONNECT_PAUSE = 0.2


@dataclass
class Traffic:
    """What one side saw: numbers with the monotonic time each was confirmed or received."""

    events: list[tuple[int, float]] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)
    connects: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, number: int) -> None:
        with self.lock:
            self.events.append((number, time.monotonic()))

    def numbers(self) -> list[int]:
        with self.lock:
            return [number for number, _ in self.events]

    def count(self) -> int:
        with self.lock:
            return len(self.events)

    def first_after(self, moment: float, predicate: Callable[[int], bool] = bool) -> float | None:
        """The first time after ``moment`` at which a number matching ``predicate`` came."""
        with self.lock:
            times = [when for number, when in self.events if when > moment and predicate(number)]
        return min(times) if times else None


class _Worker(threading.Thread):
    def __init__(self, parameters: Sequence[pika.ConnectionParameters], queue: str) -> None:
        super().__init__(daemon=True)
        self.parameters = list(parameters)
        self.queue = queue
        self.traffic = Traffic()
        self.halt = threading.Event()
        self.failure: BaseException | None = None

    def _connect(self) -> pika.BlockingConnection:
        connection = pika.BlockingConnection(self.parameters)
        self.traffic.connects.append(time.monotonic())
        return connection

    def _lost(self, error: BaseException) -> None:
        self.traffic.errors.append((time.monotonic(), f"{type(error).__name__}: {error}"))
        self.halt.wait(RECONNECT_PAUSE)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as error:  # surfaced by stop()
            self.failure = error

    def _run(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 60) -> None:
        """Ask the thread to finish and wait for it (a blocked publish ends with its socket's
        timeouts); a thread that does not end, or died, fails the test."""
        self.halt.set()
        self.join(timeout)
        assert not self.is_alive(), f"{type(self).__name__} did not stop within {timeout:g} s"
        if self.failure is not None:
            raise AssertionError(f"{type(self).__name__} failed") from self.failure


def _close(connection: pika.BlockingConnection | None) -> None:
    if connection is None:
        return
    try:
        if connection.is_open:
            connection.close()
    except LOST:
        pass


class Publisher(_Worker):
    """Publishes 0, 1, 2, ... with confirms until stopped; ``traffic`` holds the confirmed."""

    def __init__(
        self,
        parameters: Sequence[pika.ConnectionParameters],
        queue: str,
        interval: float = 0.005,
        limit: int | None = None,
    ) -> None:
        super().__init__(parameters, queue)
        self.interval = interval
        self.limit = limit
        self.next = 0

    def _run(self) -> None:
        connection = None
        channel = None
        while not self.halt.is_set() and (self.limit is None or self.next < self.limit):
            try:
                if channel is None:
                    _close(connection)
                    connection = self._connect()
                    channel = connection.channel()
                    channel.confirm_delivery()
                channel.basic_publish(
                    exchange="",
                    routing_key=self.queue,
                    body=str(self.next).encode(),
                    properties=pika.BasicProperties(delivery_mode=2, message_id=str(self.next)),
                    mandatory=True,
                )
            except LOST as error:
                # Not confirmed (nack, returned, or the connection went): same number again.
                channel = None
                self._lost(error)
                continue
            self.traffic.add(self.next)
            self.next += 1
            if self.interval:
                self.halt.wait(self.interval)
        _close(connection)


class Consumer(_Worker):
    """Consumes with manual acks until stopped; ``traffic`` holds every delivery (duplicates
    included)."""

    def __init__(
        self, parameters: Sequence[pika.ConnectionParameters], queue: str, prefetch: int = 100
    ) -> None:
        super().__init__(parameters, queue)
        self.prefetch = prefetch

    def _run(self) -> None:
        while not self.halt.is_set():
            connection = None
            try:
                connection = self._connect()
                channel = connection.channel()
                channel.basic_qos(prefetch_count=self.prefetch)
                for method, _, body in channel.consume(self.queue, inactivity_timeout=0.5):
                    if self.halt.is_set():
                        break
                    if method is None:
                        continue
                    self.traffic.add(int(body))
                    channel.basic_ack(method.delivery_tag)
            except LOST as error:
                self._lost(error)
            finally:
                _close(connection)


@dataclass(frozen=True)
class Outcome:
    confirmed: int
    delivered: int
    lost: list[int]
    duplicates: int


def settle(publisher: Publisher, consumer: Consumer, timeout: float) -> Outcome:
    """Stop publishing, let the consumer read until it has every confirmed message (or
    ``timeout`` passes), stop it, and compare."""
    publisher.stop()
    confirmed = set(publisher.traffic.numbers())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not confirmed <= set(consumer.traffic.numbers()):
        time.sleep(0.2)
    consumer.stop()
    delivered = consumer.traffic.numbers()
    return Outcome(
        confirmed=len(confirmed),
        delivered=len(delivered),
        lost=sorted(confirmed - set(delivered)),
        duplicates=len(delivered) - len(set(delivered)),
    )


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until true; the seconds it took, or an AssertionError naming ``what``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)
    return time.monotonic() - start
