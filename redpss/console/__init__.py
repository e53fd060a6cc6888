"""The web console: the instance at a glance and the operator's actions in a browser, served by the REST API."""
