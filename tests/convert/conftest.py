"""pyarrow starts its process-wide thread pools (and their wake-up pipes) on first use; they live as long as the
process. Starting them here, once, keeps the leak check of the first test that reads a CSV from counting them."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

pacsv.read_csv(io.BytesIO(b"a\n1\n"))
pacsv.read_csv(io.BytesIO(b"a\n1\n"), read_options=pacsv.ReadOptions(use_threads=False))
pajson.read_json(io.BytesIO(b'{"a": 1}\n'))
_buffer = io.BytesIO()
pq.write_table(pa.table({"a": [1]}), _buffer)
pq.read_table(pa.BufferReader(_buffer.getvalue()))
