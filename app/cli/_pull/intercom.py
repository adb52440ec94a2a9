"""Pull Intercom: conversations updated since the last pull, each retrieved with its parts.

Search (``POST /conversations/search``, ``updated_at`` after the saved watermark) lists them a
page at a time; each is then retrieved (``GET /conversations/{id}``), because list and search
results carry no conversation parts. One retrieved conversation per line; after each page the
lines are made durable and the position (watermark, page cursor, newest ``updated_at`` seen)
is saved. A finished run moves the watermark to the newest ``updated_at`` it saw.
"""

from __future__ import annotations

from typing import Any

from app.cli._pull.http import HttpClient, PullError
from app.cli._pull.sink import LineSink
from app.cli._pull.zendesk import PullSummary, SaveCursor

SEARCH = "/conversations/search"


def pull_intercom(
    client: HttpClient,
    sink: LineSink,
    *,
    cursor: dict[str, Any] | None,
    since: int,
    page_size: int,
    max_pages: int | None,
    save: SaveCursor,
) -> PullSummary:
    """Page through the search from ``cursor`` (or ``since``), saving after every page."""
    summary = PullSummary()
    position = dict(cursor or {"since": since, "starting_after": None, "max_seen": since})
    while max_pages is None or summary.pages < max_pages:
        pagination: dict[str, Any] = {"per_page": page_size}
        if position.get("starting_after"):
            pagination["starting_after"] = position["starting_after"]
        body = {
            "query": {"field": "updated_at", "operator": ">", "value": int(position["since"])},
            "pagination": pagination,
        }
        page = client.post(SEARCH, body)
        if not isinstance(page, dict) or not isinstance(page.get("conversations"), list):
            raise PullError(f"POST {SEARCH} did not answer a conversation list")
        for listed in page["conversations"]:
            if not isinstance(listed, dict) or not listed.get("id"):
                raise PullError(f"POST {SEARCH} listed a conversation without an id")
            full = client.get(f"/conversations/{listed['id']}")
            if not isinstance(full, dict) or "conversation_parts" not in full:
                raise PullError(f"GET /conversations/{listed['id']} returned no parts")
            sink.write(full)
            updated = full.get("updated_at")
            if isinstance(updated, int) and updated > int(position.get("max_seen") or 0):
                position["max_seen"] = updated
        sink.commit()
        pages: dict[str, Any] = page["pages"] if isinstance(page.get("pages"), dict) else {}
        nxt: dict[str, Any] = pages["next"] if isinstance(pages.get("next"), dict) else {}
        position["starting_after"] = nxt.get("starting_after")
        summary.pages += 1
        summary.records += len(page["conversations"])
        if not position["starting_after"]:
            position["since"] = position.get("max_seen") or position["since"]
            summary.finished = True
        save(dict(position), 1, len(page["conversations"]))
        if summary.finished:
            break
    return summary
