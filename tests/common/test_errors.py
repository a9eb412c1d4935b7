"""Every error class, shared or service-specific, has both outside forms."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json

import pytest
from tinychat_common.errors import TinyChatError
from tinychat_common.events import Error

# Import every service's errors module that exists, so its subclasses join the walk.
for module in (
    "tinychat_chat.errors",
    "tinychat_gateway.errors",
    "tinychat_image.errors",
    "tinychat_rlm.errors",
):
    with contextlib.suppress(ImportError):
        importlib.import_module(module)


def all_subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(all_subclasses(sub))
    return found


ERROR_CLASSES = [TinyChatError, *all_subclasses(TinyChatError)]
PLAIN_CLASSES = [cls for cls in ERROR_CLASSES if cls.__init__ is TinyChatError.__init__]


def make_error(cls: type[TinyChatError]) -> TinyChatError:
    """An instance, with sample values for whatever its constructor requires."""
    arguments: dict[str, object] = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or parameter.default is not inspect.Parameter.empty:
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = str(parameter.annotation)
        arguments[name] = 3 if ("int" in annotation or "float" in annotation) else "chat"
    return cls(**arguments)


def test_the_walk_reaches_the_chat_service_errors():
    names = {cls.__name__ for cls in ERROR_CLASSES}
    assert {"UpstreamStalled", "InvalidImage", "UnknownModel", "MessageTooLong"} <= names


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_every_error_maps_to_json_and_event_forms(cls):
    error = make_error(cls)
    assert 400 <= error.status <= 599
    assert error.code and error.code == error.code.lower() and " " not in error.code
    assert error.message and "Traceback" not in error.message

    assert error.to_json() == {"error": error.code, "detail": error.message}
    response = error.to_response()
    assert response.status == error.status
    assert json.loads(response.body) == {"error": error.code, "detail": error.message}

    event = error.to_event()
    assert event == Error(error.message, error.code)
    assert event.as_dict() == {"error": error.message, "code": error.code}


@pytest.mark.parametrize("cls", PLAIN_CLASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_a_custom_message_and_code_carry_through_both_forms(cls):
    error = cls("Something specific.", code="specific_code")
    assert error.to_json() == {"error": "specific_code", "detail": "Something specific."}
    assert error.to_event().as_dict() == {"error": "Something specific.", "code": "specific_code"}
