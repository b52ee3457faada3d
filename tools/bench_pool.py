"""Worker processes for tools/bench.py: run one codec per process, survive crashes and hangs.

Why not concurrent.futures: a hung task there cannot be cancelled, and a segfault breaks the whole
pool. Here each worker owns a pipe; the parent hands out one task at a time, and a worker that dies or
overruns its per-file timeout is killed and replaced, with that file recorded as failed.

Timings are taken inside the worker around the codec call alone (no file reading, hashing or pipe
transfer): wall time, the process's CPU time (all threads) and the calling thread's CPU time. Process
CPU above thread CPU reveals a codec that uses other threads; CPU time, unlike wall time, does not
grow while the process waits for a core on a busy machine.
"""
from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import resource
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable


def _rss_kib() -> int:
    """Peak RSS of this process image in KiB.

    /proc's VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork + exec, so a spawned
    worker would report at least the parent's RSS (the parent holds every blob of a pass).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _worker_main(conn: Connection, spec: str, model_id: str | None) -> None:
    import bench_codecs  # imported here so that the single-thread environment precedes codec imports
    os.environ.update(bench_codecs.SINGLE_THREAD_ENV)
    try:
        codec = bench_codecs.load(spec, model_id)
        info = {"version": codec.version(), "threads": codec.threads_note(), "rss_init_kib": _rss_kib()}
    except Exception as e:  # noqa: BLE001 - reported to the parent, which marks the codec unavailable
        conn.send(("init-error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", info))
    describe = getattr(codec, "describe", None)
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            return
        kind, key, payload = msg
        result: dict[str, Any] = {}
        try:
            if kind == "warm":  # JIT compilation, lazy imports and model loading stay out of the timings
                for path in payload:
                    with open(path, "rb") as f:
                        data = f.read()
                    try:
                        codec.decode(codec.encode(data))
                    except Exception:  # noqa: BLE001 - a rejected file still loads its code paths
                        pass
            elif kind == "enc":
                with open(payload, "rb") as f:
                    data = f.read()
                w0, c0, t0 = time.perf_counter(), time.process_time(), time.thread_time()
                blob = bytes(codec.encode(data))
                result.update(wall=time.perf_counter() - w0, cpu=time.process_time() - c0,
                              tcpu=time.thread_time() - t0, blob=blob)
                if describe is not None:
                    result["mode"], result["reason"] = describe(blob)
            else:
                blob, expected_sha = payload
                w0, c0, t0 = time.perf_counter(), time.process_time(), time.thread_time()
                out = bytes(codec.decode(blob))
                result.update(wall=time.perf_counter() - w0, cpu=time.process_time() - c0,
                              tcpu=time.thread_time() - t0, out_len=len(out),
                              out_sha256=hashlib.sha256(out).hexdigest())
                result["exact"] = result["out_sha256"] == expected_sha
        except Exception as e:  # noqa: BLE001 - a codec error on one file is a result, not a crash
            result["error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        result["rss_kib"] = _rss_kib()
        conn.send((kind, key, result))


@dataclass
class _Worker:
    proc: mp.process.BaseProcess
    conn: Connection
    task: tuple | None = None
    deadline: float = 0.0


@dataclass
class CodecPool:
    """``n`` worker processes running codec ``spec``; use as a context manager."""

    spec: str
    n: int
    timeout_s: float
    model_id: str | None = None
    warmup_paths: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    peak_rss_kib: int = 0
    restarts: int = 0
    _workers: list[_Worker] = field(default_factory=list)

    def __enter__(self) -> "CodecPool":
        self._workers = [self._start() for _ in range(self.n)]
        return self

    def __exit__(self, *exc: object) -> None:
        for w in self._workers:
            try:
                w.conn.send(("stop",))
            except OSError:
                pass
            w.proc.join(5)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()

    def _start(self) -> _Worker:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker_main, args=(child, self.spec, self.model_id),
                           daemon=True)
        proc.start()
        child.close()
        if not parent.poll(max(self.timeout_s, 120)):
            proc.kill()
            raise RuntimeError(f"codec {self.spec}: worker did not start in time")
        try:
            status, info = parent.recv()
        except EOFError:
            raise RuntimeError(f"codec {self.spec}: worker died while starting") from None
        if status != "ready":
            proc.join()
            raise RuntimeError(f"codec {self.spec} is unavailable: {info}")
        self.info.update(info)
        self.peak_rss_kib = max(self.peak_rss_kib, info["rss_init_kib"])
        if self.warmup_paths:
            parent.send(("warm", None, self.warmup_paths))
            try:
                done = parent.poll(self.timeout_s) and parent.recv() is not None
            except EOFError:
                done = False
            if not done:  # crashed or hung: measure cold rather than not at all, and say so
                self.info["warmup"] = "warm-up crashed or hung; workers start cold"
                self.warmup_paths = []
                proc.kill()
                proc.join()
                return self._start()
        return _Worker(proc, parent)

    def run(self, tasks: list[tuple[str, Any, Any]],
            on_result: Callable[[Any, dict[str, Any]], None]) -> None:
        """Run ``(kind, key, payload)`` tasks; ``on_result(key, result)`` gets each result as it lands.

        A task whose worker dies or runs past the timeout yields ``{"error": "timeout ..."}`` or
        ``{"error": "worker crashed ..."}``, and the worker is replaced.
        """
        pending = list(reversed(tasks))
        while pending or any(w.task for w in self._workers):
            for w in self._workers:
                if w.task is None and pending:
                    w.task = pending.pop()
                    w.deadline = time.monotonic() + self.timeout_s
                    w.conn.send(w.task)
            busy = [w for w in self._workers if w.task]
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = set(wait([w.conn for w in busy], timeout))
            for i, w in enumerate(self._workers):
                if w.task is None:
                    continue
                if w.conn in ready:
                    try:
                        _kind, key, result = w.conn.recv()
                    except EOFError:
                        w.proc.join(5)
                        self._replace(i, on_result, f"worker crashed (exit code {w.proc.exitcode})")
                        continue
                    self.peak_rss_kib = max(self.peak_rss_kib, result.pop("rss_kib", 0))
                    w.task = None
                    on_result(key, result)
                elif time.monotonic() > w.deadline:
                    self._replace(i, on_result, f"timeout after {self.timeout_s:g} s")

    def _replace(self, i: int, on_result: Callable[[Any, dict[str, Any]], None], error: str) -> None:
        w = self._workers[i]
        w.proc.kill()
        w.proc.join()
        self.restarts += 1
        key = w.task[1]
        self._workers[i] = self._start()
        on_result(key, {"error": error})
