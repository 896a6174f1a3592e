"""Secrets Manager and SSM Parameter Store through Powertools Parameters (cached 5 minutes).

Imported only where a secret or a parameter is configured: Powertools Parameters imports boto3.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from reengage.domain.knowledge import KnowledgeBase, KnowledgeBaseError, load_knowledge_file

if TYPE_CHECKING:  # only SyncFunction and the CLI read a field mapping: the others' cold starts skip it
    from reengage.domain.airtable_mapping import FieldMapping

SSM_PREFIX = "ssm:"
CACHE_SECONDS = 300


def secret_text(secret_name: str, field: str) -> str:
    """A secret (a plain string, or JSON with `field`)."""
    from aws_lambda_powertools.utilities import parameters

    raw = parameters.get_secret(secret_name, max_age=CACHE_SECONDS)
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(data, dict) and isinstance(data.get(field), str):
        return str(data[field]).strip()
    return text.strip()


def load_knowledge_base(location: str) -> KnowledgeBase:
    """The knowledge base at `location`: empty (bundled sample), a file path, or `ssm:/parameter/name`."""
    if not location.startswith(SSM_PREFIX):
        return load_knowledge_file(location)
    from aws_lambda_powertools.utilities import parameters

    name = location[len(SSM_PREFIX) :]
    try:
        data = parameters.get_parameter(name, transform="json", max_age=CACHE_SECONDS)
    except parameters.exceptions.GetParameterError as error:
        raise KnowledgeBaseError(f"SSM parameter {name}: {error}") from error
    except parameters.exceptions.TransformParameterError as error:
        raise KnowledgeBaseError(f"SSM parameter {name}: not JSON") from error
    return KnowledgeBase.from_dict(data, f"SSM parameter {name}")


def load_field_mapping(location: str) -> FieldMapping:
    """The CRM field mapping at `location`: empty (the seed's field names), a file path, or `ssm:/name`."""
    from reengage.domain.airtable_mapping import FieldMapping, MappingError

    if not location:
        return FieldMapping.from_dict({})
    if not location.startswith(SSM_PREFIX):
        try:
            with open(location, encoding="utf-8") as handle:
                return FieldMapping.from_json(handle.read(), f"field mapping {location}")
        except OSError as error:
            raise MappingError(f"field mapping {location}: {error.strerror}") from error
    from aws_lambda_powertools.utilities import parameters

    name = location[len(SSM_PREFIX) :]
    try:
        text = parameters.get_parameter(name, max_age=CACHE_SECONDS)
    except parameters.exceptions.GetParameterError as error:
        raise MappingError(f"field mapping in SSM parameter {name}: {error}") from error
    return FieldMapping.from_json(str(text), f"field mapping in SSM parameter {name}")
