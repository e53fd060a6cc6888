"""SCHED: the scheduler master and its three worker pools (DEFAULT, LOADER, ACTION).

JMON hands due runs to the master over sched_service_port; the master queues them per pool, hands each to an idle
worker process (each with its own database session), enforces timeouts, replaces dead workers, retries, and writes
every run to ADM_JOB_LOG / ADM_WATCHER_LOG of the run's schema.
"""
