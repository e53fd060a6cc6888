"""Cloning an instance's database: `redctl preclone` saves the instance-owned state, the restore after the clone
(JMON before its first poll, or `redctl postclone`) puts it back and clears the logs the other database brought."""
