"""The client code the database's UDF scripts embed (pss_client.py: standard library only, never imports redpss).

A package so that the file ships with RED-PSS; `db_install` reads its text to embed it in the script bodies.
"""
