-- MESSAGE_KEY: the id RED-PSS's row writer gives each row it writes (DBLS, SENDMAIL, SENDFILE), so that a batch sent
-- again after its COMMIT's answer was lost replaces its first copy instead of adding a second: each row arrives
-- once. NULL for rows written by anything else.
ALTER TABLE {{SCHEMA}}.LOG_MESSAGES ADD COLUMN IF NOT EXISTS MESSAGE_KEY VARCHAR(64) ASCII;
