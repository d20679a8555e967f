"""Prometheus metrics of one engine instance.

The ACD's series (``callcore_acd_*``) are in :mod:`engine.acd_metrics`.
SIP message and RTP packet counts are not kept here: the UA and the media
sessions count in plain integers on their hot paths, and the composition root
registers a collector that reads those at scrape time.

Everything hangs off a registry owned by the instance (no process-wide default
registry), so two engines in one test process never mix their counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from media.rtp.stalls import CAUSES


class EngineMetrics:
    """The engine's counters and gauges, exposed at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls_active = Gauge("callcore_calls_active", "Calls in progress", registry=r)
        self.calls_total = Counter(
            "callcore_calls_total",
            "Calls finished, by outcome (answered, cancelled, rejected, failed)",
            ["outcome"],
            registry=r,
        )
        self.dtmf_digits = Counter(
            "callcore_dtmf_digits_total",
            "DTMF digits detected, by source (rfc4733, info, inband)",
            ["source"],
            registry=r,
        )
        self.sip_parse_errors = Counter(
            "callcore_sip_parse_errors_total", "SIP messages that failed to parse", registry=r
        )
        self.flow_node_visits = Counter(
            "callcore_flow_node_visits_total",
            "IVR flow nodes entered, by flow and node",
            ["flow", "node"],
            registry=r,
        )
        self.flow_calls = Counter(
            "callcore_flow_calls_total",
            "IVR flow runs finished, by entry flow and outcome (hangup, queue, transfer,"
            " voicemail, overflow, no_agents, abandoned, callback, caller_hangup, shutdown, error,"
            " no_route, no_flows)",
            ["flow", "outcome"],
            registry=r,
        )
        self.tick_lateness = Histogram(
            "callcore_media_tick_lateness_seconds",
            "How late the shared media clock fired",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
            registry=r,
        )
        self.late_ticks = Counter(
            "callcore_media_late_ticks_total",
            "Media clock ticks more than 5 ms late, by cause: busy (the loop's thread was"
            " running: the engine's own work), queued (it waited for a CPU another task held),"
            " off_cpu (neither: the hypervisor ran another guest on the vCPU (steal), or the"
            " thread blocked)",
            ["cause"],
            registry=r,
        )
        for cause in CAUSES:
            self.late_ticks.labels(cause=cause)
        self.tick_work = Histogram(
            "callcore_media_tick_work_seconds",
            "How long each media clock lane tick's work took (sends, received RTP, play-out)",
            buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02),
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
