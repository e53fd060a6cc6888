"""Tests of the sFTP user commands: validation without root, and a real sshd in a scratch root."""
