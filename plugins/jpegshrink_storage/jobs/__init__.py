"""``jpegshrink migrate`` and ``jpegshrink verify``: whole-bucket jobs over :mod:`jpegshrink_storage.stores`.

:mod:`.migrate` is the migration driver and its command line, :mod:`.migrate_object` what happens to one
object; :mod:`.verify` the audit; :mod:`.journal` makes a migration resumable; :mod:`.report` the totals;
:mod:`.executors` runs per-object work on threads or Dask; :mod:`.retry` rides out transient S3 errors;
:mod:`.metadata` the user metadata written with each container; :mod:`.outcomes` what happened to an
object; :mod:`.cli` the options and error handling both commands share.
"""
