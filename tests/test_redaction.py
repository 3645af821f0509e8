"""The redaction helper (evaluations/redaction.py): which forms of a secret are masked, which values
are too short to count as secrets, and the log records masked as they are made."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote, quote_plus

import pytest

from evaluations import redaction
from evaluations.redaction import MASK, MIN_SECRET_LENGTH, Redactor, redact, secret_forms

KEY = "sk-proj-Q2x/9+zT0pLk_77aBcDeFgHiJkL"  # has "/" and "+", which encodings change


def test_a_raw_key_is_masked_wherever_it_is_and_bearer_stays():
    text = f"Authorization: Bearer {KEY}\n{{'api_key': '{KEY}'}} and again {KEY}."
    assert redact(text, [KEY]) == "Authorization: Bearer ***\n{'api_key': '***'} and again ***."


@pytest.mark.parametrize(
    "form",
    [
        quote(KEY, safe=""),  # %2F %2B
        quote(KEY, safe="").replace("%2F", "%2f").replace("%2B", "%2b"),
        quote_plus(KEY, safe=""),
        json.dumps(KEY)[1:-1].replace("/", "\\/"),  # JSON with an escaped slash
        quote(f"Bearer {KEY}", safe=""),  # an encoded header: the key's part
    ],
)
def test_percent_encoded_and_json_escaped_keys_are_masked(form):
    masked = redact(f"echo: {form}!", [KEY])
    assert MASK in masked and "Q2x" not in masked and "JkL" not in masked


@pytest.mark.parametrize("prefix", ["", "x", "xy", "Bearer ", "user:", "Authorization: Bearer "])
@pytest.mark.parametrize("urlsafe", [False, True])
def test_a_key_in_base64_is_masked_at_every_alignment(prefix, urlsafe):
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    encoded = encode(f"{prefix}{KEY}".encode()).decode()
    masked = redact(f"debug={encoded};", [KEY])
    left, mask, right = masked.removeprefix("debug=").partition(MASK)
    assert mask, masked
    # What stays: the characters that encode the prefix (each holding a bit of it), and at most the
    # one character that mixes the key's last bits with the padding, then the padding itself.
    assert left == encoded[: -(-8 * len(prefix) // 6)]
    assert len(right.removesuffix(";").rstrip("=")) <= 1


def test_a_key_cut_off_at_the_end_of_a_text_is_masked():
    assert redact(f"HTTP 401: Incorrect API key provided: {KEY[:20]}...", [KEY]) == (
        "HTTP 401: Incorrect API key provided: ***..."
    )
    assert redact(f"said: {KEY[:12]}…", [KEY]) == "said: ***…"
    assert redact(f"said: {KEY[:MIN_SECRET_LENGTH]}", [KEY]) == "said: ***"
    # The encoded forms too: base64 cut in the middle.
    cut = base64.b64encode(f"Bearer {KEY}".encode()).decode()[:30]
    masked = redact(f"b64 {cut}...", [KEY])
    assert masked.endswith("***...") and len(masked) < len(f"b64 {cut}...") - 15


def test_a_short_start_or_one_inside_a_text_is_left_alone():
    assert redact(f"starts {KEY[: MIN_SECRET_LENGTH - 1]}", [KEY]) == f"starts {KEY[: MIN_SECRET_LENGTH - 1]}"
    assert redact(f"{KEY[:12]} then more", [KEY]) == f"{KEY[:12]} then more"


def test_short_values_and_the_placeholder_key_are_no_secrets():
    text = "abc is not-needed here; 1234567 too"
    assert redact(text, ["abc", "not-needed", "1234567", "", "   "]) == text
    assert secret_forms("abc") == [] and secret_forms("not-needed") == []
    assert not Redactor(["abc", "not-needed"])
    assert redact("a 12345678 b", ["12345678"]) == "a *** b"  # MIN_SECRET_LENGTH characters count


def test_several_secrets_the_longest_first():
    short, long_ = "token-ABCDEFGH", "token-ABCDEFGH-and-more"
    assert redact(f"{long_} / {short}", [short, long_]) == "*** / ***"


def test_anything_but_text_comes_back_as_it_is_and_json_values_are_walked():
    masker = Redactor([KEY])
    assert masker(None) is None and masker("") == "" and masker(3) == 3
    value = {"reason": f"key {KEY}", KEY: [1, f"x{KEY}", {"k": KEY}], "n": 2.5}
    assert masker.value(value) == {"reason": "key ***", "***": [1, "x***", {"k": "***"}], "n": 2.5}
    assert Redactor()("anything") == "anything"


def test_every_form_listed_is_at_least_the_minimum_length():
    forms = secret_forms("abcdefgh")  # 8 characters: the base64 runs of it are 9 to 10 long
    assert forms[0] == "abcdefgh" or len(forms[0]) >= len("abcdefgh")
    assert all(len(f) >= MIN_SECRET_LENGTH for f in forms)
    assert forms == sorted(forms, key=len, reverse=True)


# --- logs ------------------------------------------------------------------------------------------


@pytest.fixture
def known(monkeypatch):
    monkeypatch.setattr(redaction, "_known", Redactor())
    redaction.install_log_masking()  # done by the app's ready(); twice is harmless
    redaction.install_log_masking()
    return redaction.remember


def test_log_records_are_masked_as_they_are_made_traceback_included(known, caplog):
    caplog.set_level(logging.INFO)
    logger = logging.getLogger("ftvp.test.redaction")
    logger.info("before: %s", KEY)  # not known yet
    known(Redactor([KEY]))
    logger.warning("calling with %s", f"Bearer {KEY}")
    try:
        raise RuntimeError(f"the server said {KEY}")
    except RuntimeError:
        logger.exception("failed")
    first, second, third = caplog.records
    assert KEY in first.getMessage()
    assert second.getMessage() == "calling with Bearer ***"
    assert KEY not in caplog.records[2].exc_text and "the server said ***" in third.exc_text
    assert caplog.text.count(KEY) == 1  # the record made before the key was known
