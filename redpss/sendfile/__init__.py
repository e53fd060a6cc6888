"""SENDFILE: a table or view of the database exported to CSV or Parquet and delivered by mail or sFTP."""
