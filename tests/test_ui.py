"""`ff ui` in a real headless Chromium against a real server on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from ffstore.context import open_context
from tests import standins
from tests.browser import Served, chromium, screenshot, serve_ui  # noqa: F401  (a fixture)
from tests.conftest import Workspace, run_ff_process
from tests.swap_fixtures import ASTRONAUT, GRACE_HOPPER, wrong_swapper
from tests.test_swap_verified import (  # noqa: F401  (a fixture)
    MODULES,
    Published,
    context_of,
    published,
)

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver


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


# --- the switcher: live switches, lock changes, refusals ------------------------------

OFFER = 'tr.offer[data-module="{module}"][data-version="{version}"] form.switch button'


def _submit(driver: WebDriver, selector: str) -> None:
    """Click a form's button and wait for the page the POST leads to."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    old = driver.find_element("css selector", "html")
    driver.find_element("css selector", selector).click()
    WebDriverWait(driver, 60).until(expected_conditions.staleness_of(old))


def _text(driver: WebDriver, selector: str) -> str:
    return driver.find_element("css selector", selector).text


def _generations(workspace: Workspace) -> list[str]:
    return [g.reason for g in context_of(workspace).history.generations()]


@contextmanager
def _serving(workspace: Workspace, driver: WebDriver) -> Iterator[Served]:
    """A server of its own over `workspace`, opened in the browser."""
    with serve_ui(lambda: context_of(workspace)) as ui:
        driver.get(ui.entry)
        yield ui


def test_switch_live_shows_the_memory_and_the_new_version_and_leaves_the_lock(
        served: Served, published: Published, chromium: WebDriver) -> None:  # noqa: F811
    lock = (published.workspace.project / "facefusion.lock").read_bytes()
    chromium.get(served.entry)
    _submit(chromium, OFFER.format(module="face_swapper", version="1.0.0"))
    assert re.fullmatch(r"switched face_swapper live: standin_inswapper 1\.1\.0 -> standin_inswapper "
                        r"1\.0\.0 \(CPUExecutionProvider; facefusion\.lock unchanged\); "
                        r"RSS [\d.]+ MiB -> [\d.]+ MiB", _text(chromium, ".ok"))
    assert _text(chromium, "#module-face_swapper .running") == "1.0.0"
    assert _text(chromium, "#module-face_swapper .version") == "1.1.0"
    assert (published.workspace.project / "facefusion.lock").read_bytes() == lock
    _submit(chromium, OFFER.format(module="face_swapper", version="1.1.0"))
    assert _text(chromium, "#module-face_swapper .running") == "1.1.0"


def test_versions_offered_say_signed_trusted_compatible(
        served: Served, chromium: WebDriver) -> None:  # noqa: F811
    chromium.get(served.entry)
    for version in ("1.0.0", "1.1.0"):
        row = f'tr.offer[data-module="face_swapper"][data-version="{version}"]'
        assert _text(chromium, f"{row} .state").startswith("signed by ed25519:")
        assert _text(chromium, f"{row} .state").endswith(", trusted, compatible")
    assert "locked" in _text(chromium, 'tr.offer[data-version="1.1.0"] .marks')



def _own_registry(published: Published, directory: Path) -> Workspace:  # noqa: F811
    """A project over a copy of the shared registry, with a store of its own (the
    shared store must not see that registry's index move on), at the shared lock."""
    registry = directory / "registry"
    shutil.copytree(published.registry, registry)
    workspace = published.project(directory / "project", home=directory / "home")
    workspace.write_toml(MODULES, registry=str(registry))
    return replace(workspace, registry=registry)


def _publish_more(workspace: Workspace, published: Published) -> None:  # noqa: F811
    """Swapper releases ff cannot run or lock: one that needs a newer ff, one whose I/O
    is not a swapper's, and a good one outside the toml's range."""
    key = str(published.home / "keys" / "alice.key")
    for version, data, extra in (("1.2.0", standins.face_swapper(2, 0.7), ["--requires-ff", ">=99"]),
                                 ("1.3.0", wrong_swapper(), []),
                                 ("2.0.0", standins.face_swapper(3, 0.7), [])):
        path = workspace.root / "files" / version / "inswapper_128.onnx"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        workspace.run("publish", str(path), "--registry", str(workspace.registry), "--model",
                      "standin_inswapper", "--version", version, "--module", "face_swapper",
                      "--key", key, *extra)


def test_versions_this_ff_cannot_run_say_why_as_the_cli_would(
        published: Published, chromium: WebDriver, tmp_path: Path) -> None:  # noqa: F811
    workspace = _own_registry(published, tmp_path)
    _publish_more(workspace, published)
    said = {version: workspace.run("rollback", "face_swapper", "--to", version,
                                   expect=2).err.strip() for version in ("1.2.0", "1.3.0")}
    assert "needs ff >=99" in said["1.2.0"] and "its I/O is not" in said["1.3.0"]
    with _serving(workspace, chromium):
        def state(version: str) -> str:
            return _text(chromium, f'tr.offer[data-module="face_swapper"][data-version="{version}"]'
                                   " .state")

        for version, error in said.items():
            assert "error: " + state(version).splitlines()[0] == error
        chromium.find_element("css selector", 'tr.offer[data-version="1.3.0"] summary').click()
        verbose = workspace.run("-v", "rollback", "face_swapper", "--to", "1.3.0", expect=2).err
        shown = _text(chromium, 'tr.offer[data-version="1.3.0"] .state pre')
        assert shown.splitlines() == [line.strip() for line in verbose.splitlines()[1:]], (
            "the lines ff -v adds")
        assert state("2.0.0").endswith(", trusted, compatible")
        outside = 'tr.offer[data-module="face_swapper"][data-version="2.0.0"] td:nth-child(4)'
        assert _text(chromium, outside) == (
            "outside '>=1,<2' in facefusion.toml (a live switch only)")
        for version in ("1.2.0", "1.3.0"):
            button = chromium.find_element("css selector", OFFER.format(module="face_swapper",
                                                                        version=version))
            assert not button.is_enabled()



def test_a_version_published_while_ff_ui_runs_can_be_switched_to(
        published: Published, chromium: WebDriver, tmp_path: Path) -> None:  # noqa: F811
    workspace = _own_registry(published, tmp_path)
    with _serving(workspace, chromium):
        _submit(chromium, OFFER.format(module="face_swapper", version="1.0.0"))  # models loaded
        _publish_more(workspace, published)
        chromium.refresh()
        _submit(chromium, OFFER.format(module="face_swapper", version="2.0.0"))
        assert _text(chromium, "#module-face_swapper .running") == "2.0.0"


def test_roll_back_from_the_page_writes_what_ff_rollback_writes(
        published: Published, chromium: WebDriver, tmp_path: Path) -> None:  # noqa: F811
    page, cli = published.project(tmp_path / "page"), published.project(tmp_path / "cli")
    with _serving(page, chromium):
        _submit(chromium, OFFER.format(module="face_swapper", version="1.1.0"))  # models loaded
        _submit(chromium, '#module-face_swapper form.rollback button')
        assert _text(chromium, ".ok") == (
            "ff rollback: face_swapper standin_inswapper 1.1.0 -> 1.0.0 (held); facefusion.lock "
            "rewritten; now running face_swapper 1.0.0")
        assert _text(chromium, "#module-face_swapper .running") == "1.0.0", "the Runtime follows"
        assert _text(chromium, "#module-face_swapper .hold") == (
            "held at 1.0.0 (rolled back from 1.1.0)")
        chromium.find_element("link text", "History").click()
        assert "rollback face_swapper 1.1.0 -> 1.0.0" in _text(chromium, "#history")
    cli.run("rollback", "face_swapper")
    assert page.lock_text == cli.lock_text
    assert _generations(page) == _generations(cli)


def test_lift_the_hold_and_upgrade_one_module_as_ff_lock_does(
        published: Published, chromium: WebDriver, tmp_path: Path) -> None:  # noqa: F811
    page, cli = published.project(tmp_path / "page"), published.project(tmp_path / "cli")
    for workspace in (page, cli):
        workspace.run("rollback", "face_swapper")
    with _serving(page, chromium):
        _submit(chromium, '#module-face_swapper form.upgrade button')  # labelled Lift hold
        assert _text(chromium, ".ok") == (
            "ff lock --upgrade-module face_swapper: upgraded face_swapper standin_inswapper "
            "1.0.0 -> 1.1.0; hold on face_swapper lifted; facefusion.lock updated")
        assert _text(chromium, "#module-face_swapper .hold") == ""
        assert _text(chromium, "#module-face_swapper form.upgrade button") == "Upgrade"
    cli.run("lock", "--upgrade-module", "face_swapper")
    assert page.lock_text == cli.lock_text
    assert _generations(page) == _generations(cli)

    narrow = {**MODULES, "face_swapper": ("standin_inswapper", ">=1,<1.1")}
    page = published.project(tmp_path / "page-narrow", modules=narrow)
    cli = published.project(tmp_path / "cli-narrow", modules=narrow)
    for workspace in (page, cli):  # 1.0.0 locked, then the range widened: 1.1.0 allowed
        workspace.write_toml(MODULES, registry=str(published.registry))
    with _serving(page, chromium):
        _submit(chromium, '#module-face_swapper form.upgrade button')
        assert _text(chromium, "#module-face_swapper .version") == "1.1.0"
    cli.run("lock", "--upgrade-module", "face_swapper")
    assert page.lock_text == cli.lock_text


def test_a_refused_action_shows_the_cli_error_and_changes_nothing(
        published: Published, chromium: WebDriver, tmp_path: Path) -> None:  # noqa: F811
    page, cli = published.project(tmp_path / "page"), published.project(tmp_path / "cli")
    page.run("lock")  # history knows the lock: a refusal has nothing to record
    before = (page.lock_text, _generations(page))
    said = cli.run("rollback", "face_recognizer", expect=1).err.strip()
    with _serving(page, chromium) as ui:
        _submit(chromium, '#module-face_recognizer form.rollback button')
        assert _text(chromium, "#error") == said
        assert said.startswith("error: no earlier version of face_recognizer")
        refused = httpx.post(ui.url + "/rollback", data={"module": "face_recognizer"},
                             cookies={"ff_ui_token": ui.token})
        assert refused.status_code == 500, "ff exits 1"

        output = tmp_path / "out.png"
        said = cli.run("swap", "--source", str(ASTRONAUT), "--target", str(GRACE_HOPPER),
                       "--output", str(output), "--use", "face_swapper=9.9.9",
                       expect=2).err.strip()
        chromium.get(ui.url + "/")
        chromium.execute_script("document.querySelector(arguments[0]).form.version.value = '9.9.9'",
                                OFFER.format(module="face_swapper", version="1.0.0"))
        _submit(chromium, OFFER.format(module="face_swapper", version="1.0.0"))
        assert _text(chromium, "#error") == said
        assert said == ("error: standin_inswapper 9.9.9 is not in registry 'default' "
                        "(versions there: 1.0.0, 1.1.0)")
        assert _text(chromium, "#module-face_swapper .running") == "1.1.0"
        refused = httpx.post(ui.url + "/switch", data={"module": "face_swapper",
                                                       "version": "9.9.9"},
                             cookies={"ff_ui_token": ui.token})
        assert refused.status_code == 400, "ff exits 2"
        forged = httpx.post(ui.url + "/rollback", data={"module": "face_swapper"},
                            cookies={"ff_ui_token": ui.token},
                            headers={"origin": "http://evil.example"})
        assert forged.status_code == 403, "another site cannot roll back through the browser"
    assert (page.lock_text, _generations(page)) == before
    assert not output.exists()



def test_the_running_models_follow_the_lock_or_the_action_is_refused(
        published: Published, chromium: WebDriver, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock change loads what the new lock names for the running models before it
    writes: a model that does not load (here: made to fail, as a GPU out of memory
    would) refuses the action with the lock untouched."""
    from ffswap.errors import SwapError
    from ffswap.runtime import Runtime

    page = published.project(tmp_path / "page")
    page.run("lock")
    prepare = Runtime.prepare

    def failing(self: Runtime, module: str, version: str | None) -> object:
        if version == "1.0.0":
            raise SwapError("not enough memory for standin_inswapper 1.0.0")
        return prepare(self, module, version)

    with _serving(page, chromium):
        _submit(chromium, OFFER.format(module="face_swapper", version="1.1.0"))  # models loaded
        before = (page.lock_text, _generations(page))
        monkeypatch.setattr(Runtime, "prepare", failing)
        _submit(chromium, "#module-face_swapper form.rollback button")
        assert _text(chromium, "#error") == "error: not enough memory for standin_inswapper 1.0.0"
        assert (page.lock_text, _generations(page)) == before
        assert _text(chromium, "#module-face_swapper .running") == "1.1.0"
        monkeypatch.undo()
        _submit(chromium, "#module-face_swapper form.rollback button")
        assert _text(chromium, "#module-face_swapper .running") == "1.0.0"
        _submit(chromium, "#module-face_swapper form.upgrade button")
        assert _text(chromium, ".ok").endswith("facefusion.lock updated; now running "
                                               "face_swapper 1.1.0")
        assert _text(chromium, "#module-face_swapper .running") == "1.1.0"


# --- the `ff ui` command ---------------------------------------------------------------


def test_ff_ui_prints_a_tokened_url_refuses_without_it_and_stops_on_ctrl_c(
        published: Published, tmp_path: Path) -> None:  # noqa: F811
    workspace = published.project(tmp_path / "project")
    # As a terminal's foreground job gets it (see the ff sync Ctrl-C test).
    process = subprocess.Popen(
        [sys.executable, "-m", "ffstore", "--home", str(workspace.home), "--project",
         str(workspace.project), "ui", "--port", "0"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        found = re.fullmatch(r"ff ui: (http://127\.0\.0\.1:(\d+))/\?token=([\w-]{20,})", line)
        assert found, line
        base = found.group(1)
        opened = httpx.get(line.removeprefix("ff ui: "), follow_redirects=True)
        assert opened.status_code == 200 and "<title>Modules - ff ui" in opened.text
        assert httpx.get(base + "/").status_code == 403
        assert httpx.get(base + "/history").status_code == 403
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
        assert out.strip().endswith("stopped")
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err

    busy = run_ff_process(["ui", "--port", "99999"], workspace.project, workspace.home)
    assert busy.returncode == 2
    assert busy.stderr.startswith("error: ") and busy.stderr.count("\n") == 1, busy.stderr


# --- screenshots for docs/ ---------------------------------------------------------------

SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def test_screenshots_of_the_main_pages(published: Published, chromium: WebDriver,  # noqa: F811
                                       tmp_path: Path) -> None:
    """The Modules page after a rollback, a lifted hold, a rollback from the page and
    a live switch, with releases this ff cannot run, and the History page.
    FF_UI_SCREENSHOTS=1 writes them into docs/screenshots/ (commit them); otherwise
    into a temp folder, so the pages are still drawn on every run."""
    folder = SCREENSHOTS if os.environ.get("FF_UI_SCREENSHOTS") == "1" else tmp_path
    workspace = _own_registry(published, tmp_path)
    for command in (["lock"], ["rollback", "face_swapper"], ["lock", "--upgrade-module",
                                                            "face_swapper"]):
        workspace.run(*command)
    _publish_more(workspace, published)  # versions the page says no to, and why
    size = chromium.get_window_size()
    try:
        with _serving(workspace, chromium):
            _submit(chromium, "#module-face_swapper form.rollback button")
            _submit(chromium, OFFER.format(module="face_swapper", version="1.1.0"))
            for name, link in (("modules", None), ("history", "History")):
                if link:
                    chromium.find_element("link text", link).click()
                chromium.set_window_size(1280, 400)
                height = chromium.execute_script(  # the whole page, not the first screenful
                    "return document.documentElement.scrollHeight + outerHeight - innerHeight")
                chromium.set_window_size(1280, height)
                screenshot(chromium, folder / f"{name}.png")
                assert (folder / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        chromium.set_window_size(size["width"], size["height"])
