"""Secrets out of text: `redact(text, secrets)` masks every secret in a text before it is stored,
shown or logged. Pure (no Django): `services/secrets.py` knows which secrets ftvp is configured with.

A secret is masked as "***" in each of the forms a remote answer can carry it in:

- as it is, which covers `Bearer <key>` (the key goes, "Bearer " stays), `?key=<key>` and a key
  inside JSON or a quoted header;
- percent-encoded (`quote`, either case of hex digits, and `quote_plus`), as a URL or a form carries it;
- JSON-escaped (`"` and `\\` escaped, `/` as `\\/`);
- base64 (standard and URL-safe alphabets), at any of the three alignments a secret can have inside a
  longer base64 text, so `Basic base64(user:key)` and a base64-encoded `Authorization: Bearer <key>`
  are covered too: the characters that encode only the secret's bits are masked (the one character
  at either end that mixes a few of its bits with the neighbours' may stay);
- cut off: a text that ends (before a trailing "..." or "…" an ellipsis adds) with the first
  MIN_SECRET_LENGTH or more characters of one of those forms, as a truncated error message does.

Not covered: other encodings (hex, upper- or lower-cased copies, a secret split across lines or
interleaved with other text).

A secret shorter than MIN_SECRET_LENGTH characters is ignored, and so is the placeholder key sent to
servers that need none (NOT_SECRETS): masking every "abc" or "not-needed" in the outputs would hide the
answers and protect nothing (a real API key or webhook token is far longer). The base64 and
percent-encoded forms of a secret are held to the same minimum.

Logs: `install_log_masking` (called by the app's ready()) masks, in every log record as it is made,
the secrets the process last looked up (`remember`), whichever handler writes it (Celery's too).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values are not treated as secrets (see the module's docstring).
MIN_SECRET_LENGTH = 8
# Values that are configured like keys but are no secret: the placeholder sent to self-hosted servers
# that accept any key (providers/openai_compat.PLACEHOLDER_API_KEY).
NOT_SECRETS = frozenset({"not-needed"})
_ELLIPSES = ("...", "…")


def _base64_runs(raw: bytes) -> list[str]:
    """The base64 characters that encode `raw` alone, at each alignment (0, 1 or 2 bytes before it)
    inside a longer base64 text, in the standard and the URL-safe alphabet."""
    runs = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        start = -(-8 * shift // 6)  # the first character holding no bit of the bytes before
        end = (8 * (shift + len(raw))) // 6  # the last one holding no bit of the bytes after
        run = encoded[start:end]
        runs += [run, run.replace("+", "-").replace("/", "_")]
    return runs


def secret_forms(secret: str) -> list[str]:
    """The forms of `secret` that `redact` masks, longest first; [] for a value that is no secret
    (shorter than MIN_SECRET_LENGTH, or in NOT_SECRETS)."""
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH or secret in NOT_SECRETS:
        return []
    encoded = quote(secret, safe="")
    lower_hex = "%".join(  # %2f as well as %2F
        part if i == 0 else part[:2].lower() + part[2:] for i, part in enumerate(encoded.split("%"))
    )
    escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
    forms = {
        secret,
        encoded,
        lower_hex,
        quote_plus(secret, safe=""),
        escaped,
        escaped.replace("/", "\\/"),
        *_base64_runs(secret.encode("utf-8")),
    }
    return sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH), key=len, reverse=True)


class Redactor:
    """Masks a fixed set of secrets (in every form `secret_forms` lists) in texts; cheap to call."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: dict[str, None] = {}
        for secret in secrets:
            for form in secret_forms(secret):
                forms.setdefault(form, None)
        self.forms: tuple[str, ...] = tuple(sorted(forms, key=len, reverse=True))
        # For cut-off secrets: the forms by their first MIN_SECRET_LENGTH characters, found at every
        # position (a lookahead, so overlapping starts are all seen) in one pass over a text's tail.
        self._by_head: dict[str, list[str]] = {}
        for form in self.forms:
            self._by_head.setdefault(form[:MIN_SECRET_LENGTH], []).append(form)
        heads = "|".join(re.escape(h) for h in self._by_head)
        self._heads = re.compile(f"(?=({heads}))") if heads else None
        self._longest = len(self.forms[0]) if self.forms else 0

    def __bool__(self) -> bool:
        return bool(self.forms)

    def __call__(self, text):
        """`text` with every secret masked; anything but a non-empty string comes back as it is."""
        if not self.forms or not isinstance(text, str) or not text:
            return text
        for form in self.forms:
            if form in text:
                text = text.replace(form, MASK)
        return self._cut_tail(text)

    def _cut_tail(self, text: str) -> str:
        """Mask the start of a secret that the text ends with (a cut-off message), ellipsis kept."""
        end = len(text)
        for ellipsis in _ELLIPSES:
            if text.endswith(ellipsis):
                end -= len(ellipsis)
                break
        start = max(0, end - self._longest + 1)  # a whole form was masked already
        for found in self._heads.finditer(text, start, end):
            at, rest = found.start(), text[found.start() : end]
            if any(form.startswith(rest) for form in self._by_head[found.group(1)]):
                return text[:at] + MASK + text[end:]
        return text

    def value(self, value):
        """`value` (JSON-like: dicts, lists, strings) with every string in it masked, keys included."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with each of `secrets` masked as "***" in every form `secret_forms` lists."""
    return Redactor(secrets)(text)


# --- logs ----------------------------------------------------------------------------------------------

# The secrets this process has looked up (services/secrets.py remembers them whenever it does: before
# any model call, judge call or alert delivery); log records are masked with them.
_known = Redactor()
_installed = False


def remember(redactor: Redactor) -> None:
    """Make `redactor`'s secrets the ones log records are masked with from now on."""
    global _known
    _known = redactor


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask the secrets this process knows (`remember`) in a record's message and traceback."""
    redactor = _known
    if not redactor:
        return record
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: the handler reports it as usual
        return record
    masked = redactor(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:  # set only when masked: else handlers format it
        trace = logging.Formatter().formatException(record.exc_info)
        masked_trace = redactor(trace)
        if masked_trace != trace:
            record.exc_text = masked_trace
    elif record.exc_text:
        record.exc_text = redactor(record.exc_text)
    if record.stack_info:
        record.stack_info = redactor(record.stack_info)
    return record


def install_log_masking() -> None:
    """Mask known secrets in every log record as it is made (`logging.setLogRecordFactory`), so every
    handler gets them masked: Django's, Celery's (which replaces the root logger's handlers in a
    worker) and any other. The second line: nothing should log a secret in the first place."""
    global _installed
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        return mask_record(make(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True
