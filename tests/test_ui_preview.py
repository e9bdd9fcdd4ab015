"""`ff ui`'s Preview and Compare pages in a real headless Chromium against a real
server on 127.0.0.1: the stand-in swapper tints the face per version, so switching
face_swapper 1.1.0 -> 1.0.0 from the page must change the picture's pixels.

With FF_UI_SCREENSHOTS=DIR the pages' screenshots are written there
(`FF_UI_SCREENSHOTS=docs/screenshots pytest tests/test_ui_preview.py` refreshes the
docs' ones); otherwise into the test's temp folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from ffstore.context import open_context
from tests.browser import Served, chromium, screenshot, serve_ui  # noqa: F401  (a fixture)
from tests.swap_fixtures import ASTRONAUT, GRACE_HOPPER, pan_video, read_frames, read_test_image
from tests.test_swap_verified import GRACE_FACE, Published, published  # noqa: F401  (a fixture)

FRAMES = 12


@dataclass(frozen=True)
class Ui:
    served: Served
    project: Path

    def open(self, driver: WebDriver, path: str) -> None:
        driver.get(f"{self.served.url}{path}?token={self.served.token}")

    def fetch(self, path: str) -> bytes:
        answer = httpx.get(self.served.url + path, cookies={"ff_ui_token": self.served.token})
        assert answer.status_code == 200, answer.text
        return answer.content


@pytest.fixture(scope="module")
def ui(published: Published, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:  # noqa: F811
    """A project of its own (the shared lock, face_swapper 1.1.0) holding two faces
    and a short clip, served."""
    workspace = published.project(tmp_path_factory.mktemp("ui-preview") / "project")
    faces = workspace.project / "faces"
    faces.mkdir()
    for image in (ASTRONAUT, GRACE_HOPPER):
        shutil.copy(image, faces / image.name)
    (workspace.project / "clips").mkdir()
    pan_video(workspace.project / "clips" / "pan.avi", read_test_image(ASTRONAUT), frames=FRAMES)
    grey = np.full((256, 256, 3), 128, np.uint8)
    pan_video(workspace.project / "clips" / "blank.avi", grey, frames=4, size=128)
    project = workspace.project
    with serve_ui(lambda: open_context(project, {"home": str(published.home)}, environ={})) as served:
        yield Ui(served, project)


def shoot(driver: WebDriver, tmp_path: Path, name: str) -> None:
    """A screenshot of the whole page (the window made as tall as the page, then
    set back for the other tests)."""
    size = driver.get_window_size()
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size["width"], height + 160)
    try:
        screenshot(driver, Path(os.environ.get("FF_UI_SCREENSHOTS") or tmp_path) / name)
    finally:
        driver.set_window_size(size["width"], size["height"])


def wait(driver: WebDriver, until: object, seconds: float = 60) -> None:
    WebDriverWait(driver, seconds).until(until)  # type: ignore[arg-type]


def submit(driver: WebDriver, button: str) -> None:
    """Click a form's button and wait for the page it loads."""
    old = driver.find_element(By.TAG_NAME, "main")
    driver.find_element(By.CSS_SELECTOR, button).click()

    def reloaded(d: WebDriver) -> bool:
        try:
            old.is_enabled()
            return False
        except Exception:  # stale: the new page replaced it
            return d.execute_script("return document.readyState") == "complete"

    wait(driver, reloaded)


def choose(driver: WebDriver, name: str, label: str) -> None:
    Select(driver.find_element(By.ID, name)).select_by_visible_text(label)


def picture(ui: Ui, driver: WebDriver) -> tuple[str, np.ndarray]:
    """The preview's URL and its pixels, fetched as the browser would."""
    src = driver.find_element(By.ID, "preview").get_attribute("src") or ""
    path = src.removeprefix(ui.served.url)
    image = cv2.imdecode(np.frombuffer(ui.fetch(path), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return path, image


def error_lines(driver: WebDriver) -> list[str]:
    return [line for line in driver.find_element(By.TAG_NAME, "main").text.splitlines()
            if line.startswith("error:")]


def switch(driver: WebDriver, version: str) -> None:
    row = "#switch-face_swapper"
    Select(driver.find_element(By.CSS_SELECTOR, f"{row} select")).select_by_visible_text(version)
    submit(driver, f"{row} button")


def running(driver: WebDriver) -> str:
    return driver.find_element(By.CSS_SELECTOR, "#switch-face_swapper .running").text


def test_switching_the_swapper_version_changes_the_preview(
        ui: Ui, chromium: WebDriver, tmp_path: Path) -> None:  # noqa: F811
    ui.open(chromium, "/preview")
    assert chromium.title.startswith("Preview")
    choose(chromium, "source", "faces/astronaut.png")
    choose(chromium, "target", "faces/grace_hopper.jpg")
    submit(chromium, "#show")
    assert not error_lines(chromium)
    assert running(chromium) == "1.1.0"
    assert "face_swapper standin_inswapper 1.1.0" in chromium.find_element(By.ID, "made").text
    first_url, first = picture(ui, chromium)
    shoot(chromium, tmp_path, "preview.png")

    switch(chromium, "1.0.0")
    assert "switched face_swapper standin_inswapper 1.1.0 -> standin_inswapper 1.0.0" in \
        chromium.find_element(By.CLASS_NAME, "ok").text
    assert running(chromium) == "1.0.0"
    assert "face_swapper standin_inswapper 1.0.0" in chromium.find_element(By.ID, "made").text
    second_url, second = picture(ui, chromium)
    assert second_url != first_url
    x1, y1, x2, y2 = GRACE_FACE
    face_change = np.abs(first[y1:y2, x1:x2].astype(int) - second[y1:y2, x1:x2]).mean()
    assert face_change > 5, f"the face hardly changed ({face_change:.2f})"
    corner = np.abs(first[:40, :40].astype(int) - second[:40, :40]).mean()
    assert corner < 1, "only the face changes"

    switch(chromium, "1.1.0")
    assert running(chromium) == "1.1.0"
    assert picture(ui, chromium)[0] == first_url, "the same versions make the same picture"


def test_a_failed_switch_says_so_and_keeps_the_running_model(ui: Ui, chromium: WebDriver) -> None:  # noqa: F811
    ui.open(chromium, "/preview")
    chromium.execute_script(
        "const s = document.querySelector('#switch-face_swapper select');"
        "s.add(new Option('9.9.9', '9.9.9')); s.value = '9.9.9';")
    submit(chromium, "#switch-face_swapper button")
    assert error_lines(chromium) == [
        "error: standin_inswapper 9.9.9 is not in registry 'default' (versions there: 1.0.0, 1.1.0)"]
    assert chromium.find_element(By.ID, "kept").text == \
        "nothing changed: face_swapper still runs standin_inswapper 1.1.0"
    assert running(chromium) == "1.1.0"


def test_upload_a_target_and_refuse_one_that_is_not_an_image(
        ui: Ui, chromium: WebDriver, tmp_path: Path) -> None:  # noqa: F811
    ui.open(chromium, "/preview")
    choose(chromium, "source", "faces/astronaut.png")
    submit(chromium, "#show")
    chromium.find_element(By.ID, "file").send_keys(str(GRACE_HOPPER))
    submit(chromium, "#upload")
    assert "uploaded grace_hopper.jpg as the target" in chromium.find_element(By.CLASS_NAME, "ok").text
    target = Select(chromium.find_element(By.ID, "target")).first_selected_option
    assert target.text == "grace_hopper.jpg (uploaded)"
    assert target.get_attribute("value").startswith("upload/")
    assert not error_lines(chromium)
    assert picture(ui, chromium)[1].shape == read_test_image(GRACE_HOPPER).shape

    bad = tmp_path / "notes.png"
    bad.write_text("not a picture\n")
    chromium.find_element(By.ID, "file").send_keys(str(bad))
    submit(chromium, "#upload")
    assert error_lines(chromium) == [
        "error: cannot decode image notes.png: not an image format OpenCV reads"]
    labels = [option.text for option in Select(chromium.find_element(By.ID, "target")).options]
    assert not any("notes" in label for label in labels), "a refused upload is not kept"
    assert Select(chromium.find_element(By.ID, "target")).first_selected_option.text == \
        "grace_hopper.jpg (uploaded)", "the page keeps what was chosen"


def test_scrub_a_clip_and_run_it(ui: Ui, chromium: WebDriver, tmp_path: Path) -> None:  # noqa: F811
    ui.open(chromium, "/preview")
    choose(chromium, "source", "faces/grace_hopper.jpg")
    choose(chromium, "target", "clips/pan.avi")
    submit(chromium, "#show")
    assert not error_lines(chromium)
    scrubber = chromium.find_element(By.ID, "frame")
    assert scrubber.get_attribute("max") == str(FRAMES - 1)
    first_url, _ = picture(ui, chromium)
    chromium.execute_script("arguments[0].value = 7; arguments[0].dispatchEvent("
                            "new Event('change'))", scrubber)
    wait(chromium, lambda d: d.find_element(By.ID, "preview").get_attribute("data-frame") == "7")
    assert picture(ui, chromium)[0] != first_url
    assert chromium.find_element(By.ID, "frame-label").text == "7"

    chromium.find_element(By.ID, "run").click()
    state = chromium.find_element(By.ID, "run-state")
    wait(chromium, lambda d: state.get_attribute("data-state") in ("done", "failed"))
    assert not error_lines(chromium)
    assert state.text.startswith(f"wrote pan-swapped.avi ({FRAMES} frames, ")
    assert "ran face_detector yunet 2026.5.0" in state.text
    shoot(chromium, tmp_path, "preview-video.png")
    written = Path(ui.project.parent / "run.avi")
    written.write_bytes(ui.fetch(chromium.find_element(By.ID, "run-output").get_attribute("href")
                                 .removeprefix(ui.served.url)))
    assert len(read_frames(written)) == FRAMES



def test_one_run_at_a_time(ui: Ui, chromium: WebDriver, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The server runs in this process: the first run is held until the second is refused."""
    from ffswap.runtime import Runtime

    release = threading.Event()
    swap_video = Runtime.swap_video

    def held(self: Runtime, *args: object, **kwargs: object) -> object:
        release.wait(30)
        return swap_video(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Runtime, "swap_video", held)
    cookies = {"ff_ui_token": ui.served.token}
    asked = {"source": "project/faces/grace_hopper.jpg", "target": "project/clips/pan.avi"}
    with httpx.Client(base_url=ui.served.url, cookies=cookies, timeout=30) as client:
        assert client.post("/preview/run", data=asked).json()["state"] == "running"
        second = client.post("/preview/run", data=asked)
        release.set()
        assert second.status_code == 400
        assert second.json()["error"] == "a run is already going (frame 0); wait for it to end"
        wait(chromium, lambda d: client.get("/preview/run").json()["state"] == "done")


def test_compare_shows_the_metrics_and_a_slider(
        ui: Ui, chromium: WebDriver, tmp_path: Path) -> None:  # noqa: F811
    ui.open(chromium, "/preview")
    choose(chromium, "source", "faces/astronaut.png")
    choose(chromium, "target", "faces/grace_hopper.jpg")
    submit(chromium, "#show")
    submit(chromium, "#compare-these")
    assert chromium.title.startswith("Compare")
    assert Select(chromium.find_element(By.ID, "module")).first_selected_option.text == "face_swapper"
    chosen = {name: [o.text for o in Select(chromium.find_element(By.NAME, name))
                     .all_selected_options] for name in ("from", "to", "source", "inputs")}
    assert chosen == {"from": ["1.0.0"], "to": ["1.1.0"], "source": ["faces/astronaut.png"],
                      "inputs": ["faces/grace_hopper.jpg"]}, "ff compare's defaults, the preview's files"
    Select(chromium.find_element(By.ID, "inputs")).select_by_visible_text("clips/pan.avi")
    submit(chromium, "#compare")
    assert not error_lines(chromium)
    assert chromium.find_element(By.ID, "compared").text.startswith(
        "face_swapper standin_inswapper 1.0.0 → standin_inswapper 1.1.0 on 2 input(s), "
        f"{1 + FRAMES} frame(s)")
    table = chromium.find_element(By.CSS_SELECTOR, "#metrics table").text
    assert "SSIM mean → worst" in table and "total" in table
    assert "grace_hopper.jpg (image)" in table and "pan.avi (video)" in table
    shoot(chromium, tmp_path, "compare.png")
    reveal = chromium.find_element(By.CSS_SELECTOR, "input.reveal")
    chromium.execute_script("arguments[0].value = 20; arguments[0].dispatchEvent("
                            "new Event('input'))", reveal)
    over = chromium.find_element(By.CSS_SELECTOR, ".slider .over")
    assert "80%" in over.value_of_css_property("clip-path")
    assert b"ff compare face_swapper" in ui.fetch("/compare/report")

    Select(chromium.find_element(By.NAME, "from")).select_by_visible_text("1.1.0")
    submit(chromium, "#compare")
    assert error_lines(chromium) == [
        "error: --from and --to are both face_swapper 1.1.0: nothing to compare"]
    assert not chromium.find_elements(By.ID, "metrics"), "a refused comparison shows no results"


def test_a_clip_without_faces_scrubs_unchanged_and_its_run_fails_in_the_page(
        ui: Ui, chromium: WebDriver) -> None:  # noqa: F811
    ui.open(chromium, "/preview")
    choose(chromium, "source", "faces/grace_hopper.jpg")
    choose(chromium, "target", "clips/blank.avi")
    submit(chromium, "#show")
    assert not error_lines(chromium)
    assert "no face in this frame: left as it is" in chromium.find_element(By.ID, "made").text
    chromium.find_element(By.ID, "run").click()
    state = chromium.find_element(By.ID, "run-state")
    wait(chromium, lambda d: state.get_attribute("data-state") in ("done", "failed"))
    assert error_lines(chromium) == [
        "error: no face found in the target video: none of its 4 frames has a face"]
    assert not chromium.find_element(By.ID, "run-output").is_displayed(), "nothing to download"


def test_files_are_chosen_by_key_and_uploads_go_with_the_session(tmp_path: Path) -> None:
    from ffswap.errors import MediaError
    from ffswap.ui.media_store import MediaStore
    from ffswap.ui.session import UiSession

    session = UiSession(lambda: open_context(tmp_path, environ={}))
    uploads = session.scratch() / "uploads"
    uploads.mkdir()
    (tmp_path / "face.png").write_bytes(GRACE_HOPPER.read_bytes())
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "secret.png").write_bytes(GRACE_HOPPER.read_bytes())
    store = MediaStore(tmp_path, uploads)
    assert list(store.listing()) == ["project/face.png"]
    for key in ("project/../face.png", "project/.hidden/secret.png", f"project/{GRACE_HOPPER}"):
        with pytest.raises(MediaError, match="no such file"):
            store.get(key, "target")
    kept = store.upload("me.jpg", GRACE_HOPPER.read_bytes(), "source", ("image",))
    assert kept.path.parent == uploads and store.get(kept.key, "source").label == "me.jpg (uploaded)"
    with pytest.raises(MediaError, match=r"the source must be an image, not the video clip\.avi"):
        store.upload("clip.avi", b"whatever", "source", ("image",))
    scratch = session.scratch()
    session.close()
    assert not scratch.exists(), "uploads go when ff ui stops"


def test_ff_ui_stopped_by_sigterm_removes_its_temp_folder(
        ui: Ui, published: Published, tmp_path: Path) -> None:  # noqa: F811
    """A service manager stops `ff ui` with SIGTERM: the uploads must go then too."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    environ = {**os.environ, "FF_HOME": str(published.home), "TMPDIR": str(temp)}
    process = subprocess.Popen([sys.executable, "-c", "from ffstore.cli import entry; entry()",
                                "ui", "--port", "0"], cwd=ui.project, env=environ,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = process.stdout.readline() if process.stdout else ""
        url = printed.split()[-1]
        with httpx.Client(follow_redirects=True, timeout=30) as client:
            assert client.get(url.replace("/?", "/preview?")).status_code == 200
        assert len(list(temp.glob("ff-ui-*"))) == 1, "the session made its folder"
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 128 + signal.SIGTERM
    finally:
        process.kill()
        process.wait()
    assert not list(temp.glob("ff-ui-*"))
