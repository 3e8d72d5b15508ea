"""A model's request line: pre-encoded parts (a plan's weights) are spliced in as they
are, and the line reads back as the payload it stands for."""

from __future__ import annotations

import json

import pytest

from mer.domain import JsonText, encode_request


@pytest.mark.parametrize("payload", [
    {},
    {"model": "m", "input": None},
    {"weights": JsonText('{"w": [1.5, -2.0]}')},
    {"id": 3, "model": "é\"\n", "weights": JsonText("{}"), "input": {"x": [1]}},
    {"a": JsonText("[1]"), "b": JsonText('"two"'), "c": 3},
])
def test_the_line_is_the_payload_as_json(payload: dict) -> None:
    line = encode_request(payload)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    expected = {k: json.loads(v) if isinstance(v, JsonText) else v for k, v in payload.items()}
    assert json.loads(line) == expected
