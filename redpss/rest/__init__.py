"""The REST API of an instance: Starlette under gunicorn, HTTPS only, users and roles from the database."""
