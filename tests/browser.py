"""A real headless Chromium (the system's chromium and chromedriver, driven by
Selenium) and a real `ff ui` server on 127.0.0.1, for the web UI's tests.

The server runs in a thread of the test process on a socket bound first (port 0),
so the tests know its port and share the session-scoped stand-in models; the
browser is the system package's, as a user's would be, started once per session."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

    from ffstore.context import Context

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@dataclass(frozen=True)
class Served:
    url: str  # http://127.0.0.1:PORT
    token: str

    @property
    def entry(self) -> str:
        """The URL `ff ui` prints."""
        return f"{self.url}/?token={self.token}"


@contextmanager
def serve_ui(open_context: Callable[[], Context], token: str = "test-token") -> Iterator[Served]:
    import uvicorn

    from ffswap.ui.app import create_app
    from ffswap.ui.session import UiSession

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    session = UiSession(open_context, "cpu")
    server = uvicorn.Server(uvicorn.Config(create_app(session, token), log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "ff ui did not start"
    try:
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", token)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        session.close()


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("the web UI tests need chromium and chromedriver (apt-get install "
                    "chromium chromium-driver; .ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: WebDriver, path: Path) -> None:
    """A PNG of the whole page as the browser drew it (docs/ screenshots)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
