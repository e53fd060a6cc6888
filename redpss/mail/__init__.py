"""SENDMAIL: mails from the database, spooled durably, relayed to the SMTP server of the config (docs/mail.md)."""
