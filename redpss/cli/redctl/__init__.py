"""redctl: the main command-line utility of an instance (see `redctl -h`).

Each command lives in its own module under redpss.cli.redctl.commands and registers itself in COMMANDS; this
package only builds the parser and dispatches.
"""
