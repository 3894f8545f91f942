"""The page at GET / in a real headless Chromium (Debian's chromium and chromium-driver, driven by selenium)
against a real gunicorn with 2 workers: tweets through the form, the live panel counting across both workers,
the auth flow, keyboard use, phone width, dark theme, no console error and no CSP violation.

Its screenshots are kept in pytest's temporary folders (the paths are printed: pytest -rP shows them); with
UPDATE_SCREENSHOT=1 the one of the form also replaces docs/page.png."""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import requests

from bench.server import serve
from tests.conftest import DEFAULT_BUNDLE, ROOT, TINY_RELATED_BUNDLE, splitting_threshold, with_manifest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    SELENIUM = True
except ImportError:
    SELENIUM = False

pytestmark = [
    pytest.mark.skipif(not SELENIUM, reason="selenium is not installed (requirements-dev.txt)"),
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian's chromium and chromium-driver are not installed "
                                                         "(.ci/run installs them: apt-get install chromium chromium-driver)"),
]

# The page is opened as a device on the local network is: by a host name over plain http, which is no secure
# context (no Clipboard API, for one). The name resolves to loopback inside this browser only.
LAN_HOST = "raspberrypi.test"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,900",
         f"--host-resolver-rules=MAP {LAN_HOST} 127.0.0.1")
# Runs before the page's own script (injected by the driver, so outside the page's CSP): records violations.
CSP_PROBE = ("window.cspViolations = []; document.addEventListener('securitypolicyviolation', "
             "(e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));")
TOKEN = "page-test-token-0123456789"
SINGLE = "BMW recalls 300,000 cars over faulty airbags"
BATCH = ["Loving my new BMW, what a drive!", "BMW opens a new plant in Debrecen",
         "Worst service ever at the BMW dealer, never again"]


@contextmanager
def chromium(profile: Path | None = None, prefs: dict | None = None) -> Iterator["webdriver.Chrome"]:
    """Headless Chromium on a profile of its own: a temporary one, deleted after, unless ``profile`` is given;
    ``prefs``, its preferences (as its settings page sets them)."""
    own = profile is None
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-")) if own else profile
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if prefs:
        options.add_experimental_option("prefs", prefs)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=DRIVER))
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_PROBE})
        yield driver
    finally:
        driver.quit()
        if own:
            shutil.rmtree(profile, ignore_errors=True)


def wait(driver, condition, timeout: float = 20, message: str = ""):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(), message)


def text(driver, css: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, css).text


def assert_clean(driver, allowed_401: int = 0) -> None:
    """No console error and no CSP violation; ``allowed_401`` failed loads with status 401 are expected."""
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    refused = [e for e in errors if e["source"] == "network" and "status of 401" in e["message"]]
    assert len(refused) == allowed_401 and len(errors) == allowed_401, errors
    assert driver.execute_script("return window.cspViolations") == []


def classify_in_form(driver, lines: list[str], entity: str) -> list[dict]:
    """Type tweets and an entity, press Classify; the results as the page shows them."""
    before = driver.execute_script("return document.querySelector('#results .summary')")
    for field, value in (("tweet", "\n".join(lines)), ("entity", entity)):
        element = driver.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    driver.find_element(By.ID, "classify").click()
    wait(driver, lambda: driver.execute_script("return document.querySelector('#results .summary')") not in (None, before)
         and len(driver.find_elements(By.CSS_SELECTOR, "#results .result")) == len(lines), message="no results shown")
    return shown_results(driver)


def shown_results(driver) -> list[dict]:
    out = []
    for item in driver.find_elements(By.CSS_SELECTOR, "#results .result"):
        scores = {row.find_element(By.CLASS_NAME, "score-name").text: row.find_element(By.CLASS_NAME, "score-value").text
                  for row in item.find_elements(By.CLASS_NAME, "score")}
        out.append({"text": item.find_element(By.CLASS_NAME, "tweet").text,
                    "label": item.find_element(By.CSS_SELECTOR, ".verdict .label").text,
                    "verdict": item.find_element(By.CLASS_NAME, "verdict").text, "scores": scores})
    return out


def as_shown(result: dict) -> dict[str, str]:
    return {label: f"{100 * score:.1f}%" for label, score in result["scores"].items()}


def lan_url(service) -> str:
    return f"http://{LAN_HOST}:{service.port}/"


def clipboard(driver, service) -> str:
    """The clipboard's text, read on a secure origin (the page over loopback), where reading may be allowed."""
    driver.get(service.url + "/")
    driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": service.url,
                                                        "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    return driver.execute_async_script("navigator.clipboard.readText().then(arguments[0], (e) => arguments[0]('' + e))")


def save_screenshot(driver, path: Path) -> Path:
    """The whole page, not only the viewport, as PATH."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
        "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")
    return path


def panel_total(driver, minutes: int = 5) -> int | None:
    value = text(driver, f"#tweets-{minutes}")
    return int(value) if value.isdigit() else None


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with serve(DEFAULT_BUNDLE, workers=2, threads=4, tflite_threads=1,
               log=tmp_path_factory.mktemp("service") / "gunicorn.log") as svc:
        yield svc


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


@pytest.fixture
def page(service, browser):
    browser.set_window_size(1280, 900)
    browser.get(lan_url(service))
    assert not browser.execute_script("return window.isSecureContext")
    wait(browser, lambda: "replab-polarity-minilm" in text(browser, "#model"), message="model card not filled")
    yield browser
    assert_clean(browser)


def test_one_tweet_and_a_batch_through_the_form(page, service):
    assert page.find_element(By.ID, "results").get_attribute("aria-live") == "polite"
    shown = classify_in_form(page, [SINGLE], "BMW")
    served = requests.post(service.url + "/classify", json={"text": SINGLE, "entity": "BMW"}, timeout=30).json()
    verdict = f"{served['label']} about BMW (related {100 * served['related']:.1f}%)"  # the default bundle has both heads
    assert served["about"]
    assert shown == [{"text": SINGLE, "label": served["label"], "verdict": verdict, "scores": as_shown(served)}]
    # the entity isolated from the words around it (a right-to-left one cannot reverse them), tweets in their direction
    assert text(page, "#results .verdict bdi") == "BMW"
    assert page.find_element(By.CSS_SELECTOR, "#results .tweet").get_attribute("dir") == "auto"
    shown = classify_in_form(page, BATCH, "BMW")
    answer = requests.post(service.url + "/classify", json={"tweets": [{"text": t, "entity": "BMW"} for t in BATCH]},
                           timeout=30).json()
    served = answer["results"]
    assert [s["text"] for s in shown] == BATCH
    assert [(s["label"], s["scores"]) for s in shown] == [(r["label"], as_shown(r)) for r in served]
    assert text(page, "#results .summary").startswith("3 tweets:")
    # the bars are drawn to the scores
    widths = page.execute_script("return [...document.querySelectorAll('#results .fill')]"
                                 ".map((f) => f.getBoundingClientRect().width / f.parentNode.getBoundingClientRect().width)")
    assert widths == pytest.approx([s for r in served for s in r["scores"].values()], abs=0.01)
    page.find_element(By.ID, "copy").click()
    wait(page, lambda: text(page, "#copy-status").startswith("Copied"), message="copy as JSON failed")
    assert json.loads(clipboard(page, service)) == {
        "results": [{"text": t, "entity": "BMW", **r} for t, r in zip(BATCH, served)], "model": answer["model"]}
    page.get(lan_url(service))
    wait(page, lambda: page.find_element(By.ID, "entity").get_attribute("value") == "BMW",
         message="entity not remembered")
    assert page.execute_script("return localStorage.getItem('reputation.entity')") == "BMW"


def test_input_over_the_limits_is_refused_before_sending_and_an_error_replaces_the_results(page):
    """The page reads MAX_TWEETS and MAX_TEXT_CHARS from /openapi.json (64 and 4000 here) and names the line; no
    request is sent (assert_clean: no 413 in the console), and no earlier answer stays on show or to copy."""
    classify_in_form(page, [SINGLE], "BMW")
    assert page.find_element(By.ID, "copy").is_enabled()

    def submit(value: str) -> str:
        page.execute_script("document.getElementById('tweet').value = arguments[0]", value)
        page.find_element(By.ID, "classify").click()
        wait(page, lambda: text(page, "#error"), message="no error shown")
        return text(page, "#error")

    assert submit("\n".join(f"tweet {i}" for i in range(65))) == \
        "65 tweets: this service takes at most 64 at a time (MAX_TWEETS)."
    assert page.find_elements(By.CSS_SELECTOR, "#results .result") == []
    assert not page.find_element(By.ID, "copy").is_enabled()
    assert submit(f"{SINGLE}\n\n" + "\u00e9" * 4001) == "Line 3 has 4001 characters: the limit is 4000 (MAX_TEXT_CHARS)."
    assert len(classify_in_form(page, [SINGLE], "BMW")) == 1 and text(page, "#error") == ""


def test_lines_are_named_as_in_the_box_and_lines_of_only_invisible_characters_are_left_out(service, browser):
    """A line of only zero-width characters looks blank and is left out as blank ones are; where the page cannot check
    (no /openapi.json read), the service's 'tweets[2]' becomes the box's line number."""
    lines = ["Loving my new BMW", "", "BMW recalls cars", "\u200b\u2066", "BMW opens a plant"]
    browser.get(lan_url(service))
    wait(browser, lambda: "replab-polarity-minilm" in text(browser, "#model"), message="model card not filled")
    wait(browser, lambda: browser.execute_script("return limits !== null"), message="/openapi.json not read")
    browser.execute_script("document.getElementById('tweet').value = arguments[0]", "\n".join(lines))
    browser.find_element(By.ID, "classify").click()
    wait(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, "#results .result")) == 3, message="no results")
    assert [s["text"] for s in shown_results(browser)] == [lines[0], lines[2], lines[4]] and text(browser, "#error") == ""
    browser.execute_script("limits = null")  # as if /openapi.json could not be read: the service refuses the line
    browser.execute_script("document.getElementById('tweet').value = arguments[0]", "\n".join(lines))
    browser.find_element(By.ID, "classify").click()
    wait(browser, lambda: text(browser, "#error"), message="no error shown")
    assert text(browser, "#error") == ("Line 4 must not be empty: it holds only invisible or control characters, which "
                                       "the model does not read (HTTP 400)")
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]  # read, and so cleared
    assert len(errors) == 1 and "status of 400" in errors[0], errors


def test_keyboard_only(page):
    active = lambda: page.switch_to.active_element.get_attribute("id")  # noqa: E731
    page.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert active() == "tweet"
    page.switch_to.active_element.send_keys(SINGLE)
    page.switch_to.active_element.send_keys(Keys.TAB)
    assert active() == "entity"
    page.switch_to.active_element.send_keys(Keys.TAB)
    assert active() == "classify"
    page.switch_to.active_element.send_keys(Keys.ENTER)
    wait(page, lambda: len(page.find_elements(By.CSS_SELECTOR, "#results .result")) == 1, message="Enter did not classify")
    tweet = page.find_element(By.ID, "tweet")
    tweet.send_keys(Keys.END, "\n", BATCH[0])
    tweet.send_keys(Keys.CONTROL, Keys.ENTER)
    wait(page, lambda: len(page.find_elements(By.CSS_SELECTOR, "#results .result")) == 2,
         message="Ctrl+Enter did not classify")
    outline = page.execute_script("const s = getComputedStyle(document.activeElement); return s.outlineStyle")
    assert outline != "none"


def test_live_panel_counts_every_worker(page, service, screenshots):
    wait(page, lambda: panel_total(page) is not None, message="live panel empty")
    before = panel_total(page)
    classify_in_form(page, [SINGLE], "BMW")
    classify_in_form(page, BATCH, "BMW")
    # More tweets, each on a new connection, until both workers have classified some (per the service itself).
    sent, pids = 0, set()
    while len(pids) < 2:
        assert sent < 200, "gunicorn never spread new connections over both workers"
        requests.post(service.url + "/classify", json={"text": f"BMW tweet {sent}", "entity": "BMW"}, timeout=30)
        sent += 1
        stats = requests.get(service.url + "/v1/stats", timeout=10).json()
        pids = {w["pid"] for w in stats["workers"] if w["tweets_last_60m"] > 0}
    assert pids == {w.pid for w in service.workers()}
    expected = before + 1 + len(BATCH) + sent
    wait(page, lambda: panel_total(page) == expected, timeout=15,
         message=f"panel shows {panel_total(page)} tweets, not {expected}")
    assert panel_total(page, 60) >= expected
    rows = page.find_elements(By.CSS_SELECTOR, "#live-workers tbody tr")
    assert len(rows) == 2
    for row in rows:
        memory = row.find_elements(By.TAG_NAME, "td")[0].text
        assert memory.endswith(" MB") and float(memory.split()[0]) > 20
    assert "/ " in text(page, "#latency") and text(page, "#latency").endswith("since start)")
    shot = save_screenshot(page, screenshots / "page.png")  # for the README
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "page.png")


def test_a_second_classify_waits_for_the_answer_to_the_first(page, service):
    """Ctrl+Enter pressed again while an answer is awaited sends nothing more: each press was a request of its own
    (the first answer enabled Classify again while the others were out, and answers could arrive out of order)."""
    def tweets_counted() -> int:
        return sum(requests.get(service.url + "/v1/stats", timeout=10).json()["last_5m"]["tweets"].values())

    before, shown = tweets_counted(), page.execute_script("return document.querySelector('#results .summary')")
    slow = {"offline": False, "latency": 1500, "downloadThroughput": -1, "uploadThroughput": -1}
    page.execute_cdp_cmd("Network.enable", {})
    page.execute_cdp_cmd("Network.emulateNetworkConditions", slow)
    try:
        tweet = page.find_element(By.ID, "tweet")
        tweet.clear()
        tweet.send_keys(SINGLE)
        for _ in range(3):
            tweet.send_keys(Keys.CONTROL, Keys.ENTER)
        wait(page, lambda: page.execute_script("return document.querySelector('#results .summary')") not in (None, shown)
             and page.find_element(By.ID, "classify").is_enabled(), message="no answer")
        time.sleep(2 * slow["latency"] / 1000)  # a request sent later would have reached the service by now
    finally:
        page.execute_cdp_cmd("Network.emulateNetworkConditions", {**slow, "latency": 0})
    assert tweets_counted() - before == 1


def test_typed_tweets_are_kept_in_no_file_of_the_browser(service, tmp_path):
    """The tweet box is no form field the browser keeps: after a tweet was classified, the page left and come back
    to, no file of the browser's profile holds its text once the browser has quit (Chromium wrote it into the
    profile's session file, for restoring the form: README, Privacy)."""
    marker = "zqx7741 marker tweet about BMW"
    profile = tmp_path / "profile"
    with chromium(profile) as driver:
        driver.get(lan_url(service))
        wait(driver, lambda: "replab-polarity-minilm" in text(driver, "#model"), message="model card not filled")
        classify_in_form(driver, [marker], "BMW")
        driver.get(lan_url(service) + "healthz")
        driver.back()
        wait(driver, lambda: "replab-polarity-minilm" in text(driver, "#model"), message="page not back")
    holding = [str(p.relative_to(profile)) for p in profile.rglob("*") if p.is_file() and not p.is_symlink()
               and any(m in p.read_bytes() for m in (marker.encode(), marker.encode("utf-16-le")))]
    assert holding == []


def test_a_browser_that_refuses_site_data_still_classifies(service):
    """Storage throws where the browser refuses site data: the page used to stop at its first line (the model card
    loading for ever, Classify reloading the page and the box emptied); it now works without remembering."""
    with chromium(prefs={"profile.default_content_setting_values.cookies": 2}) as driver:
        driver.get(lan_url(service))
        assert driver.execute_script("try { localStorage.length; return false; } catch { return true; }")
        wait(driver, lambda: "replab-polarity-minilm" in text(driver, "#model"), message="model card not filled")
        assert [r["text"] for r in classify_in_form(driver, [SINGLE], "BMW")] == [SINGLE]
        assert_clean(driver)


def test_phone_width_and_dark_theme(page, screenshots):
    light = page.execute_script("return getComputedStyle(document.body).backgroundColor")
    # A phone: 390 CSS pixels wide, laid out as a mobile browser does (by the page's viewport meta tag).
    page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                         {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
    page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        assert page.execute_script("return window.innerWidth") == 390
        classify_in_form(page, [SINGLE], "BMW")
        assert page.execute_script("return document.documentElement.scrollWidth") <= 390  # nothing sticks out
        cards = page.execute_script("return [...document.querySelectorAll('main > section:not([hidden])')]"
                                    ".map((s) => s.getBoundingClientRect().width)")
        assert len({round(w) for w in cards}) == 1 and cards[0] < 390  # one column
        assert page.execute_script("return getComputedStyle(document.body).backgroundColor") != light
        save_screenshot(page, screenshots / "page-phone-dark.png")
    finally:
        page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def test_corrections_from_the_page_and_a_service_that_goes_away(tmp_path, screenshots):
    """With FEEDBACK_FILE each result can be corrected (a label, or not about the entity) and the line is stored; a
    model card that could not be read is tried again; a stopped service is said to be unreachable, in words."""
    feedback = tmp_path / "feedback.jsonl"
    with serve(TINY_RELATED_BUNDLE, workers=1, threads=2, tflite_threads=1, log=tmp_path / "gunicorn.log",
               FEEDBACK_FILE=str(feedback)) as svc, \
            chromium() as driver:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/v1/model"]})
        driver.get(lan_url(svc))
        wait(driver, lambda: "cannot be reached" in text(driver, "#model"), message="no error on the model card")
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        wait(driver, lambda: "tiny-related-test" in text(driver, "#model"), timeout=15, message="model card not retried")
        classify_in_form(driver, BATCH[:2], "BMW")
        first, second = driver.find_elements(By.CSS_SELECTOR, "#results .result")
        for item, choice in ((first, "negative"), (second, "")):
            item.find_element(By.CSS_SELECTOR, f".correction option[value='{choice}']").click()
            item.find_element(By.CSS_SELECTOR, ".correction button").click()
            status = item.find_element(By.CSS_SELECTOR, ".correction [role=status]")
            wait(driver, lambda: status.text.startswith("Stored"), message="correction not stored")  # noqa: B023
        # stored once: Correct stays off until another choice (it was on again, and a second click a second line)
        buttons = [item.find_element(By.CSS_SELECTOR, ".correction button") for item in (first, second)]
        assert [b.is_enabled() for b in buttons] == [False, False]
        stored = [json.loads(line) for line in feedback.read_text().splitlines()]
        assert [(s["text"], s["entity"], s["label"], s.get("related")) for s in stored] == \
            [(BATCH[0], "BMW", "negative", None), (BATCH[1], "BMW", None, False)]
        first.find_element(By.CSS_SELECTOR, ".correction option[value='neutral']").click()
        assert buttons[0].is_enabled()
        first.find_element(By.CSS_SELECTOR, ".correction option[value='negative']").click()  # the one stored
        assert not buttons[0].is_enabled()
        assert len(driver.find_elements(By.CSS_SELECTOR, "#results .correction option")) == 2 * 4  # 3 labels, not about
        save_screenshot(driver, screenshots / "page-feedback.png")
        # a phone, and a long entity in the "not about" choice: the control fits (it stuck out, 398 pixels in 345)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 360, "height": 800, "deviceScaleFactor": 1, "mobile": True})
        classify_in_form(driver, BATCH[:1], "Bayerische Motoren Werke AG")
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 360
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        svc.stop()
        driver.find_element(By.ID, "classify").click()
        unreachable = "The service cannot be reached: is it running, and is this its address?"
        wait(driver, lambda: text(driver, "#error") == unreachable, message="unreachable service not said")
        wait(driver, lambda: text(driver, "#live-status") == unreachable, timeout=15, message="live panel not told")
        assert driver.find_element(By.ID, "live-status").get_attribute("class") == "error"


def test_the_csp_checks_catch_an_inline_script(service, browser):
    """The page's CSP blocks inline script, and assert_clean notices: the checks above can fail."""
    browser.get(lan_url(service))
    browser.execute_script("const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
                           "document.body.append(s);")
    wait(browser, lambda: browser.execute_script("return window.cspViolations.length") > 0, message="no violation seen")
    assert browser.execute_script("return window.ran") is None
    with pytest.raises(AssertionError):
        assert_clean(browser)


def test_auth_flow_with_wrong_and_right_token(tmp_path, screenshots):
    """Also: with the access log on at DEBUG, what the page sends leaves no tweet text in the service's log; the
    verdict is the bundle's (its related_threshold set between the two tweets' probabilities), not one at 0.5; the
    model card shows the bundle's logit offsets."""
    from app.bundle import Bundle
    from app.classifier import Classifier

    related = [p.related for p in Classifier(Bundle.load(TINY_RELATED_BUNDLE), threads=1).classify(BATCH[:2],
                                                                                                   ["BMW"] * 2)]
    threshold = splitting_threshold(related)
    bundle = with_manifest(TINY_RELATED_BUNDLE, tmp_path / "bundle", related_threshold=threshold,
                           label_offsets={"negative": -0.25})
    with serve(bundle, workers=2, threads=4, tflite_threads=1, log=tmp_path / "gunicorn.log",
               AUTH_TOKEN=TOKEN, ACCESS_LOG="1", LOG_LEVEL="DEBUG") as svc, chromium() as driver:
        driver.get(lan_url(svc))
        wait(driver, lambda: driver.find_element(By.ID, "auth").is_displayed(), message="no token field")
        assert driver.switch_to.active_element.get_attribute("id") == "token"
        assert driver.find_element(By.ID, "token").get_attribute("type") == "password"
        assert "waiting for the access token" in text(driver, "#model")
        # a character no header carries (a phone keyboard's): said of the token, which was "cannot be reached"
        driver.find_element(By.ID, "token").send_keys("abcdefghijklmnop1234\u20ac", Keys.ENTER)
        wait(driver, lambda: "holds another character" in text(driver, "#auth-status"), message="bad token not said")
        assert driver.execute_script("return sessionStorage.getItem('reputation.token')") is None
        assert "cannot be reached" not in text(driver, "#model")
        driver.find_element(By.ID, "token").clear()
        driver.find_element(By.ID, "token").send_keys("wrong-token-0123456789", Keys.ENTER)
        wait(driver, lambda: "not accepted" in text(driver, "#auth-status"), message="wrong token not reported")
        assert driver.execute_script("return sessionStorage.getItem('reputation.token')") is None
        driver.find_element(By.ID, "token").send_keys(TOKEN, Keys.ENTER)
        wait(driver, lambda: "tiny-related-test" in text(driver, "#model"), message="model card not filled")
        assert "accepted" in text(driver, "#auth-status")
        assert driver.execute_script("return sessionStorage.getItem('reputation.token')") == TOKEN
        assert TOKEN not in driver.execute_script("return JSON.stringify(localStorage)")
        shown = classify_in_form(driver, BATCH[:2], "BMW")
        served = requests.post(svc.url + "/classify", headers={"Authorization": f"Bearer {TOKEN}"},
                               json={"tweets": [{"text": t, "entity": "BMW"} for t in BATCH[:2]]}, timeout=30).json()
        assert [r["about"] for r in served["results"]] == [p >= threshold for p in related]
        assert {r["about"] for r in served["results"]} == {True, False}
        for s, r in zip(shown, served["results"]):
            assert s["verdict"] == f"{r['label']} {'' if r['about'] else 'not '}about BMW (related " \
                f"{100 * r['related']:.1f}%)"
        assert f"about the entity from related {100 * threshold:.1f}%" in text(driver, "#model")
        offsets = driver.find_element(By.XPATH, "//dl[@id='model']/dt[.='Logit offsets']/following-sibling::dd[1]")
        assert offsets.text == "negative -0.25"
        wait(driver, lambda: (panel_total(driver) or 0) >= 2, timeout=15, message="live panel not filled")
        save_screenshot(driver, screenshots / "page-related.png")
        assert_clean(driver, allowed_401=1)  # the wrong token's answer
        # A token that stops working (the service restarted with another) sends the page back to the field.
        driver.execute_script("sessionStorage.setItem('reputation.token', 'another-token-0123456789')")
        driver.refresh()
        wait(driver, lambda: "not accepted" in text(driver, "#auth-status"), message="stale token not reported")
        assert_clean(driver, allowed_401=1)
        log = svc.log_text()
    assert '"POST /classify HTTP/1.1" 200' in log and '"GET /v1/stats HTTP/1.1" 200' in log
    assert not any(tweet in log or tweet.split()[0] in log for tweet in BATCH[:2])
