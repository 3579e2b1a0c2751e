"""Validate wire events against the official ``openai`` package's pydantic models.

The official models accept unknown keys silently (``extra="allow"``) and coerce types, so a
misspelled key would pass them and then be ignored by the real server. These helpers
validate through a discriminated union on ``type`` in strict mode, then walk the validated
model and fail on any key the official model does not declare, at any nesting level.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Union, get_args

import pydantic
from openai.types.beta.realtime import realtime_client_event as beta_client
from openai.types.beta.realtime import realtime_server_event as beta_server
from openai.types.realtime import realtime_client_event as ga_client
from openai.types.realtime import realtime_server_event as ga_server

_UNIONS: dict[tuple[str, str], Any] = {
    ("client", "ga"): ga_client.RealtimeClientEvent,
    ("server", "ga"): ga_server.RealtimeServerEvent,
    ("client", "beta"): beta_client.RealtimeClientEvent,
    ("server", "beta"): beta_server.RealtimeServerEvent,
}


@functools.cache
def _adapter(side: str, api: str) -> pydantic.TypeAdapter[Any]:
    try:
        official = _UNIONS[(side, api)]
    except KeyError:
        raise AssertionError(f"unknown api flavour {api!r}: expected 'ga' or 'beta'") from None
    union, *_ = get_args(official)  # drop the SDK's own PropertyInfo annotation
    members = get_args(union)
    for member in members:
        member.model_rebuild()  # the SDK defers building its models
    # a union of the SDK's members, built at run time: no static type to check it against
    discriminated = Annotated[Union[members], pydantic.Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
    return pydantic.TypeAdapter(discriminated)


def _undeclared_keys(value: Any, path: str) -> list[str]:
    """Paths of keys kept as extras anywhere inside a validated value."""
    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        found += [f"{path}.{key}" for key in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += _undeclared_keys(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found += _undeclared_keys(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _undeclared_keys(item, f"{path}.{key}")
    return found


def _validate(side: str, payload: dict[str, Any], api: str) -> None:
    if not isinstance(payload, dict):
        raise AssertionError(f"{side} event must be a JSON object, got {type(payload).__name__}")
    try:
        model = _adapter(side, api).validate_python(payload, strict=True)
    except pydantic.ValidationError as exc:
        raise AssertionError(
            f"{api} {side} event {payload.get('type')!r} does not match the official model:\n{exc}"
        ) from None
    extra = _undeclared_keys(model, "$")
    if extra:
        raise AssertionError(
            f"{api} {side} event {payload.get('type')!r} has keys the official model "
            f"({type(model).__name__}) does not declare: {', '.join(extra)}"
        )


def validate_client_event(payload: dict[str, Any], api: str) -> None:
    """Assert that ``payload`` is a client event the official ``api`` models fully declare."""
    _validate("client", payload, api)


def validate_server_event(payload: dict[str, Any], api: str) -> None:
    """Assert that ``payload`` is a server event the official ``api`` models fully declare."""
    _validate("server", payload, api)
