"""Ray Data parquet reads that schedule no actor.

Ray Data 2.60's default parquet reader (datasource v2) lists the files in a task that waits
for a ``FooterReader`` actor, which Ray Data schedules with ``SPREAD`` outside any placement
group, and each needs a CPU. Where the free CPUs are all held, the listing task holds one
and the actor never starts: the read hangs. Seen on a 2-CPU node whose tokenizer pool held
the other CPU, and in Tune sweeps whose trials reserve every CPU of the cluster (a trial's
read tasks run in its own placement group; the actor cannot). The v1 reader needs no actor.
"""

from __future__ import annotations

import threading

import ray.data

# DataContext is one object per process: two threads switching its reader flag at once
# could each restore the other's value.
_SWITCH = threading.Lock()


def read_parquet(path: str) -> ray.data.Dataset:
    """``ray.data.read_parquet(path)`` with the v1 (actor-free) reader.

    The reader is chosen when ``read_parquet`` is called; the dataset keeps it when it is
    executed later. Calls from several threads take turns."""
    context = ray.data.DataContext.get_current()
    with _SWITCH:
        saved = context.use_datasource_v2
        context.use_datasource_v2 = False
        try:
            return ray.data.read_parquet(path)
        finally:
            context.use_datasource_v2 = saved
