"""Hostile uploads on every path (the upload page, the API, the CLI): each is refused with a message
that names the file (and the line or field where it applies) and says what to do; nothing is written
and the version already stored is left as it was."""

from __future__ import annotations

import html
import io
import re
import struct
import zipfile
from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from evaluations.importers import SourceFile
from evaluations.models import AuditEvent, Case, Suite, SuiteVersion
from evaluations.services.suites import suite_import
from evaluations.services.tokens import api_token_create
from tests.factories import UserFactory

LIMIT = 64 * 1024  # FTVP_MAX_UPLOAD_BYTES in these tests (the deep JSON payloads are about 20 kB)
SUITE = "hostile-target"
GOOD = (
    b'{"id": "g1", "input": "2+2?", "expected": "4"}\n'
    b'{"id": "g2", "input": "capital of France?", "expected": "Paris"}\n'
)
# A message says what to do: one of these verbs follows the problem.
REMEDIES = ("upload", "save", "remove", "flatten", "write", "zip", "split", "give", "use", "unpack")
# What a message must never show: a traceback, an exception's repr, an object's address.
LEAKS = re.compile(r"Traceback|File \"/|\w+(Error|Exception)\(|<class '|object at 0x|\\x00")

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Payload:
    files: tuple[tuple[str, bytes], ...]
    where: tuple[str, ...] = ()  # besides the file name: e.g. "line 2"


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _lying_zip(name: str, data: bytes, claimed: int) -> bytes:
    """A zip whose headers (local and central) say the member unpacks to `claimed` bytes."""
    raw = bytearray(_zip({name: data}))
    local = raw.find(b"PK\x03\x04")
    struct.pack_into("<I", raw, local + 22, claimed)
    central = raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, central + 24, claimed)
    return bytes(raw)


def _jsonl_lines(n: int) -> bytes:
    return b"".join(
        b'{"id": "c%d", "input": "question %d", "expected": "answer"}\n' % (i, i) for i in range(n)
    )


BILLION_LAUGHS = b"""\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
cases:
  - input: *e
    expected: x
"""
DEEP = 10_000
DEEP_VALUE = "[" * DEEP + "]" * DEEP

PAYLOADS = {
    "over-the-size-limit": Payload((("big.jsonl", _jsonl_lines(1500)),)),
    "zip-bomb": Payload((("bomb.zip", _zip({"cases.jsonl": _jsonl_lines(1) + b" " * 2_000_000})),)),
    "zip-header-lies-about-size": Payload(
        (("liar.zip", _lying_zip("cases.jsonl", _jsonl_lines(1) + b" " * 200_000, claimed=100)),)
    ),
    "yaml-alias-bomb": Payload((("laughs.yaml", BILLION_LAUGHS),), ("line 2",)),
    "yaml-python-object-apply": Payload(
        (
            (
                "apply.yaml",
                b"cases:\n  - input: !!python/object/apply:os.system ['echo pwned']\n    expected: x\n",
            ),
        ),
        ("line 2",),
    ),
    "yaml-python-name": Payload(
        (("name.yaml", b"cases:\n  - input: !!python/name:os.system\n    expected: x\n"),), ("line 2",)
    ),
    "yaml-python-object-new": Payload(
        (
            (
                "new.yaml",
                b"cases:\n  - input: !!python/object/new:subprocess.Popen [['id']]\n    expected: x\n",
            ),
        ),
        ("line 2",),
    ),
    "yaml-binary-with-nul": Payload(
        (("binary.yaml", b"cases:\n  - input: !!binary AAAA\n    expected: x\n"),), ("line 1", "NUL")
    ),
    "nul-in-csv": Payload((("nul.csv", b"input,expected\nhel\x00lo,world\n"),), ("line 2", "NUL")),
    "nul-in-jsonl": Payload(
        (("nul.jsonl", GOOD + b'{"input": "a\\u0000b", "expected": "x"}\n'),), ("line 3", "NUL")
    ),
    "raw-nul-in-jsonl": Payload(
        (("rawnul.jsonl", GOOD + b'{"input": "a\x00b", "expected": "x"}\n'),), ("line 3",)
    ),
    "nul-in-yaml": Payload((("nul.yaml", b"cases:\n  - input: a\x00b\n    expected: x\n"),), ("line 2",)),
    "invalid-utf8-csv": Payload((("latin1.csv", b"input,expected\ncaf\xe9,x\n"),), ("line 2", "UTF-8")),
    "invalid-utf8-jsonl": Payload(
        (("latin1.jsonl", GOOD + b'{"input": "caf\xe9", "expected": "x"}\n'),), ("line 3", "UTF-8")
    ),
    "invalid-utf8-yaml": Payload(
        (("latin1.yaml", b"cases:\n  - input: caf\xe9\n    expected: x\n"),), ("UTF-8",)
    ),
    "invalid-utf8-json": Payload((("latin1.json", b'[{"input": "caf\xe9", "expected": "x"}]'),), ("UTF-8",)),
    "deep-json-in-jsonl": Payload(
        (
            (
                "deep.jsonl",
                GOOD + b'{"input": "x", "expected": "y", "metadata": {"a": ' + DEEP_VALUE.encode() + b"}}\n",
            ),
        ),
        ("line 3", "deep"),
    ),
    "deep-json-file": Payload(
        (
            (
                "deep.json",
                b'[{"input": "x", "expected": "y", "metadata": {"a": ' + DEEP_VALUE.encode() + b"}}]",
            ),
        ),
        ("deep",),
    ),
}


# --- the three paths: each returns the refusal's message ---------------------------------------------


def _browser(client, tmp_path, payload: Payload) -> str:
    editor = UserFactory(username="hostile-editor", roles=["editor"])
    client.force_login(editor)
    uploads = [SimpleUploadedFile(name, data) for name, data in payload.files]
    response = client.post(reverse("evaluations:suite-upload"), {"name": SUITE, "file": uploads})
    assert response.status_code in (200, 400, 413), response.status_code
    page = response.content.decode()
    boxes = re.findall(r'<div class="error-box".*?</div>|<ul class="errorlist[^>]*>.*?</ul>', page, re.S)
    assert boxes, f"no error shown on the page:\n{page[:3000]}"
    return html.unescape(re.sub(r"<[^>]+>", " ", " ".join(boxes)))


def _api(client, tmp_path, payload: Payload) -> str:
    token = api_token_create(user=UserFactory(username="hostile-api", roles=["editor"]), name="CI")[1]
    uploads = [SimpleUploadedFile(name, data) for name, data in payload.files]
    response = client.post(
        "/api/v1/suites/", {"name": SUITE, "file": uploads}, HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code in (400, 413), (response.status_code, response.content[:2000])
    body = response.json()
    assert isinstance(body.get("detail"), str) and body["detail"]
    return "\n".join([body["detail"], *body.get("errors", [])])


def _cli(client, tmp_path, payload: Payload) -> str:
    paths = []
    for name, data in payload.files:
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(str(path))
    with pytest.raises(CommandError) as caught:
        call_command("import_suite", *paths, "--name", SUITE)
    assert caught.value.returncode != 0
    return str(caught.value)


PATHS = {"browser": _browser, "api": _api, "cli": _cli}


def _stored() -> dict[str, object]:
    return {
        "suites": list(Suite.objects.values_list("pk", "name")),
        "versions": list(SuiteVersion.objects.values_list("pk", "number", "source_name")),
        "cases": list(
            Case.objects.order_by("pk").values_list("pk", "version_id", "key", "input", "expected")
        ),
        "uploads": AuditEvent.objects.filter(action="suite.upload").count(),
    }


@pytest.mark.parametrize("payload_id", list(PAYLOADS))
@pytest.mark.parametrize("path", list(PATHS))
def test_a_hostile_upload_is_refused_with_a_clear_message_and_nothing_is_written(
    path, payload_id, client, tmp_path, settings
):
    settings.FTVP_MAX_UPLOAD_BYTES = LIMIT
    good = suite_import(name=SUITE, files=[SourceFile("good.jsonl", GOOD)])
    before = _stored()
    payload = PAYLOADS[payload_id]

    message = PATHS[path](client, tmp_path, payload)

    assert _stored() == before, "a refused upload wrote something"
    good.refresh_from_db()
    assert list(good.cases.order_by("position").values_list("key", "input", "expected")) == [
        ("g1", "2+2?", "4"),
        ("g2", "capital of France?", "Paris"),
    ]
    names = [name for name, _ in payload.files]
    assert any(name in message for name in names), f"the message does not name the file: {message!r}"
    for where in payload.where:
        assert where.lower() in message.lower(), f"{where!r} missing from {message!r}"
    assert any(verb in message.lower() for verb in REMEDIES), (
        f"the message does not say what to do: {message!r}"
    )
    assert not LEAKS.search(message), f"the message leaks internals: {message!r}"


def test_the_zip_checks_read_no_more_than_the_limit(settings):
    """The lying zip's member is read only up to what its header claims (then fails its CRC): the
    check never trusts the header and never unpacks past the limit."""
    from evaluations.importers import SuiteFormatError
    from evaluations.importers.sources import read_sources

    settings.FTVP_MAX_UPLOAD_BYTES = LIMIT
    with pytest.raises(SuiteFormatError) as caught:
        read_sources([SourceFile("bomb.zip", PAYLOADS["zip-bomb"].files[0][1])], max_bytes=LIMIT)
    assert f"unpacks to more than {LIMIT:,} bytes" in str(caught.value)
    # The same member within the limit is read: the refusal is about size, not the zip itself.
    small = _zip({"cases.jsonl": GOOD})
    assert [c["key"] for c in read_sources([SourceFile("ok.zip", small)], max_bytes=LIMIT).cases] == [
        "g1",
        "g2",
    ]


def test_a_good_upload_still_passes_every_path(client, tmp_path, settings):
    """The matrix's refusals are about the payloads: the same paths take a good file."""
    settings.FTVP_MAX_UPLOAD_BYTES = LIMIT
    editor = UserFactory(username="hostile-editor", roles=["editor"])
    client.force_login(editor)
    response = client.post(
        reverse("evaluations:suite-upload"), {"name": SUITE, "file": SimpleUploadedFile("good.jsonl", GOOD)}
    )
    assert response.status_code == 302
    client.logout()
    token = api_token_create(user=editor, name="CI")[1]
    response = client.post(
        "/api/v1/suites/",
        {"name": SUITE, "file": SimpleUploadedFile("good.jsonl", GOOD)},
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 201, response.content
    (tmp_path / "good.jsonl").write_bytes(GOOD)
    call_command("import_suite", str(tmp_path / "good.jsonl"), "--name", SUITE, stdout=io.StringIO())
    assert list(
        Suite.objects.get(name=SUITE).versions.values_list("number", flat=True).order_by("number")
    ) == [1, 2, 3]
    assert Case.objects.filter(version__suite__name=SUITE, version__number=3).count() == 2
