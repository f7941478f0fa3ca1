"""Request counters and latencies in Prometheus' text format, named as TF Serving names them.

`tf_t2i.serve --monitoring_config_file=serving/monitoring.config --rest_port=8501`
exposes them at the config's path (default /monitoring/prometheus/metrics), like
`tensorflow_model_server` does with the same file.
"""

import bisect
import re
import threading
from typing import Dict, Optional, Tuple

DEFAULT_PATH = "/monitoring/prometheus/metrics"
# Latency bucket bounds in microseconds (TF Serving's request_latency is in us).
_BUCKETS_US = (1e3, 2.5e3, 5e3, 1e4, 2.5e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7)


def parse_monitoring_config(text: str) -> Tuple[bool, str]:
    """`prometheus_config { enable: true path: "..." }` -> (enabled, path).

    MonitoringConfig is not in the tensorflow-serving-api wheel, so this reads the two
    fields by pattern.

    Raises:
      ValueError: no prometheus_config block.
    """
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    block = re.search(r"prometheus_config\s*\{([^}]*)\}", text)
    if block is None:
        raise ValueError("no prometheus_config { ... } block")
    enable = re.search(r"enable\s*:\s*(\w+)", block.group(1))
    path = re.search(r'path\s*:\s*"([^"]*)"', block.group(1))
    return (enable is not None and enable.group(1).lower() == "true",
            path.group(1) if path and path.group(1) else DEFAULT_PATH)


class RequestMetrics:
    """Thread-safe counts and latency histograms per (model, API, entrypoint, status)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Dict[Tuple[str, str], int] = {}
        self._latency: Dict[Tuple[str, str, str], list] = {}

    def record(self, model: str, api: str, entrypoint: str, status: str,
               seconds: Optional[float]) -> None:
        with self._lock:
            key = (model, status)
            self._counts[key] = self._counts.get(key, 0) + 1
            if seconds is None:
                return
            micros = seconds * 1e6
            buckets, total = self._latency.setdefault(
                (model, api, entrypoint), [[0] * (len(_BUCKETS_US) + 1), [0.0, 0]])
            buckets[bisect.bisect_left(_BUCKETS_US, micros)] += 1
            total[0] += micros
            total[1] += 1

    def prometheus_text(self) -> str:
        lines = ["# TYPE :tensorflow:serving:request_count counter"]
        with self._lock:
            for (model, status), count in sorted(self._counts.items()):
                lines.append(f':tensorflow:serving:request_count{{model_name="{model}",'
                             f'status="{status}"}} {count}')
            lines.append("# TYPE :tensorflow:serving:request_latency histogram")
            for (model, api, entrypoint), (buckets, total) in sorted(self._latency.items()):
                labels = f'model_name="{model}",API="{api}",entrypoint="{entrypoint}"'
                cumulative = 0
                for bound, count in zip(list(_BUCKETS_US) + ["+Inf"], buckets):
                    cumulative += count
                    le = bound if bound == "+Inf" else f"{bound:g}"
                    lines.append(f':tensorflow:serving:request_latency_bucket{{{labels},'
                                 f'le="{le}"}} {cumulative}')
                lines.append(f":tensorflow:serving:request_latency_sum{{{labels}}} {total[0]:g}")
                lines.append(f":tensorflow:serving:request_latency_count{{{labels}}} {total[1]}")
        return "\n".join(lines) + "\n"
