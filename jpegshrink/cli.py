"""The ``jpegshrink`` command: compress, decompress and inspect files and folders.

Storage commands (``mount``, ``migrate``, ``verify``) live in the ``jpegshrink_storage`` package and are
dispatched to it, so the codec never imports storage code. Every failure is one line on stderr and a
nonzero exit code; a folder run goes on past a failing file and reports it in the summary.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from jpegshrink import codec
from jpegshrink.coding.container import is_container
from jpegshrink.errors import JpegShrinkError

SUFFIX = ".jsk"
_STORAGE_COMMANDS = {
    "mount": ("jpegshrink_storage.fuse", "main"),
    "migrate": ("jpegshrink_storage.migrate", "main_migrate"),
    "verify": ("jpegshrink_storage.verify", "main_verify"),
}


@dataclass
class FileResult:
    """One line of the report: what happened to one input file."""

    source: str
    target: str
    status: str  # "compressed", "fallback", "decompressed", "copied", "skipped" or "failed"
    bytes_in: int = 0
    bytes_out: int = 0
    detail: str = ""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _STORAGE_COMMANDS:
        return _run_storage_command(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "inspect":
        return _inspect(args.paths, args.json)
    return _transform(args)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jpegshrink", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, helptext in (("compress", "store JPEGs as compact containers (verified before writing)"),
                           ("decompress", "restore the byte-identical originals from containers")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("input", type=Path, help="a file or a folder (processed recursively, names kept)")
        c.add_argument("-o", "--output", type=Path,
                       help=f"output file or folder (default for a file: add/remove '{SUFFIX}')")
        c.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
        c.add_argument("-j", "--workers", type=int, default=os.cpu_count() or 1, help="parallel processes")
        c.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
        c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        if name == "compress":
            level = c.add_mutually_exclusive_group()
            level.add_argument("--model", help="coefficient model id (default: the newest)")
            level.add_argument("--level", choices=("default", "dense"),
                               help="dense: the denser, slower model for cold archives (mix3); "
                                    "default: the read-speed default")
    i = sub.add_parser("inspect", help="describe containers (format, model, sizes, fallback reason)")
    i.add_argument("paths", type=Path, nargs="+")
    i.add_argument("--json", action="store_true")
    for name in _STORAGE_COMMANDS:
        sub.add_parser(name, help=f"see 'jpegshrink {name} --help'", add_help=False)
    return p


def _run_storage_command(name: str, argv: list[str]) -> int:
    module_name, func_name = _STORAGE_COMMANDS[name]
    try:
        module = __import__(module_name, fromlist=[func_name])
    except ImportError as e:
        print(f"jpegshrink {name}: the storage plugins are not installed ({e}); "
              f"install jpegshrink with its extras, e.g. pip install 'jpegshrink[s3,fuse]'", file=sys.stderr)
        return 2
    return getattr(module, func_name)(argv)


# -- compress / decompress ------------------------------------------------------------------------

def _transform(args: argparse.Namespace) -> int:
    compressing = args.command == "compress"
    src: Path = args.input
    if not src.exists():
        print(f"jpegshrink: {src}: no such file or folder", file=sys.stderr)
        return 2
    try:
        jobs = list(_plan(src, args.output, compressing))
    except ValueError as e:
        print(f"jpegshrink: {e}", file=sys.stderr)
        return 2
    work = _compress_one if compressing else _decompress_one
    model_id = getattr(args, "model", None)
    if getattr(args, "level", None) == "dense":
        from jpegshrink import model
        model_id = model.DENSE_MODEL_ID
    results = _run(work, jobs, args.force, model_id, args.workers, args.quiet or args.json)
    _report(results, args.json)
    return 1 if any(r.status == "failed" for r in results) else 0


def _plan(src: Path, output: Path | None, compressing: bool) -> Iterator[tuple[Path, Path]]:
    """(source, target) pairs: a file maps to a file, a folder to a mirrored folder."""
    if src.is_file():
        if output is None:
            if compressing:
                output = src.with_name(src.name + SUFFIX)
            elif src.suffix == SUFFIX:
                output = src.with_suffix("")
            else:
                raise ValueError(f"{src}: name does not end in {SUFFIX}; say where to write with -o")
        yield src, output
        return
    if output is None:
        raise ValueError(f"{src} is a folder: give an output folder with -o")
    if output.resolve() == src.resolve() or src.resolve() in output.resolve().parents:
        raise ValueError("the output folder must not be the input folder or inside it")
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        yield path, output / path.relative_to(src)


def _run(work: Callable[..., FileResult], jobs: list[tuple[Path, Path]], force: bool, model_id: str | None,
         workers: int, quiet: bool) -> list[FileResult]:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="file", disable=quiet or len(jobs) < 2, file=sys.stderr)
    results = []
    if workers <= 1 or len(jobs) < 2:
        for s, t in jobs:
            results.append(work(s, t, force, model_id))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for r in pool.map(work, *zip(*jobs), [force] * len(jobs), [model_id] * len(jobs), chunksize=1):
                results.append(r)
                bar.update()
    bar.close()
    return results


def _compress_one(src: Path, dst: Path, force: bool, model_id: str | None) -> FileResult:
    def transform(data: bytes) -> tuple[bytes, str, str]:
        if is_container(data):
            return data, "skipped", "already a jpegshrink container"
        if not data.startswith(b"\xff\xd8"):
            return data, "copied", "not a JPEG: copied unchanged"
        blob = codec.compress(data, model_id=model_id)
        info = codec.inspect(blob)
        return blob, ("fallback" if info.mode == "fallback" else "compressed"), info.reason
    return _apply(src, dst, force, transform)


def _decompress_one(src: Path, dst: Path, force: bool, model_id: str | None) -> FileResult:
    def transform(data: bytes) -> tuple[bytes, str, str]:
        if not is_container(data):
            return data, "copied", "not a jpegshrink container: copied unchanged"
        return codec.decompress(data), "decompressed", ""
    return _apply(src, dst, force, transform)


def _apply(src: Path, dst: Path, force: bool, transform: Callable[[bytes], tuple[bytes, str, str]]) -> FileResult:
    result = FileResult(str(src), str(dst), "failed")
    try:
        if dst.exists() and not force:
            result.status, result.detail = "skipped", "output exists (use --force to overwrite)"
            return result
        data = src.read_bytes()
        result.bytes_in = len(data)
        out, result.status, result.detail = transform(data)
        _write_atomic(dst, out)
        result.bytes_out = len(out)
    except (JpegShrinkError, OSError) as e:
        result.status, result.detail = "failed", str(e)
    return result


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename it: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _report(results: list[FileResult], as_json: bool) -> None:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    done = [r for r in results if r.status in ("compressed", "fallback", "decompressed", "copied")]
    bytes_in, bytes_out = sum(r.bytes_in for r in done), sum(r.bytes_out for r in done)
    if as_json:
        json.dump({"files": [asdict(r) for r in results], "counts": counts,
                   "bytes_in": bytes_in, "bytes_out": bytes_out}, sys.stdout, indent=2)
        print()
        return
    for r in results:
        if r.status in ("failed", "skipped"):
            print(f"{r.status}: {r.source}: {r.detail}", file=sys.stderr)
    reasons: dict[str, int] = {}
    for r in results:
        if r.status == "fallback":
            reasons[r.detail] = reasons.get(r.detail, 0) + 1
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"stored as generic fallback: {n} file(s): {reason}", file=sys.stderr)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    saved = f" ({100 * (1 - bytes_out / bytes_in):.1f}% saved)" if bytes_in and bytes_out <= bytes_in else ""
    print(f"{summary}; {bytes_in:,} -> {bytes_out:,} bytes{saved}")


# -- inspect --------------------------------------------------------------------------------------

def _inspect(paths: list[Path], as_json: bool) -> int:
    rows, failed = [], False
    for path in paths:
        try:
            rows.append({"path": str(path), **asdict(codec.inspect(path.read_bytes()))})
        except (JpegShrinkError, OSError) as e:
            rows.append({"path": str(path), "error": str(e)})
            failed = True
    if as_json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        for row in rows:
            if "error" in row:
                print(f"{row['path']}: error: {row['error']}", file=sys.stderr)
                continue
            saved = 1 - row["stored_length"] / row["original_length"] if row["original_length"] else 0.0
            print(f"{row['path']}: {row['mode']} (format v{row['format_version']}"
                  f"{', model ' + row['model_id'] if row['model_id'] else ''}) "
                  f"{row['original_length']:,} -> {row['stored_length']:,} bytes ({100 * saved:.1f}% saved)"
                  f"{'; reason: ' + row['reason'] if row['reason'] else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
