"""Cloning operations: save the instance-owned state before the database is replaced (preclone), and put it back
after (postclone); the logic is redpss.clone's, shared with JMON, which runs the restore itself at start-up."""

from __future__ import annotations

from redpss.core.errors import RedpssError
from redpss.core.record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from redpss.clone.save import Precloned
    from redpss.ops.instance import Instance


class NotAClone(RedpssError):
    """postclone on a database that is this instance's own: nothing was changed."""


class Postcloned(Record):
    steps: list[str]  # "step: what it did", for the steps this call ran


def preclone(instance: Instance, *, force: bool = False) -> Precloned:
    """Save identity, activation states, suspend state and role memberships in tmp/preclone."""
    from redpss.clone.save import preclone as save  # noqa: PLC0415 - the database layer only for this operation
    from redpss.core.secret import instance_secret  # noqa: PLC0415

    session = instance.db()
    try:
        return save(session, instance.paths, instance_secret(instance.paths, create=False), force=force)
    finally:
        session.close()


def postclone(instance: Instance, *, force: bool = False) -> Postcloned:
    """Restore after a clone (or finish an interrupted restore); NotAClone when the database is this instance's.
    `force`: take over a foreign database without a preclone (every job and watcher inactive)."""
    from redpss.clone.restore import Verdict, assess, restore  # noqa: PLC0415 - as in preclone
    from redpss.core.secret import instance_secret  # noqa: PLC0415

    secret = instance_secret(instance.paths, create=False)
    session = instance.db()
    try:
        assessment = assess(session, instance.paths, secret)
        if assessment.verdict is Verdict.OWN:
            raise NotAClone(
                f"{assessment.message(instance.paths)}: it was not replaced by a clone, nothing was changed"
                + (" (the saved preclone stays pending)" if _pending(instance) else "")
            )
        if assessment.verdict is Verdict.FOREIGN and not force:
            raise RedpssError(f"{assessment.message(instance.paths)}; nothing was changed (no preclone is pending)")
        steps = restore(session, instance.config, instance.paths, secret, without_preclone=force)
    finally:
        session.close()
    instance.tell_jmon("poll")  # a JMON that held back on the foreign database schedules again
    return Postcloned(steps)


def _pending(instance: Instance) -> bool:
    from redpss.clone.folder import pending  # noqa: PLC0415

    return pending(instance.paths)
