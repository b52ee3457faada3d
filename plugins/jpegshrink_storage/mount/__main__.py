"""``python -m jpegshrink_storage.mount URL MOUNTPOINT``: what ``jpegshrink mount`` runs (and --background starts)."""
import sys

from jpegshrink_storage.mount.cli import main

sys.exit(main())
