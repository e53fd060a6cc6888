"""The demo: a throw-away instance on the embedded database, with every daemon that has landed running in it."""
