"""JMON, the job monitor: reads job and watcher definitions, decides when each is due, and hands due runs to SCHED.

``schedule`` is the pure scheduling core (no I/O, time passed in), ``timing`` its interval and cron arithmetic;
``service`` is the daemon around them.
"""
