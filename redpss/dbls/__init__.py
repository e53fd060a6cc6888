"""DBLS, the database log server: log buffers from the database's scripts to files, LOG_MESSAGES and journald."""
