"""`ff ui` in a real headless Chromium against a real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ffstore.context import open_context
from tests.browser import Served, chromium, serve_ui  # noqa: F401  (a fixture)
from tests.test_swap_verified import Published, published  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def served(published: Published) -> Iterator[Served]:  # noqa: F811
    project = published.workspace.project
    with serve_ui(lambda: open_context(project, {"home": str(published.home)}, environ={})) as ui:
        yield ui


def test_the_page_needs_the_token_and_trades_it_for_a_cookie(
        served: Served, chromium, tmp_path: Path) -> None:  # noqa: F811
    refused = httpx.get(served.url + "/")
    assert refused.status_code == 403 and "Open the URL that" in refused.text
    assert httpx.get(served.url + "/?token=wrong").status_code == 403
    chromium.delete_all_cookies()
    chromium.get(served.url + "/")
    assert "Not allowed" in chromium.title
    chromium.get(served.entry)
    assert chromium.current_url == served.url + "/", "the token leaves the address bar"
    assert chromium.title.startswith("Modules")
    version = chromium.find_element("css selector", "#module-face_swapper .version").text
    assert version == "1.1.0"
    forged = httpx.post(served.url + "/", cookies={"ff_ui_token": served.token},
                        headers={"origin": "http://evil.example"})
    assert forged.status_code == 403
