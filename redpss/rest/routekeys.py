"""The `{schema}/{id}` part of the job routes, shared by the API and the console.

Starlette's own `int` convertor matches any run of digits and calls int() on it, which raises past 4,300 digits
(Python's limit on converting long numbers): a request for such a path, before any login, was answered 500 with a
traceback in the log. Job ids are DECIMAL(18,0), so the `job_id` convertor matches at most 19 digits (one more than
an id has, so that 10**18 still reaches the handlers' "not a SCHEMA.ID" 400); a longer number is no route: 404.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

MAX_ID = 10**18 - 1  # ids are DECIMAL(18,0)


class JobIdConvertor(Convertor[int]):
    regex = "[0-9]{1,19}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("job_id", JobIdConvertor())
JOB_KEY = "{schema}/{id:job_id}"
