-- An application schema's RED tables: job and watcher definitions, their run logs, watcher errors, log messages.

CREATE SCHEMA IF NOT EXISTS {{SCHEMA}};

-- A job: what runs (JOB_TYPE SQL: COMMAND is a statement such as EXECUTE SCRIPT app.load_orders();
-- LOAD: COMMAND names a load of files; ACTION: COMMAND names a script in $REDENV_HOME/cmd run by JEXEC),
-- in which pool (DEFAULT, LOADER, ACTION), when (INTERVAL_SECONDS or CRON_EXPR), and its policies:
-- OVERLAP_POLICY SKIP|QUEUE when the previous run still runs, MISSED_POLICY SKIP|RUN_ONCE for runs missed by more
-- than GRACE_SECONDS (after a stall or a restart), retries with RETRY_DELAY_SECONDS between attempts.
CREATE TABLE IF NOT EXISTS {{SCHEMA}}.ADM_JOBS (
    JOB_ID               DECIMAL(18,0) NOT NULL,
    JOB_NAME             VARCHAR(128) NOT NULL,
    POOL                 VARCHAR(16) DEFAULT 'DEFAULT' NOT NULL,
    JOB_TYPE             VARCHAR(16) DEFAULT 'SQL' NOT NULL,
    COMMAND              VARCHAR(20000) NOT NULL,
    INTERVAL_SECONDS     DECIMAL(9,0),
    CRON_EXPR            VARCHAR(200),
    ACTIVE               BOOLEAN DEFAULT TRUE NOT NULL,
    TIMEOUT_SECONDS      DECIMAL(9,0) DEFAULT 3600,
    OVERLAP_POLICY       VARCHAR(16) DEFAULT 'SKIP',
    MISSED_POLICY        VARCHAR(16) DEFAULT 'SKIP',
    GRACE_SECONDS        DECIMAL(9,0) DEFAULT 60,
    MAX_RETRIES          DECIMAL(3,0) DEFAULT 0,
    RETRY_DELAY_SECONDS  DECIMAL(9,0) DEFAULT 60,
    DESCRIPTION          VARCHAR(2000),
    CHANGED_AT           TIMESTAMP
);

-- A watcher: checks CONDITION_TEXT (CONDITION_TYPE QUERY: a SELECT that returns a row when the condition holds;
-- FILE: a glob below $REDENV_HOME/data/input) on its own schedule and starts TARGET_JOB_ID when it holds.
CREATE TABLE IF NOT EXISTS {{SCHEMA}}.ADM_WATCHER (
    WATCHER_ID           DECIMAL(18,0) NOT NULL,
    WATCHER_NAME         VARCHAR(128) NOT NULL,
    CONDITION_TYPE       VARCHAR(16) DEFAULT 'QUERY' NOT NULL,
    CONDITION_TEXT       VARCHAR(20000) NOT NULL,
    TARGET_JOB_ID        DECIMAL(18,0) NOT NULL,
    INTERVAL_SECONDS     DECIMAL(9,0),
    CRON_EXPR            VARCHAR(200),
    ACTIVE               BOOLEAN DEFAULT TRUE NOT NULL,
    TIMEOUT_SECONDS      DECIMAL(9,0) DEFAULT 300,
    DESCRIPTION          VARCHAR(2000),
    CHANGED_AT           TIMESTAMP
);

-- One row per run and per tick that did not start a run (STATUS SKIPPED with SKIP_REASON SUSPENDED, OVERLAP,
-- POOL_FULL, BLOCKED or MISSED). STATUS: RUNNING, OK, FAILED, TIMEOUT, INTERRUPTED, SKIPPED.
CREATE TABLE IF NOT EXISTS {{SCHEMA}}.ADM_JOB_LOG (
    RUN_ID          VARCHAR(64) NOT NULL,
    JOB_ID          DECIMAL(18,0) NOT NULL,
    JOB_NAME        VARCHAR(128),
    POOL            VARCHAR(16),
    RUN_TRIGGER     VARCHAR(16),
    SCHEDULED_AT    TIMESTAMP,
    STARTED_AT      TIMESTAMP,
    ENDED_AT        TIMESTAMP,
    STATUS          VARCHAR(16) NOT NULL,
    SKIP_REASON     VARCHAR(32),
    MESSAGE         VARCHAR(2000),
    WORKER          VARCHAR(64),
    ATTEMPT         DECIMAL(3,0)
);

CREATE TABLE IF NOT EXISTS {{SCHEMA}}.ADM_WATCHER_LOG (
    RUN_ID          VARCHAR(64) NOT NULL,
    WATCHER_ID      DECIMAL(18,0) NOT NULL,
    WATCHER_NAME    VARCHAR(128),
    SCHEDULED_AT    TIMESTAMP,
    STARTED_AT      TIMESTAMP,
    ENDED_AT        TIMESTAMP,
    STATUS          VARCHAR(16) NOT NULL,
    SKIP_REASON     VARCHAR(32),
    CONDITION_MET   BOOLEAN,
    TARGET_RUN_ID   VARCHAR(64),
    MESSAGE         VARCHAR(2000),
    WORKER          VARCHAR(64)
);

-- A watcher whose executor failed has a row here with RESET_AT NULL and is not run until `redctl we_reset_error`.
CREATE TABLE IF NOT EXISTS {{SCHEMA}}.ADM_WATCHER_EXEC_ERROR (
    WATCHER_ID      DECIMAL(18,0) NOT NULL,
    RUN_ID          VARCHAR(64),
    ERROR_AT        TIMESTAMP NOT NULL,
    ERROR_MESSAGE   VARCHAR(2000),
    RESET_AT        TIMESTAMP,
    RESET_BY        VARCHAR(128)
);

-- ERROR and ALERT messages of the schema's database processes (also in DBLS's files under log/DB/<schema>).
CREATE TABLE IF NOT EXISTS {{SCHEMA}}.LOG_MESSAGES (
    LOG_TIME        TIMESTAMP NOT NULL,
    LOG_LEVEL       VARCHAR(8) NOT NULL,
    "SOURCE"        VARCHAR(256),
    JOB_ID          DECIMAL(18,0),
    RUN_ID          VARCHAR(64),
    MESSAGE         VARCHAR(2000000)
);
