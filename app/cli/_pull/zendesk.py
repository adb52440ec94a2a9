"""Pull Zendesk: the cursor-based incremental ticket export, each ticket's audits with it.

Per export page: the page (tickets and side-loaded users) is written as one line, then every
ticket's audits (List Audits for a Ticket, cursor pagination), one line per audits page; the
lines are made durable and only then the export's ``after_cursor`` is saved. The file is what
``judge convert`` reads as a Zendesk export (tickets joined with their audits by ticket id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.cli._pull.http import HttpClient, PullError
from app.cli._pull.sink import LineSink

EXPORT = "/api/v2/incremental/tickets/cursor.json"
SaveCursor = Callable[[dict[str, Any], int, int], None]


@dataclass
class PullSummary:
    pages: int = 0
    records: int = 0
    finished: bool = False


def _audits(client: HttpClient, sink: LineSink, ticket_id: Any, page_size: int) -> int:
    """Write every audits page of one ticket; return how many pages."""
    url: str | None = f"/api/v2/tickets/{ticket_id}/audits.json"
    params: dict[str, Any] | None = {"page[size]": page_size}
    pages = 0
    while url is not None:
        page = client.get(url, params)
        if not isinstance(page, dict) or not isinstance(page.get("audits"), list):
            raise PullError(f"GET {url.split('?')[0]} did not answer an audits page")
        sink.write(page)
        pages += 1
        params = None  # next links carry their own query
        meta: dict[str, Any] = page["meta"] if isinstance(page.get("meta"), dict) else {}
        links: dict[str, Any] = page["links"] if isinstance(page.get("links"), dict) else {}
        if meta.get("has_more") and links.get("next"):
            url = str(links["next"])
        elif page.get("next_page"):
            url = str(page["next_page"])
        else:
            url = None
    return pages


def pull_zendesk(
    client: HttpClient,
    sink: LineSink,
    *,
    cursor: dict[str, Any] | None,
    start_time: int,
    page_size: int,
    max_pages: int | None,
    save: SaveCursor,
) -> PullSummary:
    """Follow the export from ``cursor`` (or ``start_time``), saving after every page."""
    summary = PullSummary()
    position = dict(cursor or {"start_time": start_time, "cursor": None})
    while max_pages is None or summary.pages < max_pages:
        params: dict[str, Any] = {"include": "users", "per_page": page_size}
        if position.get("cursor"):
            params["cursor"] = position["cursor"]
        else:
            params["start_time"] = position.get("start_time", start_time)
        page = client.get(EXPORT, params)
        if not isinstance(page, dict) or not isinstance(page.get("tickets"), list):
            raise PullError(f"GET {EXPORT} did not answer an incremental export page")
        sink.write(page)
        for ticket in page["tickets"]:
            if isinstance(ticket, dict) and ticket.get("id") is not None:
                _audits(client, sink, ticket["id"], min(page_size, 100))
        sink.commit()
        if page.get("after_cursor"):
            position["cursor"] = page["after_cursor"]
        save(dict(position), 1, len(page["tickets"]))
        summary.pages += 1
        summary.records += len(page["tickets"])
        if page.get("end_of_stream"):
            summary.finished = True
            break
    return summary
