"""jpegshrink storage plugins: the fsspec filesystem, the FUSE mount, and the S3 migration and verify jobs."""
