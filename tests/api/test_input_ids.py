"""Issue 17: outcome ids. The NFC and NFD spellings of one id became two outcomes, and ids of
only spaces or with bidirectional or other control characters were accepted. Ids are now
normalised to NFC at every boundary (ingest, CloudEvents, ``base_revisions``, labels, jobs,
``GET /v1/outcomes/{id}``) and the rest is a 422 saying what is wrong (SQLite and PostgreSQL)."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import auth
from tests.api.hostile_helpers import refused, send, table_rows
from tests.api.test_outcomes import ticket

NFC_ID, NFD_ID = "caf\u00e9-1", "cafe\u0301-1"


def test_nfc_and_nfd_spellings_of_an_id_are_one_outcome(
    client: TestClient, keys: dict[str, str], db_url: str
) -> None:
    key = keys["acme"]
    assert unicodedata.normalize("NFC", NFD_ID) == NFC_ID != NFD_ID
    first = send(client, key, "/v1/outcomes", {"outcomes": [ticket(NFD_ID)]})
    assert first.status_code == 200 and first.json()["items"][0]["id"] == NFC_ID
    again = send(client, key, "/v1/outcomes", {"outcomes": [ticket(NFC_ID)]}).json()
    assert again["totals"] == {"created": 0, "revised": 0, "unchanged": 1}
    assert table_rows(db_url)["outcomes"] == 1
    for spelling in (NFC_ID, NFD_ID):
        read = client.get(f"/v1/outcomes/{quote(spelling)}", headers=auth(key))
        assert read.status_code == 200 and read.json()["id"] == NFC_ID, read.text
    label = send(client, key, "/v1/labels", {"labels": [{"outcome_id": NFD_ID, "resolved": True}]})
    assert label.status_code == 200 and label.json()["items"][0]["outcome_id"] == NFC_ID
    based = send(
        client,
        key,
        "/v1/outcomes",
        {"outcomes": [ticket(NFD_ID, text="changed")], "base_revisions": {NFD_ID: 1}},
    )
    assert based.status_code == 200 and based.json()["items"][0]["status"] == "revised"
    job = send(client, key, "/v1/verifications", {"outcome_ids": [NFD_ID]})
    assert job.status_code == 202, job.text
    assert job.json()["progress"]["total"] == 1
    assert table_rows(db_url)["outcomes"] == 2  # two revisions of the one outcome


BAD_IDS = [
    ("   ", "blank"),
    ("\t", "blank"),
    ("T-\u202e1", "bidirectional control U+202E"),
    ("T-\u2066x\u2069", "bidirectional control U+2066"),
    ("T-\u200f1", "bidirectional control U+200F"),
    ("T-\u061c1", "bidirectional control U+061C"),
    ("T-\u200b1", "invisible format character U+200B"),
    ("T-\x071", "control character U+0007"),
    ("T-\n1", "control character U+000A"),
    ("T-\x851", "control character U+0085"),
    (" T-1", "starts or ends with whitespace"),
    ("T-1 ", "starts or ends with whitespace"),
]


@pytest.mark.parametrize(("bad", "words"), BAD_IDS, ids=[w for _, w in BAD_IDS])
def test_blank_or_invisible_ids_are_422_everywhere(
    client: TestClient, keys: dict[str, str], db_url: str, bad: str, words: str
) -> None:
    key = keys["acme"]
    assert send(client, key, "/v1/outcomes", {"outcomes": [ticket("T-1")]}).status_code == 200
    before = table_rows(db_url)
    refused(send(client, key, "/v1/outcomes", {"outcomes": [ticket(bad)]}), "outcomes.0.id", words)
    data = ticket("x")
    del data["id"]
    event = {"specversion": "1.0", "id": bad, "source": "s", "type": "t", "data": data}
    refused(send(client, key, "/v1/outcomes", {"outcomes": [event]}), "outcomes.0.id", words)
    bases = {"outcomes": [ticket("T-1")], "base_revisions": {bad: 0}}
    refused(send(client, key, "/v1/outcomes", bases), f"base_revisions.{bad}.[key]", words)
    labels = {"labels": [{"outcome_id": bad, "resolved": True}]}
    refused(send(client, key, "/v1/labels", labels), "labels.0.outcome_id", words)
    job = {"outcome_ids": ["T-1", bad]}
    refused(send(client, key, "/v1/verifications", job), "outcome_ids.1", words)
    read = client.get("/v1/outcomes/" + quote(bad, safe=""), headers=auth(key))
    if "\n" in bad:  # no route's path matches a line break: a plain 404
        assert read.status_code == 404 and read.json()["error"]["code"] == "not_found"
    else:
        refused(read, "outcome_id", words)
    assert table_rows(db_url) == before
