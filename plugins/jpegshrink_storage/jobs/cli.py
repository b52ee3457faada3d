"""What ``jpegshrink migrate`` and ``jpegshrink verify`` share on the command line.

Options for the store (boto3's usual credential chain plus ``--endpoint-url``), the workers, the
report; a progress bar; and :func:`run_cli`, which turns the errors that stop a whole job (credentials,
missing bucket, unreachable endpoint or scheduler, a busy journal) into one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator

from tqdm import tqdm

from jpegshrink_storage.errors import StorageError
from jpegshrink_storage.stores import StoreConfig

#: Exit status when the job could not run at all (nothing was written).
EXIT_ERROR = 2


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint-url", help="S3 endpoint (S3-compatible servers); credentials come from the "
                                          "usual boto3 chain (environment, profile, instance role)")
    p.add_argument("--profile", help="AWS profile name")
    p.add_argument("--region", help="AWS region")
    p.add_argument("--workers", type=int, default=4, help="threads working on objects (default 4)")
    p.add_argument("--dask", metavar="SCHEDULER_ADDRESS",
                   help="run the per-object work on this Dask cluster (tcp://host:port) instead of threads")
    p.add_argument("--retry-seconds", type=float, default=120.0,
                   help="how long one step is retried through throttling and outages (default 120)")
    p.add_argument("--report", metavar="FILE", help="also write the JSON report to FILE")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of text")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def store_config(url: str, args: argparse.Namespace) -> StoreConfig:
    threshold = getattr(args, "multipart_threshold_mb", 16) << 20
    return StoreConfig(url, endpoint_url=args.endpoint_url, profile=args.profile, region=args.region,
                       max_connections=max(10, 2 * args.workers), multipart_threshold=threshold,
                       multipart_chunksize=threshold)


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool, desc: str) -> Iterator[tqdm]:
    """objects/s come from tqdm's rate; callers add their own postfix (MB saved, problems). Shown only
    on a terminal (``disable=None``), so logs of unattended runs stay clean."""
    with tqdm(total=total, desc=desc, unit="obj", file=sys.stderr, disable=None if enabled else True, dynamic_ncols=True,
              mininterval=0.5) as bar:
        yield bar


def run_cli(prog: str, run: Callable[[], int]) -> int:
    """Run a command body; job-stopping errors become one clear stderr line and exit status 2.

    The stores turn boto's errors into StoreError, so this needs no boto: local jobs run without it."""
    try:
        return run()
    except StorageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return EXIT_ERROR
