-- ROWS_LOADED: the rows a LOAD job's run imported (every file of the run together); NULL for other job types.
ALTER TABLE {{SCHEMA}}.ADM_JOB_LOG ADD COLUMN IF NOT EXISTS ROWS_LOADED DECIMAL(18,0);
