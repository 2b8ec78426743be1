"""Prometheus metrics of the env server, in a registry of their own (several apps may live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Steps of chat envs run from tens of microseconds (echo) to seconds (sandboxed code), hence the wide buckets.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServerMetrics:
    """Active sessions, queue depth, steps, latencies and errors by kind."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions_active = Gauge("resrl_env_sessions_active", "Open sessions", ["env_id"], registry=r)
        self.sessions_waiting = Gauge("resrl_env_sessions_waiting", "Session requests queued for capacity", registry=r)
        self.sessions_total = Counter("resrl_env_sessions", "Sessions created", ["env_id"], registry=r)
        self.sessions_reaped = Counter("resrl_env_sessions_reaped", "Idle sessions reaped", registry=r)
        self.steps_in_flight = Gauge("resrl_env_steps_in_flight", "Steps running now", registry=r)
        self.steps = Counter("resrl_env_steps", "Steps taken", ["env_id"], registry=r)
        self.step_seconds = Histogram(
            "resrl_env_step_seconds", "Env step latency", ["env_id"], buckets=_BUCKETS, registry=r
        )
        self.reset_seconds = Histogram(
            "resrl_env_reset_seconds", "Env construction + reset latency", ["env_id"], buckets=_BUCKETS, registry=r
        )
        self.errors = Counter("resrl_env_errors", "Errors returned, by kind", ["kind"], registry=r)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
