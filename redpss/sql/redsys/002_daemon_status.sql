-- The current state of every daemon of the instance, for anyone who can query REDSYS ("the status of RED-PSS can be
-- queried directly from the DB"). JMON rewrites the rows every few seconds while the database is reachable; the
-- view reports STATE UNKNOWN for a row not rewritten for 30 s (JMON stopped, or the database was away from it).

-- One row per daemon the configuration enables. Times in the RED-PSS server's local time, except UPDATED_AT, which
-- is the database's CURRENT_TIMESTAMP when the row was written, so the view compares it with the same clock.
CREATE TABLE IF NOT EXISTS REDSYS.ADM_DAEMON_STATUS (
    "INSTANCE"      VARCHAR(16) NOT NULL,
    DAEMON          VARCHAR(32) NOT NULL,
    "STATE"         VARCHAR(16) NOT NULL,
    PID             DECIMAL(10,0),
    VERSION         VARCHAR(32),
    STARTED_AT      TIMESTAMP,
    LAST_HEARTBEAT  TIMESTAMP,
    STATUS_TEXT     VARCHAR(2000),
    UPDATED_AT      TIMESTAMP NOT NULL
);

CREATE OR REPLACE VIEW REDSYS.DAEMON_STATUS AS
SELECT
    "INSTANCE",
    DAEMON,
    CASE WHEN UPDATED_AT < ADD_SECONDS(CURRENT_TIMESTAMP, -30) THEN 'UNKNOWN' ELSE "STATE" END AS "STATE",
    PID,
    VERSION,
    STARTED_AT,
    LAST_HEARTBEAT,
    STATUS_TEXT,
    UPDATED_AT
FROM REDSYS.ADM_DAEMON_STATUS;
