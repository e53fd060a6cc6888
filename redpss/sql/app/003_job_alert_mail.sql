-- ALERT_MAIL: who is mailed (addresses separated by commas, through SENDMAIL) when a run of the job fails for good,
-- after its last retry; NULL: nobody. A failure that a retry fixed mails nobody.
ALTER TABLE {{SCHEMA}}.ADM_JOBS ADD COLUMN IF NOT EXISTS ALERT_MAIL VARCHAR(2000) UTF8;
