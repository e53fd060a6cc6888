"""JSON2CSV and PARQ2CSV: JSON and Parquet files arriving in data/input become CSV files Exasol's IMPORT reads."""
