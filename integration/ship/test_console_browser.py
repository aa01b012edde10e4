"""The web console in headless Chromium (Debian's chromium + chromium-driver, driven by
selenium) against single mode: sign in with the printed console URL or a pasted token, pick tool and folder,
send a prompt that makes the real claude ask for a Write, click Allow, see the tool result, the response and
the file on disk; deny and interrupt; the idle warning with "Keep it running", then the reap. Screenshots go to artifacts/.

Chromium runs with loopback only (the suite runs under `unshare -n`), as root with --no-sandbox, a fresh
profile, and background networking / component updates switched off.
"""
from __future__ import annotations

import os
import re
import threading
import urllib.request
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

import harness
from fakes.fake_anthropic import Text, ToolUse
from labsupport import LabCtrl, single_env, wait_until

from selenium import webdriver  # noqa: E402  (selenium: scripts/setup.sh)
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

ARTIFACTS = harness.REPO_ROOT / "artifacts"
TURN = 90.0
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def first_executable(paths: tuple[str, ...]) -> str | None:
    return next((p for p in paths if os.access(p, os.X_OK)), None)


def tag() -> str:
    return uuid.uuid4().hex[:8]


# ---- fixtures ---------------------------------------------------------------------------------------


def start_console_lab(labs, lab_dir: Path, fake_api, name: str, **extra: str) -> tuple[LabCtrl, str, Path]:
    """Single mode on loopback with no authentication configured: labctrl generates a token and prints the
    console URL. Returns the controller, that URL and the user's workspace."""
    env = single_env(lab_dir, lab_dir / "no-tokens", fake_api, **extra)
    for k in ("LAB_TOKENS_FILE", "LAB_JWT_SECRET"):
        env.pop(k)
    root = lab_dir / f"ws-{name}"
    env["LAB_WORKSPACE_ROOT"] = str(root)
    lab = labs.start(env, name=name)
    urls = [l.split("labctrl: console ", 1)[1] for l in lab.stdout_lines if l.startswith("labctrl: console ")]
    assert urls and urls[0].startswith(f"http://127.0.0.1:{lab.port}/?token="), lab.stdout_lines
    return lab, urls[0], root / env.get("LAB_LOCAL_USER", "local")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    chromium = first_executable(CHROMIUM_CANDIDATES)
    driver_bin = first_executable(DRIVER_CANDIDATES)
    if not chromium or not driver_bin:
        pytest.fail("chromium / chromedriver not installed (scripts/setup.sh installs Debian's chromium and "
                    "chromium-driver)", pytrace=False)
    profile = tmp_path_factory.mktemp("chromium-profile")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", f"--user-data-dir={profile}", "--window-size=1280,1000",
                 "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--disable-breakpad", "--disable-domain-reliability",
                 "--disable-client-side-phishing-detection", "--metrics-recording-only", "--no-pings",
                 "--no-proxy-server", "--password-store=basic", "--use-mock-keychain", "--lang=en-US",
                 "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,"
                 "CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    log = profile.parent / "chromedriver.log"
    # Explicit driver and browser paths: Selenium Manager (which would download drivers) is never asked.
    os.environ.setdefault("SE_OFFLINE", "true")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    service = Service(executable_path=driver_bin, log_output=str(log))
    try:
        driver = webdriver.Chrome(service=service, options=opts)
    except WebDriverException as e:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        pytest.fail(f"chromium did not start: {e.msg}\n{tail}", pytrace=False)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            service.stop()


@pytest.fixture
def shot(browser: webdriver.Chrome, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Path]]:
    """`shot(name)` saves artifacts/<name>.png; a failing test leaves artifacts/<test>-failure.png."""
    ARTIFACTS.mkdir(exist_ok=True)

    def save(name: str) -> Path:
        p = ARTIFACTS / f"{name}.png"
        browser.save_screenshot(str(p))
        return p

    yield save
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        try:
            save(f"{request.node.name}-failure")
        except WebDriverException:
            pass


# ---- page helpers ----------------------------------------------------------------------------------


def wait(driver: webdriver.Chrome, cond: Callable[[webdriver.Chrome], object], timeout: float, what: str):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(cond)
    except Exception:
        stream = driver.execute_script("return document.getElementById('stream') ? document.getElementById('stream').innerText : ''")
        pytest.fail(f"timed out after {timeout}s waiting for {what}\n--- stream ---\n{stream}", pytrace=False)


def visible(driver: webdriver.Chrome, css: str) -> bool:
    els = driver.find_elements(By.CSS_SELECTOR, css)
    return bool(els) and els[0].is_displayed()


def items(driver: webdriver.Chrome, kind: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, f"#stream li.{kind}")]


def severe_console_messages(driver: webdriver.Chrome) -> list[str]:
    """JavaScript errors and CSP violations the page logged."""
    return [m["message"] for m in driver.get_log("browser") if m.get("level") == "SEVERE"]


def start_session(driver: webdriver.Chrome, tool: str, folder: str) -> None:
    Select(driver.find_element(By.ID, "tool")).select_by_value(tool)
    f = driver.find_element(By.ID, "folder")
    f.clear()
    f.send_keys(folder)
    driver.find_element(By.ID, "start").click()
    wait(driver, lambda d: d.find_element(By.ID, "conn").text.startswith(f"{tool} · "), TURN, "session_start")


def send_prompt(driver: webdriver.Chrome, text: str) -> None:
    driver.find_element(By.ID, "prompt").send_keys(text)
    driver.find_element(By.ID, "send").click()


# ---- tests -------------------------------------------------------------------------------------------


def test_console_claude_turn_with_permission(browser, shot, labs, lab_dir, fake_api):
    lab, url, home = start_console_lab(labs, lab_dir, fake_api, "console")
    project = home / "proj"
    project.mkdir(parents=True)
    t = tag()
    target = project / f"hello-{t}.txt"
    prompt = f"Please create the greeting file [{t}]"
    fake_api.script(prompt, [
        ToolUse("Write", {"file_path": str(target), "content": f"hello from the console {t}\n"},
                text_before="I will write the file."),
        Text(f"Created hello-{t}.txt for you."),
    ])

    # Sign in with the printed URL: the token is taken from the address bar and removed from it.
    browser.get(url)
    wait(browser, lambda d: visible(d, "#setup"), 30, "the session form after signing in with the URL")
    assert browser.find_element(By.ID, "user").text == "local"
    assert "token" not in browser.current_url
    assert not visible(browser, "#signin")

    # Pick tool and folder, start: the controller spawns the worker (progress), then session_start.
    start_session(browser, "claude", "proj")
    assert browser.find_element(By.ID, "conn").text == f"claude · {os.path.realpath(project)}"
    assert browser.execute_script("return document.getElementById('progress').textContent") != "connecting…"

    send_prompt(browser, prompt)
    wait(browser, lambda d: visible(d, "#stream li.permission button.allow"), TURN, "the permission request")
    perm = browser.find_element(By.CSS_SELECTOR, "#stream li.permission")
    assert "Write" in perm.text and str(target) in perm.text
    assert not target.exists(), "the tool ran before permission was given"
    assert any(prompt in s for s in items(browser, "user"))
    assert any("I will write the file." in s for s in items(browser, "assistant"))
    assert any("WRITE" in s.upper() and str(target) in s for s in items(browser, "tool_call"))

    perm.find_element(By.CSS_SELECTOR, "button.allow").click()
    wait(browser, lambda d: any(f"Created hello-{t}.txt" in s for s in items(d, "response")), TURN, "the response")
    results = items(browser, "tool_result")
    assert any(str(target) in s for s in results), results
    assert target.read_text() == f"hello from the console {t}\n"
    assert "allowed" in perm.get_attribute("class")
    assert all(b.get_attribute("disabled") for b in perm.find_elements(By.TAG_NAME, "button"))
    # The final `response` is shown once (it repeats the assistant text), and nothing went wrong.
    assert sum(f"Created hello-{t}.txt" in s for s in browser.find_element(By.ID, "stream").text.split("\n")) == 1
    assert items(browser, "error") == []
    shot("console")
    assert severe_console_messages(browser) == []

    # Deny: the tool does not run, claude is told so, and the turn ends with its answer.
    denied = project / f"denied-{t}.txt"
    prompt2 = f"Now write a forbidden file [{t}]"
    fake_api.script(prompt2, [ToolUse("Write", {"file_path": str(denied), "content": "no\n"}),
                              Text(f"Fine, not writing it [{t}].")])
    send_prompt(browser, prompt2)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#stream li.permission button.deny:not([disabled])")) == 1,
         TURN, "the second permission request")
    browser.find_element(By.CSS_SELECTOR, "#stream li.permission button.deny:not([disabled])").click()
    wait(browser, lambda d: any(f"Fine, not writing it [{t}]." in s for s in items(d, "response")), TURN, "the answer after deny")
    assert any("Denied by the user" in s for s in items(browser, "tool_result")), items(browser, "tool_result")
    assert not denied.exists()

    # Interrupt while the model is still "typing": the turn ends with an error item, the session goes on.
    hold = threading.Event()
    prompt3 = f"Tell a long story [{t}]"
    fake_api.script(prompt3, Text(f"Once upon a time [{t}] ...", chunks=4, hold=hold, hold_timeout=40))
    try:
        send_prompt(browser, prompt3)
        fake_api.wait_for_request(lambda r: r.prompt is not None and prompt3 in r.prompt, TURN)
        browser.find_element(By.ID, "interrupt").click()
        wait(browser, lambda d: any("was interrupted" in s for s in items(d, "notice")), TURN, "the interrupted turn")
    finally:
        hold.set()
    assert browser.find_element(By.ID, "conn").text.startswith("claude · ")
    assert items(browser, "error") == []
    shot("console-deny-interrupt")

    # Sign out, then sign in by pasting a token: a wrong one is refused with a message, the right one works.
    token = url.split("token=", 1)[1]
    browser.find_element(By.ID, "signout").click()
    wait(browser, lambda d: visible(d, "#signin"), 10, "the sign-in form")
    field = browser.find_element(By.ID, "token")
    field.send_keys("wrong-token-0000000000000000")
    browser.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    wait(browser, lambda d: visible(d, "#signin-error"), 10, "the sign-in error")
    assert "not accepted" in browser.find_element(By.ID, "signin-error").text
    field.clear()
    field.send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "#signin-form button[type=submit]").click()
    wait(browser, lambda d: visible(d, "#setup"), 10, "the session form after pasting the token")
    assert browser.find_element(By.ID, "user").text == "local"
    # Reloading keeps the session's sign-in (sessionStorage), without the token in the URL.
    browser.refresh()
    wait(browser, lambda d: visible(d, "#setup"), 10, "the session form after a reload")
    # The only thing the browser logged since: the refused token's 401.
    assert all("/v1/me" in m and "401" in m for m in severe_console_messages(browser))
    lab.stop()


def test_console_idle_warning_keep_and_reap(browser, shot, labs, lab_dir, fake_api):
    """The in-band idle warning: shown with a countdown, "Keep it running" cancels it on the controller,
    and without activity the worker is reaped and the page says so."""
    lab, url, home = start_console_lab(labs, lab_dir, fake_api, "idle", LAB_REAPER_INTERVAL_SECS="0.2",
                                       LAB_IDLE_TIMEOUT_SECS="5", LAB_IDLE_WARNING_SECS="3.5")
    browser.execute_script("sessionStorage.clear()")
    browser.get(url)
    wait(browser, lambda d: visible(d, "#setup"), 30, "the session form")
    start_session(browser, "claude", ".")
    wait(browser, lambda d: visible(d, "#warning"), 30, "the idle warning")
    assert "will be stopped in" in browser.find_element(By.ID, "warning-text").text
    shot("console-idle-warning")
    browser.find_element(By.ID, "keep").click()
    wait(browser, lambda d: not visible(d, "#warning"), 5, "the warning to go away")
    wait_until(lambda: "idle warning cancelled" in lab.log_text(), 10, "the controller to cancel the warning")
    assert browser.find_element(By.ID, "conn").text.startswith("claude · ")
    # No more activity: warned again, then reaped; the page shows why and that the socket closed.
    wait(browser, lambda d: any("stopped" in s.lower() for s in items(d, "notice")), 30, "the reap notice")
    wait(browser, lambda d: d.find_element(By.ID, "conn").text.startswith("closed"), 10, "the closed socket")
    assert not visible(browser, "#warning")
    shot("console-idle-reaped")
    assert severe_console_messages(browser) == []
    lab.stop()


def test_console_assets_are_self_contained(labs, lab_dir, fake_api):
    """No external resources and a strict CSP: the console works offline and loads nothing from elsewhere."""
    lab, url, _ = start_console_lab(labs, lab_dir, fake_api, "assets")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for path, ctype in (("/", "text/html"), ("/console.js", "text/javascript"), ("/console.css", "text/css")):
        with opener.open(f"http://127.0.0.1:{lab.port}{path}", timeout=10) as r:
            body = r.read().decode()
            assert r.headers["Content-Type"].startswith(ctype)
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert not re.search(r"(src|href)=\"(https?:)?//", body), path
        assert "http://" not in body.replace("http://www.w3.org", "") and "https://" not in body, path
    lab.stop()
