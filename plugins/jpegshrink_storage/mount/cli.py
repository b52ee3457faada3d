"""``jpegshrink mount URL MOUNTPOINT``: the jpegshrink:: layer as a local folder (mfusepy over libfuse3).

``ls -l`` shows original sizes, ``cat``/``cp``/``sha256sum`` read the original bytes, files written
into a read-write mount are stored compressed; ``du`` shows the bytes actually stored (``st_blocks``
comes from the stored size, as on a compressing filesystem).

libfuse runs with ``foreground=True`` inside this process: libfuse's own daemonisation forks, and the
calling script then exits while an orphan keeps serving the mount (see research/ecosystem.md, FUSE).
``--background`` instead starts this same command as a child process and returns once it is mounted.
Ctrl-C, SIGTERM and ``fusermount3 -u MOUNTPOINT`` all unmount cleanly and end the serving process.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from jpegshrink_storage.errors import MissingDependency, MountError, StorageError
from jpegshrink_storage.mount.operations import JpegShrinkOperations

FUSE_DEVICE = "/dev/fuse"
#: Exit status when the mount cannot start (as migrate and verify: the command could not run).
EXIT_ERROR = 2
#: libfuse worker threads (S3 reads wait on the network; decoding holds the GIL part of the time).
MAX_THREADS = 8


def load_mfusepy():
    """mfusepy, or a StorageError saying what to install (it loads libfuse when imported)."""
    try:
        import mfusepy
    except ImportError as e:
        raise MissingDependency("jpegshrink mount", "fuse", e) from None
    except OSError as e:
        raise MountError(f"libfuse is not available ({e}); install it (Debian: apt-get install fuse3)") from None
    return mfusepy


# ------------------------------------------------------------------------------------------ mount

def open_layer(url: str, options: dict[str, dict[str, Any]] | None = None):
    """(jpegshrink filesystem, root path) for ``url``; ``jpegshrink::`` is added when not in the chain."""
    import fsspec

    from jpegshrink_storage.fs import JpegShrinkFileSystem

    # the entry point registers the protocol in an installed package; a checkout run in place has none
    fsspec.register_implementation(JpegShrinkFileSystem.protocol, JpegShrinkFileSystem, clobber=True)
    if "jpegshrink::" not in url and not url.startswith("jpegshrink://"):
        url = "jpegshrink::" + url
    try:
        fs, root = fsspec.core.url_to_fs(url, **(options or {}))
    except ImportError as e:  # fsspec names the missing package; for S3 say which extra brings it
        if "s3://" in url:
            raise MissingDependency(f"mounting {url!r}", "s3", e) from None
        raise MountError(f"cannot open {url!r}: {e}") from None
    except Exception as e:
        raise MountError(f"cannot open {url!r}: {e}") from None
    if not isinstance(fs, JpegShrinkFileSystem):
        raise MountError(f"{url!r} must have jpegshrink:: outermost (caching layers go inside the mount)")
    try:
        if not fs.isdir(root):
            raise MountError(f"{url!r} is not a folder that exists (mount a bucket or a prefix with objects)")
    except MountError:
        raise
    except Exception as e:
        raise MountError(f"cannot reach {url!r}: {type(e).__name__}: {e}") from None
    return fs, root


def check_mountpoint(mountpoint: str) -> None:
    """Raise MountError unless ``mountpoint`` is an unmounted folder and FUSE can be used."""
    if not os.path.isdir(mountpoint):
        raise MountError(f"mount point {mountpoint!r} does not exist or is not a folder; create it first")
    if os.path.ismount(mountpoint):
        raise MountError(f"{mountpoint!r} is already a mount point; unmount it first (fusermount3 -u)")
    if os.listdir(mountpoint):  # mounting would hide its files (libfuse 3 no longer refuses by itself)
        raise MountError(f"mount point {mountpoint!r} is not empty; use an empty folder")
    if not os.path.exists(FUSE_DEVICE):
        raise MountError(f"{FUSE_DEVICE} is missing: FUSE is not available here (load the fuse kernel "
                         "module, or give the container the device, e.g. docker run --device /dev/fuse)")
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        raise MountError("fusermount3 not found (Debian: apt-get install fuse3)")


def mount(url: str, mountpoint: str, read_only: bool = False,
          options: dict[str, dict[str, Any]] | None = None, on_ready=None) -> None:
    """Serve ``url`` at ``mountpoint`` until unmounted (blocks; run it in a thread or process).

    libfuse handles SIGINT/SIGTERM/SIGHUP while this runs in the main thread: they unmount and return.
    """
    fs, root = open_layer(url, options)
    check_mountpoint(mountpoint)
    mfusepy = load_mfusepy()
    mounted = threading.Event()

    def ready() -> None:
        mounted.set()
        if on_ready is not None:
            on_ready()

    ops = JpegShrinkOperations(fs, root, read_only, ready)
    try:
        mfusepy.FUSE(ops, mountpoint, foreground=True, nothreads=False, ro=read_only, fsname="jpegshrink",
                     subtype="jpegshrink", max_threads=MAX_THREADS,
                     max_idle_threads=MAX_THREADS)  # libfuse 3.14 warns about its own default otherwise
    except RuntimeError as e:
        if not mounted.is_set():  # after a signal-triggered unmount libfuse 3 also returns nonzero
            raise MountError(f"libfuse could not mount {mountpoint!r} (status {e}); see the messages above") \
                from None


def _parse_options(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """``["s3.endpoint_url=http://...", "s3.anon=true"]`` -> ``{"s3": {"endpoint_url": ..., "anon": True}}``."""
    options: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        protocol, dot, name = key.partition(".")
        if not sep or not dot or not protocol or not name:
            raise MountError(f"option {pair!r} must look like PROTOCOL.NAME=VALUE, e.g. s3.endpoint_url=http://...")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        options.setdefault(protocol, {})[name] = parsed
    return options


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jpegshrink mount",
        description="Mount a jpegshrink:: location as a local folder: originals in, originals out, "
                    "stored compressed. Unmount with Ctrl-C, SIGTERM or `fusermount3 -u MOUNTPOINT`.")
    p.add_argument("url", help="e.g. s3://bucket/photos, jpegshrink::s3://bucket, /data/photos")
    p.add_argument("mountpoint", help="an existing empty folder")
    p.add_argument("--read-only", action="store_true", help="refuse writes")
    p.add_argument("--background", action="store_true",
                   help="serve from a child process and return once mounted (prints its pid)")
    p.add_argument("-o", "--option", action="append", default=[], metavar="PROTOCOL.NAME=VALUE",
                   help="filesystem option, e.g. -o s3.endpoint_url=http://127.0.0.1:9000 (repeatable)")
    p.add_argument("--log-file", help="where --background writes the server's messages (default: a temp file)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every failed operation")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``jpegshrink mount`` (``argv`` excludes the program name; a leading "mount" is ok):
    0 after a clean unmount, 2 when the mount cannot start (one line on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["mount"]:
        argv = argv[1:]
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="jpegshrink mount: %(levelname)s: %(message)s")
    try:
        options = _parse_options(args.option)
        if args.background:
            return _start_background(args)
        mountpoint = os.path.abspath(args.mountpoint)

        def ready() -> None:
            print(f"jpegshrink: serving {args.url} at {mountpoint}"
                  f"{' (read-only)' if args.read_only else ''}; Ctrl-C or SIGTERM unmounts", flush=True)

        mount(args.url, mountpoint, args.read_only, options, on_ready=ready)
    except StorageError as e:  # MountError, MissingDependency
        print(f"jpegshrink mount: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        pass
    return 0


def _start_background(args: argparse.Namespace) -> int:
    """Run this command (without --background) as a child; return once the mount is up."""
    mountpoint = os.path.abspath(args.mountpoint)
    open_layer(args.url, _parse_options(args.option))  # fail here, in the foreground, if the URL is bad
    check_mountpoint(mountpoint)
    log_path = args.log_file or os.path.join(tempfile.gettempdir(), f"jpegshrink-mount-{os.getpid()}.log")
    cmd = [sys.executable, "-m", "jpegshrink_storage.mount", args.url, mountpoint,
           *(["--read-only"] if args.read_only else []), *(["-v"] if args.verbose else []),
           *(x for o in args.option for x in ("-o", o))]
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                 start_new_session=True, env=child_env())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.ismount(mountpoint):
            print(f"jpegshrink: serving {args.url} at {mountpoint} from pid {child.pid} (log: {log_path}); "
                  f"unmount with `fusermount3 -u {mountpoint}` or `kill {child.pid}`", flush=True)
            return 0
        if child.poll() is not None:
            break
        time.sleep(0.05)
    if child.poll() is None:
        child.terminate()
        child.wait(10)
    with open(log_path, errors="replace") as f:
        raise MountError(f"the mount did not come up; server log {log_path}:\n{f.read()[-2000:]}")


def child_env() -> dict[str, str]:
    """The environment for the serving child, importing the very same jpegshrink code as this process."""
    import jpegshrink
    import jpegshrink_storage

    roots = [os.path.dirname(os.path.dirname(m.__file__)) for m in (jpegshrink_storage, jpegshrink)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*roots, *filter(None, [env.get("PYTHONPATH")])])
    return env

