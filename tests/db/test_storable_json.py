"""storable_json: NUL and lone surrogates anywhere in a JSON document become U+FFFD; a
document without them (the common case: every run's snapshot and most results) comes
back as it is, found by one C-speed encoding instead of a walk."""

from __future__ import annotations

from mer.db.run_records import storable_json


def test_a_clean_document_is_returned_as_it_is() -> None:
    doc = {"a": [1, 2.5, None, True], "é": "ü", "b": {"c": "text"}}
    assert storable_json(doc) is doc
    # Look-alikes are walked, and kept whole: a character beyond the BMP (escaped as a
    # surrogate pair) and a backslash before "u0000".
    look_alikes = {"e": "😀", "b": "back\\u0000slash"}
    assert storable_json(look_alikes) == look_alikes


def test_nul_and_lone_surrogates_are_replaced_at_any_depth_and_in_keys() -> None:
    doc = {"a": ["x\x00y", {"\ud800k": "\udfff"}], "\x00": 1, "pair": "😀"}
    assert storable_json(doc) == {"a": ["x\ufffdy", {"\ufffdk": "\ufffd"}], "\ufffd": 1, "pair": "😀"}
    assert doc["a"][0] == "x\x00y"  # the caller's document is left alone
    assert storable_json(["\x00"]) == ["\ufffd"] and storable_json("a\x00") == "a\ufffd"
