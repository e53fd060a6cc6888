"""The embedded default database: a server that speaks Exasol's WebSocket protocol and runs SQL on DuckDB.

It exists so that the production code path (the real pyexasol driver, the real SQL files) is what tests and the demo
exercise on machines without Exasol. It is a test double and demo backend, not a claim of Exasol compatibility:
whatever it does not support is refused with an error that names the construct, never guessed.
See docs/devdb.md for what it supports and how to run it.
"""
