"""evaluations/jsonsafe.py: which numbers JSON and the database can hold, and where a value holds one
that they cannot."""

from __future__ import annotations

import json
import math
import pickle
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluations import jsonsafe


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1e400", "1e400 is too large for JSON and the database (the limit is ±1.8e308)"),
        ("-1e400", "-1e400 is too large for JSON and the database"),
        ("NaN", "NaN is not a number JSON or the database can hold"),
        ("Infinity", "Infinity is not a number JSON or the database can hold"),
        ("-Infinity", "-Infinity is not a number JSON or the database can hold"),
        ("1" + "0" * 400, "100000000000... (401 characters) is too large"),
        ("-" + "9" * 5000, "-99999999999... (5001 characters) is too large"),  # int() would refuse it
        ("2" + "0" * 308, "a 309-digit integer is too large"),  # an int (309 digits), above 1.8e308
    ],
)
def test_numbers_nothing_can_store_are_kept_as_written_and_explained(text, problem):
    value = jsonsafe.loads(f'{{"a": [1, {{"b": {text}}}]}}')
    number = value["a"][1]["b"]
    assert isinstance(number, int) or not math.isfinite(number)
    assert jsonsafe.unsafe_numbers(value) == [(("a", 1, "b"), number, jsonsafe.number_problem(number))]
    assert jsonsafe.number_problem(number).startswith(problem)
    json.dumps(value)  # such a value never crashes what handles it before the check


@pytest.mark.parametrize(
    "text", ["1e308", "-1e308", "1.7976931348623157e308", "-0.0", "5e-324", "1e-400", str(2**63), "0", "1.5"]
)
def test_numbers_at_the_edges_that_fit_are_kept(text):
    value = jsonsafe.loads(text)
    assert value == json.loads(text) and jsonsafe.unsafe_numbers(value) == []
    assert jsonsafe.number_problem(value) is None


def test_python_values_are_checked_too():
    assert jsonsafe.number_problem(float("nan")) == "NaN is not a number JSON or the database can hold"
    assert jsonsafe.number_problem(float("-inf")).startswith("-Infinity is not a number")
    assert jsonsafe.number_problem(10**400).startswith("a 401-digit integer is too large")
    assert jsonsafe.number_problem(Decimal("1E+400")).startswith("1E+400 is too large")
    assert jsonsafe.number_problem(Decimal("NaN")).startswith("NaN is not a number")
    assert jsonsafe.number_problem(Decimal("12.5")) is None
    assert jsonsafe.number_problem(True) is None and jsonsafe.number_problem("1e400") is None


def test_paths_are_written_as_people_write_them_and_the_walk_is_bounded():
    assert jsonsafe.dotted(("params", "stop", 1)) == "params.stop[1]"
    assert jsonsafe.dotted((0, "threshold")) == "[0].threshold"
    assert jsonsafe.dotted(("x",), "metadata") == "metadata.x"
    assert jsonsafe.dotted((), "field") == "field"
    many = [math.nan] * 100
    assert len(jsonsafe.unsafe_numbers(many)) == 20
    assert len(jsonsafe.unsafe_numbers(many, limit=3)) == 3
    deep: object = math.inf
    for _ in range(5000):  # deeper than Python's recursion limit: the walk does not recurse
        deep = [deep]
    assert len(jsonsafe.unsafe_numbers(deep)) == 1


def test_an_unsafe_number_survives_pickling():
    number = jsonsafe.loads("1e400")
    again = pickle.loads(pickle.dumps(number))  # noqa: S301 - our own bytes
    assert again.text == "1e400" and math.isinf(again)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
        max_leaves=20,
    )
)
def test_whatever_json_can_write_is_read_back_the_same_and_found_safe(value):
    text = json.dumps(value)
    assert jsonsafe.loads(text) == json.loads(text)
    assert jsonsafe.unsafe_numbers(jsonsafe.loads(text)) == []
