-- Which RED-PSS instance this database belongs to. `redctl db_install` writes the one row: the instance's name
-- (REDENV), the server it runs on, a random id the instance keeps in $REDENV_HOME/etc/instance.id, and a fingerprint
-- of the instance secret (never the secret). A database restored from another database's backup (a clone) carries
-- that database's row: JMON sees an id that is not its instance's and, before its first poll, puts back what
-- `redctl preclone` saved (redpss.clone), or starts no job until `redctl postclone` has run.
CREATE TABLE IF NOT EXISTS REDSYS.INSTANCE_IDENTITY (
    INSTANCE_NAME       VARCHAR(16) NOT NULL,
    SERVER_NAME         VARCHAR(256) NOT NULL,
    INSTANCE_ID         VARCHAR(64) NOT NULL,
    SECRET_FINGERPRINT  VARCHAR(64) NOT NULL,
    WRITTEN_AT          TIMESTAMP NOT NULL
);
