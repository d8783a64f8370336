"""Stage 1, the measurement table: takes measurements (from ``measure``, ``lab`` or other
people's files) and gives validated long-format rows, one per checkpoint x metric.

* :mod:`.schema`: the columns, their types and validation (docs/schema.md);
* :mod:`.io`: Parquet reading, writing, appending under a lock, shard merging;
* :mod:`.ingest`: other formats in (the paper's published JSON, CSV);
* :mod:`.rows`: which rows a fit uses (metric, flagged rows);
* :mod:`.atomic`: atomic file writes, shared by every stage that writes a file.

Imports nothing else of the package but :mod:`sparsitylaws.errors` and
:mod:`sparsitylaws.paper`.
"""

from sparsitylaws.tables.io import (
    append_rows,
    check_shards,
    file_lock,
    find_parquet_files,
    merge_frames,
    read_table,
    write_table,
)

__all__ = ["append_rows", "check_shards", "file_lock", "find_parquet_files", "merge_frames",
           "read_table", "write_table"]
