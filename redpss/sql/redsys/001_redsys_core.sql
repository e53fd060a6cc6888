-- REDSYS core: the version table, the registry of application schemas and JMON's statistics tables.

CREATE SCHEMA IF NOT EXISTS REDSYS;

-- One row per applied SQL file; the highest VERSION of a COMPONENT is its current version.
-- COMPONENT is 'REDSYS' or 'APP:<schema>'.
CREATE TABLE IF NOT EXISTS REDSYS.SCHEMA_VERSION (
    COMPONENT       VARCHAR(160) NOT NULL,
    VERSION         DECIMAL(9,0) NOT NULL,
    "SCRIPT"        VARCHAR(256) NOT NULL,
    REDPSS_VERSION  VARCHAR(32),
    APPLIED_AT      TIMESTAMP
);

-- The application schemas whose ADM_* tables the ALL_* views unite. REDSYS registers itself for its own jobs.
CREATE TABLE IF NOT EXISTS REDSYS.APP_SCHEMAS (
    SCHEMA_NAME     VARCHAR(128) NOT NULL,
    DESCRIPTION     VARCHAR(2000),
    REGISTERED_AT   TIMESTAMP
);

-- Every jmon_stats_interval (60 s) one row per pool: load of SCHED's pools and JMON's dispatch lateness.
CREATE TABLE IF NOT EXISTS REDSYS.ADM_JMON_LOAD (
    LOG_TIME          TIMESTAMP NOT NULL,
    POOL              VARCHAR(16) NOT NULL,
    POOL_SIZE         DECIMAL(5,0),
    BUSY              DECIMAL(5,0),
    QUEUED            DECIMAL(9,0),
    RUNS_STARTED      DECIMAL(9,0),
    RUNS_SKIPPED      DECIMAL(9,0),
    LATENESS_P50_MS   DECIMAL(12,3),
    LATENESS_MAX_MS   DECIMAL(12,3),
    LAST_POLL_OK      TIMESTAMP,
    SUSPENDED         BOOLEAN
);

-- Every jmon_stats_interval, the runs that finished since the previous row.
CREATE TABLE IF NOT EXISTS REDSYS.ADM_JMON_JOBLOG (
    LOG_TIME        TIMESTAMP NOT NULL,
    SCHEMA_NAME     VARCHAR(128) NOT NULL,
    KIND            VARCHAR(8) NOT NULL,
    ID              DECIMAL(18,0) NOT NULL,
    NAME            VARCHAR(128),
    RUN_ID          VARCHAR(64) NOT NULL,
    STATUS          VARCHAR(16) NOT NULL,
    SCHEDULED_AT    TIMESTAMP,
    STARTED_AT      TIMESTAMP,
    ENDED_AT        TIMESTAMP,
    LATENESS_MS     DECIMAL(12,3)
);
