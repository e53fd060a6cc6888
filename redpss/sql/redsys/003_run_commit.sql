-- Commit markers of SQL job runs. A SCHED worker runs a SQL job in a transaction of its own and inserts the run's
-- RUN_ID here in that same transaction before it commits: the marker exists exactly when the job's work was
-- committed. When a run's outcome is unknown (its worker died, the connection dropped during COMMIT, SCHED
-- restarted with the run in flight), SCHED deletes the marker: one row deleted means the run committed (OK),
-- none means it did not. A marker of a run that ended normally is deleted once the run's log row is spooled; one
-- left behind (SCHED killed in between) goes after a day, at SCHED's next start.
CREATE TABLE IF NOT EXISTS REDSYS.ADM_RUN_COMMIT (
    RUN_ID          VARCHAR(64) NOT NULL,
    COMMITTED_AT    TIMESTAMP NOT NULL
);
