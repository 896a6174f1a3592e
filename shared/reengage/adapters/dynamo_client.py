"""One DynamoDB client for every pynamodb model of the process.

pynamodb builds a botocore session and a client per model class (and the send lock's
transactions one more): four or five DynamoDB clients in one sender, each loading the
service model again, about a quarter of a second of CPU each on a cold start. Bound to one
client, the process builds it once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pynamodb.connection import Connection
from pynamodb.models import Model


def share_client(client: Any, models: Iterable[type[Model]], connections: Iterable[Connection] = ()) -> None:
    """Make `client` the one the models' table connections (and these connections) call through."""
    for model in models:
        model._get_connection().connection._client = client
    for connection in connections:
        connection._client = client
