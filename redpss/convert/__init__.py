"""JSON2CSV and PARQ2CSV: JSON and Parquet files arriving in data/input become CSV files Exasol's IMPORT reads."""

import os

# numpy serves the converters' vectorised scans, never linear algebra; OpenBLAS's threads, started with numpy,
# still took 4-8% of a JSON conversion's CPU waiting for work. Set before numpy is first imported by the daemons.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
