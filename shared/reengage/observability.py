"""Logger and metrics for the handlers, built once per cold start.

The layer's own modules log through the standard `reengage` logger; its handlers get
the Powertools JSON formatter here, so every line is structured and carries the
Lambda context (request id, cold start) and the correlation keys the handler adds.
"""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

METRICS_NAMESPACE = "Reengage"

logging.getLogger("reengage")
logger = Logger()
metrics = Metrics(namespace=METRICS_NAMESPACE)
copy_config_to_registered_loggers(source_logger=logger, include={"reengage"})
