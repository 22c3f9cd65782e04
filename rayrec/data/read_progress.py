"""The read stage's progress: the bytes of the source files read so far.

Ray Data's read tasks add what they have read to a :class:`ByteCounter` actor as they go
(:class:`~rayrec.data.review_reader.ReviewDatasource`); the driver runs the read in a thread
and shows the counter against the files' total size (:func:`run_with_progress`). A
compressed file counts its compressed bytes, so a single ``.json.gz`` (one read task) moves
too. A read task that Ray retries counts its bytes again: the figure may pass 100% then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import ray

from rayrec.progress import Progress

POLL_S = 0.5


@ray.remote(num_cpus=0)
class ByteCounter:
    """Bytes read so far, added to by the read tasks."""

    def __init__(self) -> None:
        self.bytes = 0

    def add(self, n: int) -> None:
        self.bytes += n

    def total(self) -> int:
        return self.bytes


def unit_of(total_bytes: int) -> tuple[str, int]:
    """The unit to show ``total_bytes`` in (MiB from 64 MiB up, else KiB) and its size."""
    return ("MiB", 1 << 20) if total_bytes >= 64 << 20 else ("KiB", 1 << 10)


def run_with_progress(
    work: Callable[[], None],
    counter: ray.actor.ActorHandle,
    total_bytes: int,
    report: Callable[[str], None],
    quiet_for: float,
) -> None:
    """Run ``work`` (the read) in a thread while a :class:`Progress` ("read", in the unit of
    :func:`unit_of`) shows ``counter``'s bytes; re-raises what ``work`` raised."""
    unit, size = unit_of(total_bytes)
    progress = Progress("read", total_bytes // size, report, unit=unit, quiet_for=quiet_for)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            failure.append(err)

    thread = threading.Thread(target=run, name="rayrec-read", daemon=True)
    thread.start()
    while True:  # the last update comes after the read has ended: the whole count
        thread.join(POLL_S)
        progress.update(ray.get(counter.total.remote()) // size)
        if not thread.is_alive():
            break
    if failure:
        raise failure[0]
    progress.close(summary=False)  # the caller reports the stage's end
