"""The whole service flow against a real `judge serve` process on 127.0.0.1, on SQLite and
PostgreSQL: store a rubric and a panel (its LLM judge on the local fake OpenAI-compatible
server), ingest the sample tickets, verify them (embedded worker on SQLite, a `judge worker`
process on PostgreSQL), label, calibrate, meter; then tenant isolation on every route that
takes an id or a name."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.flow_helpers import (
    LLM_MODEL,
    PANEL_NAME,
    RUBRIC_NAME,
    allow_env,
    error_code,
    label_items,
    latest_decisions,
    ok,
    panel_yaml,
    rubric_yaml,
    tickets,
    wait_for_job,
    without_labels,
)
from tests.api.live import LiveServer, Process
from tests.fakes.openai_server import FakeOpenAIServer

pytestmark = pytest.mark.slow  # two real processes and a job per backend: ~10 s each

#: Half-open range holding every sample ticket's verification anchor (the tickets are 2026),
#: in months (the meter allows at most 1000 windows per request).
METER_RANGE = {"from": "2020-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z", "window": "month"}
#: How many of the 65 tickets get a human label through POST /v1/labels.
LABELLED = 40


@dataclass
class Flow:
    server: LiveServer
    fake: FakeOpenAIServer
    acme: httpx.Client
    globex: httpx.Client
    rows: list[dict[str, Any]]
    panel_ref: str
    rubric_ref: str
    job: dict[str, Any]


@contextmanager
def running_service(db_url: str, tmp_path: Path, keys: dict[str, str]) -> Iterator[Flow]:
    """The fake model, `judge serve` (and on PostgreSQL a `judge worker`), clients per tenant."""
    with FakeOpenAIServer() as fake:
        env = allow_env(fake.base_url)
        server = LiveServer(db_url, log=tmp_path / "serve.log", env=env)
        worker: Process | None = None
        try:
            if not db_url.startswith("sqlite"):
                # PostgreSQL has no embedded worker: jobs wait for a `judge worker` process.
                worker = Process(["worker", "--db", db_url], log=tmp_path / "worker.log", env=env)
            with server.client(keys["acme"]) as acme, server.client(keys["globex"]) as globex:
                yield Flow(server, fake, acme, globex, tickets(), "", "", {})
        except BaseException:
            print(server.output())  # shown by pytest on failure
            if worker is not None:
                print(worker.output())
            raise
        finally:
            if worker is not None:
                worker.stop()
            server.stop()


def _ingest_and_verify(flow: Flow) -> None:
    acme = flow.acme
    rubric = ok(acme.post("/v1/rubrics", json={"yaml": rubric_yaml()}), 201)
    panel = ok(acme.post("/v1/panels", json={"yaml": panel_yaml(flow.fake.base_url)}), 201)
    assert (rubric["name"], rubric["source"]) == (RUBRIC_NAME, "stored")
    assert (panel["name"], panel["source"]) == (PANEL_NAME, "stored")
    flow.rubric_ref, flow.panel_ref = rubric["ref"], panel["ref"]

    body = {"outcomes": without_labels(flow.rows)}
    first = ok(acme.post("/v1/outcomes", json=body))
    assert first["totals"] == {"created": len(flow.rows), "revised": 0, "unchanged": 0}
    again = ok(acme.post("/v1/outcomes", json=body))  # idempotent on outcome id
    assert again["totals"] == {"created": 0, "revised": 0, "unchanged": len(flow.rows)}

    ids = [row["id"] for row in flow.rows]
    created = acme.post(
        "/v1/verifications",
        json={"outcome_ids": ids, "rubric": RUBRIC_NAME, "panel": PANEL_NAME},
    )
    job = ok(created, 202)
    assert created.headers["location"] == f"/v1/verifications/{job['id']}"
    assert job["rubrics"] == {"support_ticket": flow.rubric_ref}
    flow.job = wait_for_job(acme, job["id"])


def _check_verdicts(flow: Flow) -> int:
    """The job's counts agree with the verdicts stored per outcome; returns the verified count."""
    job, ids = flow.job, [row["id"] for row in flow.rows]
    assert job["status"] == "done", job
    assert job["progress"] == {
        "total": len(ids),
        "completed": len(ids),
        "failed": 0,
        "pending": 0,
        "fraction": 1.0,
    }
    # One request per outcome (one judge, one sample): the model really was asked, once each.
    assert len(flow.fake.chat_requests(LLM_MODEL)) == len(ids)
    decisions = latest_decisions(flow.acme, ids)
    tally = Counter(decisions.values())
    assert sum(job["counts"].values()) == len(ids)
    assert {k: v for k, v in job["counts"].items() if v} == dict(tally)
    assert float(job["cost_usd"]) > 0  # the fake reports token usage; gpt-4o-mini has a price
    detail = ok(flow.acme.get(f"/v1/outcomes/{ids[0]}"))
    assert detail["verdicts"][0]["rubric"] == flow.rubric_ref
    assert detail["verdicts"][0]["panel"] == flow.panel_ref
    verified = tally["verified"]
    # The sample set has both kinds of ticket, so a count that ignored decisions would differ.
    assert 0 < verified < len(ids), tally
    return verified


def _label_and_calibrate(flow: Flow) -> None:
    labelled = flow.rows[:LABELLED]
    posted = ok(flow.acme.post("/v1/labels", json={"labels": label_items(labelled)}))
    assert (posted["count"], posted["created"], posted["unchanged"]) == (LABELLED, LABELLED, 0)
    detail = ok(flow.acme.get(f"/v1/outcomes/{labelled[0]['id']}"))
    assert [lab["resolved"] for lab in detail["labels"]] == [labelled[0]["label"]["resolved"]]

    report = ok(
        flow.acme.get(
            "/v1/calibration", params={"panel": PANEL_NAME, "rubric": RUBRIC_NAME, "seed": 7}
        )
    )
    # Every posted label meets a verdict; abstentions are compared but left out of ``n``.
    assert report["counts"]["compared"] == LABELLED, report["counts"]
    assert report["n"] + report["n_abstain"] == report["n_total"] == LABELLED, report
    for key in ("accuracy", "precision", "recall", "f1", "cohen_kappa"):
        value = report[key]
        assert value is None or isinstance(value, float), (key, value)
    assert isinstance(report["accuracy"], float) and 0.0 <= report["accuracy"] <= 1.0
    matrix = report["confusion"]["matrix"]
    assert sum(sum(row) for row in matrix) == report["n"]


def _meters(flow: Flow, verified: int) -> None:
    meter = ok(flow.acme.get("/v1/meters/verified-outcomes", params=METER_RANGE))
    assert meter["rows"], meter
    assert sum(row["value"] for row in meter["rows"]) == verified
    for row in meter["rows"]:
        assert row["status"] in ("provisional", "final")
        assert row["window_start"] < row["window_end"]
    by_agent = ok(
        flow.acme.get("/v1/meters/verified-outcomes", params={**METER_RANGE, "group_by": "agent"})
    )
    assert sum(row["value"] for row in by_agent["rows"]) == verified
    assert all(set(row["group"]) == {"agent"} for row in by_agent["rows"])

    cost = ok(flow.acme.get("/v1/metrics/cost-per-verified-outcome"))
    assert cost["verified"] == cost["denominator"] == verified
    assert cost["numerator_usd"] == pytest.approx(cost["cost_usd"])
    assert cost["value"] == pytest.approx(cost["numerator_usd"] / cost["denominator"])
    assert cost["judge_cost_usd"] == pytest.approx(float(flow.job["cost_usd"]), rel=1e-6)
    agent_cost = sum(row["agent"].get("cost_usd") or 0 for row in flow.rows)
    assert cost["agent_cost_usd"] == pytest.approx(agent_cost, rel=1e-6)


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus text page (parsing it): ``(name, labels, value)``."""
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(
        value
        for n, got, value in samples
        if n == name and all(got.get(k) == v for k, v in labels.items())
    )


def _metrics(flow: Flow) -> None:
    page = flow.acme.get("/metrics")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/plain")
    samples = _samples(page.text)
    # The two ingest requests of the flow, the model calls of its job and their cost.
    posts = _total(
        samples, "outcome_judge_http_requests_total", route="/v1/outcomes", method="POST"
    )
    assert posts == 2, page.text
    calls = _total(samples, "outcome_judge_judge_calls_total", status="ok")
    assert calls == len(flow.rows), page.text
    cost = _total(samples, "outcome_judge_judge_cost_usd_total")
    assert cost == pytest.approx(float(flow.job["cost_usd"]), rel=1e-3)
    assert _total(samples, "outcome_judge_queue_depth") == 0


def _isolation(flow: Flow) -> None:
    """globex sees none of acme's data, on every route that takes an id or a name."""
    g, acme_id, job_id = flow.globex, flow.rows[0]["id"], flow.job["id"]
    missing = "NO-SUCH-OUTCOME"
    for path in (
        f"/v1/outcomes/{acme_id}",
        f"/v1/verifications/{job_id}",
        f"/v1/rubrics/{RUBRIC_NAME}",
        f"/v1/rubrics/{flow.rubric_ref}",
        f"/v1/panels/{PANEL_NAME}",
        f"/v1/panels/{flow.panel_ref}",
    ):
        response = g.get(path)
        assert response.status_code == 404, (path, response.status_code, response.text)
        assert error_code(response) == "not_found"
        assert acme_id not in response.text or path.endswith(acme_id)

    # A label on another tenant's outcome looks exactly like one on an id nobody stored.
    theirs = g.post("/v1/labels", json={"labels": [{"outcome_id": acme_id, "resolved": False}]})
    nobodys = g.post("/v1/labels", json={"labels": [{"outcome_id": missing, "resolved": False}]})
    assert theirs.status_code == nobodys.status_code == 404, theirs.text
    # A job over another tenant's ids is refused like a job over unknown ids, nothing queued.
    theirs = g.post("/v1/verifications", json={"outcome_ids": [acme_id]})
    nobodys = g.post("/v1/verifications", json={"outcome_ids": [missing]})
    assert theirs.status_code == nobodys.status_code, (theirs.text, nobodys.text)
    assert theirs.status_code in (404, 422), theirs.text
    assert theirs.json()["error"]["details"] == {"unknown_ids": [acme_id]}

    # globex's own outcome cannot be judged with acme's panel or rubric (names are per tenant).
    own = {**without_labels(flow.rows[:1], tenant="globex")[0], "id": "G-1"}
    ok(g.post("/v1/outcomes", json={"outcomes": [own]}))
    for choice in ({"panel": PANEL_NAME}, {"rubric": RUBRIC_NAME}):
        refused = g.post("/v1/verifications", json={"outcome_ids": ["G-1"], **choice})
        assert refused.status_code == 422, (choice, refused.text)
    assert ok(g.get("/v1/verifications"))["items"] == []

    # Lists, meters, cost and calibration hold none of acme's rows.
    assert [o["id"] for o in ok(g.get("/v1/outcomes"))["items"]] == ["G-1"]
    assert PANEL_NAME not in {p["name"] for p in ok(g.get("/v1/panels"))["items"]}
    assert RUBRIC_NAME not in {r["name"] for r in ok(g.get("/v1/rubrics"))["items"]}
    assert ok(g.get("/v1/meters/verified-outcomes", params=METER_RANGE))["rows"] == []
    cost = ok(g.get("/v1/metrics/cost-per-verified-outcome"))
    assert (cost["verified"], cost["judge_cost_usd"]) == (0, 0)
    assert g.get("/v1/calibration").status_code == 422  # no verdicts of its own
    theirs_metrics = _samples(g.get("/metrics").text)
    assert _total(theirs_metrics, "outcome_judge_judge_calls_total") == 0
    assert _total(theirs_metrics, "outcome_judge_judge_cost_usd_total") == 0
    # And acme's data is still all there (globex's refused writes wrote nothing).
    assert len(ok(flow.acme.get(f"/v1/outcomes/{acme_id}"))["labels"]) == 1


def test_full_flow_and_tenant_isolation(db_url: str, keys: dict[str, str], tmp_path: Path) -> None:
    with running_service(db_url, tmp_path, keys) as flow:
        _ingest_and_verify(flow)
        verified = _check_verdicts(flow)
        _label_and_calibrate(flow)
        _meters(flow, verified)
        _metrics(flow)
        _isolation(flow)
