"""Run one per-object task over many objects: on local threads, or on a Dask cluster.

The driver keeps everything stateful (listing, journal, report, progress); a task gets a picklable job
description and one item and returns a result, never raising (a task turns its own errors into a result).
On Dask the sorted key list is cut into contiguous ranges (the key space is partitioned) and each range
runs as one Dask task on some worker, which opens its own store clients; Dask does the scheduling, work
stealing and worker-loss handling (a range whose worker dies is run again elsewhere, which the
idempotent per-object steps allow). A range whose Dask task fails for good (it killed more workers than
Dask's ``allowed-failures``) comes back as one error result per item, which the journal does not count
as finished.
"""
from __future__ import annotations

import socket

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from jpegshrink_storage.errors import ClusterError, MissingDependency

Item = TypeVar("Item")
Result = TypeVar("Result")
Task = Callable[[Any, Any], Any]


def run_tasks(task: Task, job: Any, items: Sequence[Item], *, workers: int, dask_address: str | None,
              on_lost: Callable[[Item, BaseException], Result]) -> Iterator[Result]:
    """Yield ``task(job, item)`` for every item, in completion order."""
    if dask_address:
        yield from _on_dask(task, job, items, dask_address, on_lost)
    else:
        yield from _on_threads(task, job, items, max(1, workers))


def _on_threads(task: Task, job: Any, items: Iterable[Item], workers: int) -> Iterator[Result]:
    pool = ThreadPoolExecutor(workers, thread_name_prefix="jpegshrink")
    try:
        pending: set = set()
        it = iter(items)
        for item in it:
            pending.add(pool.submit(task, job, item))
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def check_cluster(address: str) -> int:
    """Connect once before the job writes anything; return the number of workers (waits up to 30 s for one)."""
    Client = _distributed().Client

    _probe_tcp(address)
    try:
        client = Client(address, timeout="15s")
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    try:
        client.wait_for_workers(1, timeout=30)
        return len(client.scheduler_info().get("workers", {}))
    except TimeoutError:
        raise ClusterError(f"the Dask cluster at {address} has no workers") from None
    finally:
        client.close()


def _probe_tcp(address: str) -> None:
    """A refused TCP connection fails at once (distributed itself keeps retrying until its timeout)."""
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    if not address.startswith("tcp://") or not port.isdigit():
        return  # other transports: let distributed judge
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {e}") from None


def run_range(task: Task, job: Any, items: list[Item]) -> list[Result]:
    """One Dask task: a contiguous range of the key space, processed in order on one worker."""
    return [task(job, item) for item in items]


def _on_dask(task: Task, job: Any, items: Sequence[Item], address: str,
             on_lost: Callable[[Item, BaseException], Result]) -> Iterator[Result]:
    distributed = _distributed()
    Client, as_completed = distributed.Client, distributed.as_completed

    try:
        client = Client(address, timeout="15s")
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        ranges = partition(list(items), n_workers)
        futures = client.map(run_range, [task] * len(ranges), [job] * len(ranges), ranges, pure=False)
        range_of = {f.key: r for f, r in zip(futures, ranges)}
        for future in as_completed(futures):
            try:
                results = future.result()
            except Exception as e:  # the whole range was lost; its objects stay unfinished
                results = [on_lost(item, e) for item in range_of[future.key]]
            future.release()
            yield from results
    finally:
        client.close()


def _distributed():
    try:
        import distributed
    except ImportError as e:
        raise MissingDependency("--dask", "dask", e) from None
    return distributed


def partition(items: list[Item], n_workers: int, per_worker: int = 4, max_range: int = 200) -> list[list[Item]]:
    """Contiguous ranges: about ``per_worker`` per worker (load balance), none over ``max_range`` items
    (a lost range costs little, and results stream back to the journal steadily)."""
    if not items:
        return []
    n = max(n_workers * per_worker, -(-len(items) // max_range), 1)
    size = -(-len(items) // n)
    return [items[i:i + size] for i in range(0, len(items), size)]
