"""CloudWatch metrics as Embedded Metric Format log lines: no API call, no extra permission."""

from __future__ import annotations

import json
import sys
import time
from typing import Literal, TextIO

NAMESPACE = "Agentbot"
# A function found a permanent configuration error (one count per container); alarmed in
# infra/template.yaml as <BotName>-configuration-error.
CONFIGURATION_ERRORS_METRIC = "ConfigurationErrors"
MetricUnit = Literal["Count", "Percent", "None"]


def emit_metric(
    name: str, value: float, *, unit: MetricUnit, tenant: str, stream: TextIO | None = None
) -> None:
    """Write one EMF line (dimension ``Tenant``) to stdout; Lambda's log agent turns it into
    the metric ``Agentbot/<name>``."""
    record = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Tenant"]],
                    "Metrics": [{"Name": name, "Unit": unit}],
                }
            ],
        },
        "Tenant": tenant,
        name: value,
    }
    out = stream or sys.stdout
    out.write(json.dumps(record, separators=(",", ":")) + "\n")
    out.flush()
