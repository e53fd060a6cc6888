"""sFTP users of an instance: key-only, change-rooted accounts whose uploads appear in the instance's data/input.

The logic lives here and is plain functions over explicit paths and account lists; the two commands in redpss.cli
(redftp_useradd, redftp_userdel) only parse arguments, get root (through sudo when run as redsys) and call it.
"""
