"""The database side of RED-PSS as package data: versioned Exasol SQL for REDSYS and for each application schema.

redsys/NNN_*.sql install and upgrade the REDSYS schema; app/NNN_*.sql install and upgrade one application schema,
with the placeholder {{SCHEMA}} standing for its name. NNN is the version a file brings the component to; files
are idempotent (IF NOT EXISTS, OR REPLACE) so a file interrupted halfway can simply run again.
"""
