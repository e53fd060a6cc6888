"""The operations layer: what an operator can ask of an instance, as functions returning data and outcomes.

redctl, the REST API and MAIL2CMD call these; each formats the result in its own way (a table, JSON, a reply
mail). Nothing here prints, parses arguments or knows about HTTP. Modules stay light (no typing, no dataclasses
at run time, the database driver and the wire loaded when a call needs them): redctl imports them on every start.
"""
