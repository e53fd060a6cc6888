"""CFISRV: the FTPS server through which the database pulls files of the instance's data tree.

The database's `IMPORT ... FROM CSV AT REDSYS_CFI FILE '...'` connects to `ftps://<db_callback_host>:<cfi_port>/`
(implicit TLS); other clients use explicit AUTH TLS on cfi_explicit_port. TLS is required on the control and the
data channel, one account per instance, and every path stays inside $REDENV_HOME/data or, through the
data/input/<user> links, inside this instance's own sFTP tree. See docs/cfi.md.
"""
