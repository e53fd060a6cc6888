-- The files LOAD jobs imported: one row per file, written in the same transaction as the file's IMPORT. A LOAD job
-- that finds a file already here (its run ended between the COMMIT and moving the file to data/archive) archives it
-- without importing it again, so each file is loaded exactly once. FILE_KEY identifies one version of the file
-- (device, inode, size, modification time): a later upload under the same name is a new file. Rows older than
-- [redctl] log_retention days are deleted by the LOAD jobs themselves.
CREATE TABLE IF NOT EXISTS REDSYS.ADM_LOAD_FILE (
    FILE_PATH       VARCHAR(2000) NOT NULL,
    FILE_KEY        VARCHAR(200) NOT NULL,
    TARGET_TABLE    VARCHAR(300) NOT NULL,
    SCHEMA_NAME     VARCHAR(128),
    JOB_ID          DECIMAL(18,0),
    RUN_ID          VARCHAR(64) NOT NULL,
    ROWS_LOADED     DECIMAL(18,0) NOT NULL,
    LOADED_AT       TIMESTAMP NOT NULL
);
