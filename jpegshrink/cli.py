"""The jpegshrink command: compress, decompress and inspect files and folders.

Storage commands (``mount``, ``migrate``, ``verify``) live in the ``jpegshrink_storage`` package and are
dispatched to it, so the codec never imports storage code. Every failure is one line on stderr and a
nonzero exit code; a folder run goes on past a failing file and reports it in the summary.

Files are written through a temporary file and a rename (readers never see a partial file), with the
source's permissions less the umask (as ``cp`` makes a new file; not ``mkstemp``'s ``0600``) and the
source's timestamps (as ``gzip`` does): ``compress`` gives the container the photo's mode and mtime and
``decompress`` gives the restored photo the container's, so a round trip keeps both. The timestamp
lives in the file system, not in the container, so the same photo always makes the same container bytes
(deduplication, ETags, golden files and verify-by-hash depend on that).
"""
from __future__ import annotations

import argparse
import enum
import json
import os
import secrets
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import jpegshrink
from jpegshrink import codec, model
from jpegshrink.coding.container import FORMAT_VERSION, is_container
from jpegshrink.errors import JpegShrinkError

SUFFIX = ".jsk"
_JPEG_SOI = b"\xff\xd8"
_OUTPUT_EXISTS = "output exists; --force overwrites"
_STORAGE_COMMANDS = {
    "mount": ("jpegshrink_storage.mount", "main"),
    "migrate": ("jpegshrink_storage.jobs.migrate", "main_migrate"),
    "verify": ("jpegshrink_storage.jobs.verify", "main_verify"),
}


class Outcome(str, enum.Enum):
    """What happened to one input file (the JSON report writes the value)."""

    COMPRESSED = "compressed"  #: a jpeg container
    FALLBACK = "fallback"  #: a container holding zstd of the original (the reason says why)
    STORED = "stored"  #: a container holding the original as it is (nothing made it smaller)
    LOSSY = "lossy"  #: a lossy JPEG container made from an image (--lossy; the source cannot be recovered)
    DECOMPRESSED = "decompressed"
    COPIED = "copied"  #: written unchanged (not a JPEG in a folder, not a container on decompress)
    SKIPPED = "skipped"  #: nothing written (the output exists, or the input is already a container)
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


#: Outcomes that wrote a file.
_WRITTEN = (Outcome.COMPRESSED, Outcome.LOSSY, Outcome.FALLBACK, Outcome.STORED, Outcome.DECOMPRESSED, Outcome.COPIED)


@dataclass
class FileResult:
    """One line of the report: what happened to one input file."""

    source: str
    target: str
    status: Outcome
    bytes_in: int = 0
    bytes_out: int = 0
    detail: str = ""


@dataclass(frozen=True)
class Job:
    """One file to transform. ``whole_file``: the user named this file, not a folder holding it."""

    source: Path
    target: Path
    force: bool
    whole_file: bool


@dataclass(frozen=True)
class CompressOptions:
    """The options of ``compress`` that reach the workers (options of new encoders go here too)."""

    model_id: str | None = None
    #: lossy image mode for images that are not JPEGs (None: everything stays lossless), see docs/lossy.md
    lossy: str | None = None
    quality: int | None = None
    target: dict | None = None
    #: re-encode existing JPEGs lossily too (otherwise they are stored losslessly even with ``lossy``)
    lossy_jpegs: bool = False


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _STORAGE_COMMANDS:
        return _run_storage_command(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "inspect":
        return _inspect(args.paths, args.json)
    return _transform(args)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jpegshrink", description="Store JPEG files in fewer bytes and give back the byte-identical "
                                       "originals; compress, decompress and inspect files and folders.")
    p.add_argument("--version", action="version",
                   version=f"jpegshrink {jpegshrink.__version__} (writes container format v{FORMAT_VERSION}; v2 for objects without info)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_compress_options(_add_transform_options(sub.add_parser(
        "compress", help="store JPEGs as compact containers (verified before writing)")))
    _add_transform_options(sub.add_parser(
        "decompress", help="restore the byte-identical originals from containers"))
    i = sub.add_parser("inspect", help="describe containers (format, model, sizes, fallback reason)")
    i.add_argument("paths", type=Path, nargs="+")
    i.add_argument("--json", action="store_true", help="print the description as JSON on stdout")
    for name in _STORAGE_COMMANDS:
        sub.add_parser(name, help=f"see 'jpegshrink {name} --help'", add_help=False)
    return p


def _add_transform_options(c: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options that ``compress`` and ``decompress`` share."""
    c.add_argument("input", type=Path, help="a file or a folder (processed recursively, names kept)")
    c.add_argument("-o", "--output", type=Path,
                   help=f"output file or folder (default for a file: add/remove '{SUFFIX}')")
    c.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
    c.add_argument("-j", "--workers", type=int, default=os.cpu_count() or 1, help="parallel processes")
    c.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return c


def _add_compress_options(c: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of ``compress`` only; :func:`_compress_options` turns them into :class:`CompressOptions`."""
    level = c.add_mutually_exclusive_group()
    level.add_argument("--model", help=f"coefficient model id (default: {model.DEFAULT_MODEL_ID}; "
                                       f"known: {', '.join(model.registered_ids())})")
    level.add_argument("--level", choices=("default", "dense"),
                       help=f"dense: the denser, slower model for cold archives ({model.DENSE_MODEL_ID}); "
                            f"default: the read-speed default")
    _add_lossy_arguments(c)
    return c


def _compress_options(args: argparse.Namespace) -> CompressOptions:
    """Check ``compress``'s options before any work: a typo is a usage error, not a failure per file."""
    if args.model is not None and args.model not in model.registered_ids():
        raise ValueError(f"unknown model {args.model!r} (known: {', '.join(model.registered_ids())})")
    model_id = model.DENSE_MODEL_ID if args.level == "dense" else args.model
    return CompressOptions(model_id=model_id, **_lossy_options(args))


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
        options = _compress_options(args) if compressing else None
        jobs = list(_plan(src, args.output, args.force, compressing))
        _check_writable(jobs[0].target.parent if src.is_file() else args.output)
    except ValueError as e:
        print(f"jpegshrink: {e}", file=sys.stderr)
        return 2
    work = _compress_one if compressing else _decompress_one
    results = _run(work, jobs, options, args.workers, args.quiet or args.json)
    _report(results, compressing, args.json)
    return 1 if any(r.status == Outcome.FAILED for r in results) else 0


def _plan(src: Path, output: Path | None, force: bool, compressing: bool) -> Iterator[Job]:
    """The jobs: a file maps to a file, a folder to a mirrored folder."""
    if src.is_file():
        if output is None:
            if compressing:
                output = src.with_name(src.name + SUFFIX)
            elif src.suffix == SUFFIX:
                output = src.with_suffix("")
            else:
                raise ValueError(f"{src}: name does not end in {SUFFIX}; say where to write with -o")
        elif output.is_dir():  # -o FOLDER for one file: the default name, in that folder
            name = src.name + SUFFIX if compressing else (src.stem if src.suffix == SUFFIX else src.name)
            output = output / name
        yield Job(src, output, force, whole_file=True)
        return
    if output is None:
        raise ValueError(f"{src} is a folder: give an output folder with -o")
    if output.resolve() == src.resolve() or src.resolve() in output.resolve().parents:
        raise ValueError("the output folder must not be the input folder or inside it")
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        yield Job(path, output / path.relative_to(src), force, whole_file=False)


def _check_writable(folder: Path) -> None:
    """Refuse, before any work, an output folder that cannot be written, naming it (not a temporary file).

    A missing folder is created now, as the run would; then a probe file is created and removed in it.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create the output folder {folder}: {e.strerror or e}") from None
    try:
        fd, probe = _create_temporary(folder, ".jpegshrink-write-test")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(f"cannot write to {folder}: {e.strerror or e}") from None


def _run(work: Callable[[Job, CompressOptions | None], FileResult], jobs: list[Job],
         options: CompressOptions | None, workers: int, quiet: bool) -> list[FileResult]:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="file", disable=quiet or len(jobs) < 2, file=sys.stderr)
    results = []
    if workers <= 1 or len(jobs) < 2:
        for job in jobs:
            results.append(work(job, options))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for r in pool.map(work, jobs, [options] * len(jobs), chunksize=1):
                results.append(r)
                bar.update()
    bar.close()
    return results


def _compress_one(job: Job, options: CompressOptions | None) -> FileResult:
    options = options or CompressOptions()

    def transform(data: bytes) -> tuple[bytes | None, Outcome, str]:
        if is_container(data):
            if job.whole_file:
                return None, Outcome.SKIPPED, "already a jpegshrink container: nothing written"
            return data, Outcome.COPIED, "already a jpegshrink container"
        if options.lossy and (options.lossy_jpegs or not data.startswith(_JPEG_SOI)):
            return _encode_lossy(data, options, job.whole_file)
        if not data.startswith(_JPEG_SOI) and not job.whole_file:
            return data, Outcome.COPIED, "not a JPEG"  # a folder's other files: kept usable, names kept
        blob = codec.compress(data, model_id=options.model_id)
        info = codec.inspect(blob)
        outcome = {"jpeg": Outcome.COMPRESSED, "stored": Outcome.STORED}.get(info.mode, Outcome.FALLBACK)
        return blob, outcome, info.reason
    return _apply(job, transform)


# -- lossy policy for new images (docs/lossy.md) -------------------------------------------------
# Default stays lossless. With --lossy, images that are not JPEGs (PNG, TIFF, WebP...) are stored as
# lossy JPEG containers; an existing JPEG is still stored losslessly unless --lossy-jpegs says otherwise.

def _add_lossy_arguments(c: argparse.ArgumentParser) -> None:
    g = c.add_argument_group("lossy mode (opt-in: the source files cannot be recovered)")
    g.add_argument("--lossy", choices=("high-bitrate",), help="store non-JPEG images as lossy JPEG containers")
    g.add_argument("--target", help="quality goal, e.g. ssimulacra2=85 or bpp=1.2 (default: --quality)")
    g.add_argument("--quality", type=int, help="encoder quality 1..100 (default 90)")
    g.add_argument("--lossy-jpegs", action="store_true",
                   help="also re-encode existing JPEGs lossily (otherwise they are stored losslessly)")


def _lossy_options(args: argparse.Namespace) -> dict:
    if not args.lossy:
        if args.target or args.quality is not None or args.lossy_jpegs:
            raise ValueError("--target, --quality and --lossy-jpegs need --lossy")
        return {}
    target = None
    if args.target:
        metric, sep, value = args.target.partition("=")
        try:
            target = {metric: float(value)} if sep else None
        except ValueError:
            target = None
        if target is None:
            raise ValueError(f"--target {args.target!r}: write METRIC=VALUE, e.g. ssimulacra2=85")
    if target is not None and args.quality is not None:
        raise ValueError("give --target or --quality, not both")
    return {"lossy": args.lossy, "quality": args.quality, "target": target, "lossy_jpegs": args.lossy_jpegs}


def _encode_lossy(data: bytes, options: CompressOptions, whole_file: bool) -> tuple[bytes | None, Outcome, str]:
    from jpegshrink import image_api
    from jpegshrink.errors import BadImage
    try:
        blob = image_api.encode_image(data, mode=options.lossy, quality=options.quality, target=options.target,
                                      model_id=options.model_id)
    except BadImage as e:
        if whole_file:
            raise
        return data, Outcome.COPIED, f"not an image the lossy mode encodes ({e})"
    scores = codec.inspect(blob).info.get("scores", {})
    return blob, Outcome.LOSSY, f"ssimulacra2 {scores.get('ssimulacra2')}"


def _lossy_summary(info: dict) -> str:
    """One line for ``inspect``: what a lossy object was made from, and that it cannot be given back."""
    s = info.get("settings", {})
    scores = info.get("scores", {})
    return (f"LOSSY {info.get('mode', '?')} from {info.get('source_format', '?')} "
            f"{info.get('source_width', '?')}x{info.get('source_height', '?')}, quality {s.get('quality', '?')}, "
            f"{s.get('subsampling_chosen', '?')}, SSIMULACRA2 {scores.get('ssimulacra2')}, "
            f"PSNR-Y {scores.get('psnr_y')} dB; the original cannot be recovered")


def _decompress_one(job: Job, options: CompressOptions | None) -> FileResult:
    def transform(data: bytes) -> tuple[bytes | None, Outcome, str]:
        if not is_container(data):
            return data, Outcome.COPIED, "not a jpegshrink container"
        return codec.decompress(data), Outcome.DECOMPRESSED, ""
    return _apply(job, transform)


def _apply(job: Job, transform: Callable[[bytes], tuple[bytes | None, Outcome, str]]) -> FileResult:
    result = FileResult(str(job.source), str(job.target), Outcome.FAILED)
    try:
        if job.target.exists() and not job.force:
            result.status, result.detail = Outcome.SKIPPED, _OUTPUT_EXISTS
            return result
        stat = job.source.stat()
        data = job.source.read_bytes()
        result.bytes_in = len(data)
        out, result.status, result.detail = transform(data)
        if out is not None:
            _write_atomic(job.target, out, stat.st_mode, (stat.st_atime_ns, stat.st_mtime_ns))
            result.bytes_out = len(out)
    except (JpegShrinkError, OSError) as e:
        result.status, result.detail = Outcome.FAILED, str(e)
    return result


def _umask() -> int:
    """The process's umask now (Linux reports it in /proc; elsewhere set it and put it back)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _create_temporary(folder: Path, name: str) -> tuple[int, str]:
    """A new file in ``folder`` with the permissions any new file gets: 0666 less the umask."""
    while True:
        path = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:
            continue


def _write_atomic(path: Path, data: bytes, source_mode: int, times_ns: tuple[int, int]) -> None:
    """Write to a temporary file beside ``path`` and rename it: readers never see a partial file.

    The file gets its source's permissions less the umask (as ``cp`` gives a new file: a 0644 photo
    under umask 022 makes a 0644 container and a 0644 restored photo, a private 0600 one stays 0600)
    and the source's timestamps ``times_ns`` (atime, mtime), as gzip does.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path.parent, path.name)
    try:
        os.fchmod(fd, source_mode & 0o777 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.utime(tmp, ns=times_ns)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _report(results: list[FileResult], compressing: bool, as_json: bool) -> None:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    done = [r for r in results if r.status in _WRITTEN]
    bytes_in, bytes_out = sum(r.bytes_in for r in done), sum(r.bytes_out for r in done)
    if as_json:
        json.dump({"files": [{**asdict(r), "status": r.status.value} for r in results], "counts": counts,
                   "bytes_in": bytes_in, "bytes_out": bytes_out}, sys.stdout, indent=2)
        print()
        return
    for r in results:
        if r.status == Outcome.FAILED:
            print(f"failed: {r.source}: {r.detail}", file=sys.stderr)
    groups: dict[tuple[Outcome, str], int] = {}
    for r in results:
        if r.status in (Outcome.FALLBACK, Outcome.STORED, Outcome.COPIED, Outcome.SKIPPED) \
                and r.detail != _OUTPUT_EXISTS:  # a re-run: the summary line says it once
            groups[r.status, r.detail] = groups.get((r.status, r.detail), 0) + 1
    what = {Outcome.FALLBACK: "stored in a fallback container (zstd)",
            Outcome.STORED: "stored in a container as is (no coding made it smaller)",
            Outcome.COPIED: "copied unchanged", Outcome.SKIPPED: "skipped"}
    for (status, detail), n in sorted(groups.items(), key=lambda kv: (kv[0][0].value, -kv[1])):
        name = results[0].source if len(results) == 1 else f"{n} file{'s' if n > 1 else ''}"
        print(f"{name} {what[status]}{': ' + _reason_text(detail) if detail else ''}", file=sys.stderr)
    order = (Outcome.COMPRESSED, Outcome.LOSSY, Outcome.FALLBACK, Outcome.STORED, Outcome.DECOMPRESSED, Outcome.COPIED,
             Outcome.SKIPPED, Outcome.FAILED)
    summary = ", ".join(f"{counts[o.value]} {o.value}" for o in order if o.value in counts) or "no files"
    if any(r.detail == _OUTPUT_EXISTS for r in results):
        summary = summary.replace(" skipped", f" skipped ({_OUTPUT_EXISTS})")
    if compressing:
        if not bytes_in:
            change = ""
        elif bytes_out <= bytes_in:
            change = f" ({100 * (1 - bytes_out / bytes_in):.1f}% saved)"
        else:
            change = f" ({bytes_out - bytes_in:,} bytes more: nothing here compresses)"
    else:
        change = "" if counts.get(Outcome.DECOMPRESSED.value) else "; nothing was a container to decompress"
    print(f"{summary}; {bytes_in:,} -> {bytes_out:,} bytes{change}" if done else summary)


def _reason_text(detail: str) -> str:
    return {codec.NOT_JPEG: "not a JPEG", "no-gain": "coding did not make it smaller"}.get(detail, detail)


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
            extra = row["stored_length"] - row["original_length"]
            change = f"{100 * -extra / row['original_length']:.1f}% saved" if extra <= 0 and row["original_length"] \
                else f"{extra:+,} bytes of container overhead"
            print(f"{row['path']}: {row['mode']} (format v{row['format_version']}"
                  f"{', model ' + row['model_id'] if row['model_id'] else ''}"
                  f"{', LOSSY' if row['lossy'] else ''}) "
                  f"{row['original_length']:,} -> {row['stored_length']:,} bytes ({change})"
                  f"{'; reason: ' + row['reason'] if row['reason'] else ''}")
            if row["lossy"]:
                print("    " + _lossy_summary(row["info"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
