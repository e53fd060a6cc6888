"""Shared ground of every RED-PSS daemon and CLI; imports no service."""
