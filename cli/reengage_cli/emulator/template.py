"""Reading template.yaml the way CloudFormation does, enough to build its stateful resources locally.

The YAML (with CloudFormation's short-form tags) is read by cfn-lint's decoder; the
`Resolver` evaluates the intrinsic functions the stateful resources use. The local
emulator and the tests create tables and queues from the template itself, so local runs
cannot drift from what `sam deploy` creates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml


class TemplateError(ValueError):
    """The template uses something this reader cannot resolve."""


def load_template(path: Path) -> dict[str, Any]:
    try:
        document = cfn_yaml.load(str(path))
    except Exception as error:  # noqa: BLE001 - the decoder raises its own types for every YAML problem
        raise TemplateError(f"{path}: {error}") from error
    if not isinstance(document, dict) or "Resources" not in document:
        raise TemplateError(f"{path} is not a CloudFormation template")
    return document


@dataclass
class Resolver:
    """Evaluates intrinsic functions against parameter values and already-created resources."""

    template: dict[str, Any]
    parameters: dict[str, str]
    refs: dict[str, str] = field(default_factory=dict)  # logical id -> physical id (Ref)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)  # (logical id, attr) -> value
    pseudo: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_template(cls, template: dict[str, Any], overrides: Mapping[str, str], region: str) -> Resolver:
        parameters = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
        unknown = set(overrides) - set(parameters)
        if unknown:
            raise TemplateError(f"unknown template parameters: {', '.join(sorted(unknown))}")
        parameters.update(overrides)
        pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": "123456789012",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "reengage-local",
            "AWS::NoValue": "",
        }
        return cls(template, parameters, pseudo=pseudo)

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions", {})
        if name not in conditions:
            raise TemplateError(f"unknown condition {name}")
        return bool(self.resolve(conditions[name]))

    def _ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.refs:
            return self.refs[name]
        raise TemplateError(f"cannot resolve Ref {name} (not a parameter or a created resource)")

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                logical, attribute = name.split(".", 1)
                return self._get_att(logical, attribute)
            return str(self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def _get_att(self, logical: str, attribute: str) -> str:
        try:
            return self.attributes[(logical, attribute)]
        except KeyError:
            raise TemplateError(f"cannot resolve GetAtt {logical}.{attribute}") from None

    def resolve(self, value: Any) -> Any:  # noqa: C901 - one branch per intrinsic
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Condition":
                return self.condition(argument)
            if key == "Fn::GetAtt":
                return self._get_att(argument[0], argument[1])
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::If":
                name, if_true, if_false = argument
                return self.resolve(if_true if self.condition(name) else if_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(argument[0])
            if key == "Fn::And":
                return all(self.resolve(item) for item in argument)
            if key == "Fn::Or":
                return any(self.resolve(item) for item in argument)
            if key == "Fn::Join":
                separator, items = argument
                return separator.join(str(item) for item in self.resolve(items))
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported by the local reader")
        return {key: self.resolve(item) for key, item in value.items()}


def json_parameter(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
