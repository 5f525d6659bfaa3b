"""End to end in a real browser: Debian's chromium driven by Playwright, the dashboard started with
``streamlit run`` and the real API, both as subprocesses. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import csv
import re
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.dashboard.dash_helpers import APP, SCREENSHOTS, Api, Process, free_port, spawn, wait_for
from tests.helpers.required import require_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REGIONS = {"Hovedstaden", "Midtjylland", "Nordjylland", "Sjælland", "Syddanmark"}


@pytest.fixture(scope="module")
def dashboard_url(api_server: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run dashboard/app.py`` on a free loopback port, talking to the real API."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
    ]
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    process: Process = spawn(command, log, {"SUNDSTAT_API_URL": api_server.url})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/_stcore/health", process)
        yield url
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium (Playwright cannot download its own browser here)."""
    chromium = require_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(chromium),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, dashboard_url: str) -> Iterator[Page]:
    """A fresh browser session (a fresh Streamlit session) on the dashboard's first page."""
    context = browser.new_context(viewport={"width": 1400, "height": 2000}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(dashboard_url)
    tab.get_by_role("heading", name="Catalog").wait_for()
    settle(tab)
    yield tab
    context.close()


def settle(tab: Page) -> None:
    """Wait until Streamlit has finished the current run."""
    tab.wait_for_timeout(200)
    tab.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000)


def shoot(tab: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def sign_in(tab: Page, token: str) -> None:
    tab.locator(".st-key-signin_token input").fill(token)
    tab.locator(".st-key-signin_button button").click()
    tab.get_by_text("Signed in as").wait_for()
    settle(tab)


def go(tab: Page, page_title: str, heading: str | None = None) -> None:
    tab.get_by_role("link", name=page_title).click()
    tab.get_by_role("heading", name=heading or page_title).wait_for()
    settle(tab)


def pick(tab: Page, key: str, option: str) -> None:
    """Choose ``option`` in the multiselect or selectbox with this key by typing it."""
    tab.locator(f".st-key-{key}").click()
    tab.keyboard.type(option)
    tab.keyboard.press("Enter")
    tab.keyboard.press("Escape")
    settle(tab)


def remaining(tab: Page) -> str:
    value = tab.locator('.st-key-project_remaining [data-testid="stMetricValue"]')
    return str(value.inner_text()).strip()


def run_and_time(tab: Page) -> float:
    """Press Run and return the seconds until the new release's chart is visible."""
    caption = tab.locator(".st-key-explore_result_release_id")
    before = caption.inner_text() if caption.count() else ""
    started = time.perf_counter()
    tab.locator(".st-key-explore_run button").click()
    tab.wait_for_function(
        """before => {
            const id = document.querySelector('.st-key-explore_result_release_id');
            const chart = document.querySelector('.st-key-explore_result_chart canvas, .st-key-explore_result_chart svg');
            return id && id.innerText !== before && chart && chart.getBoundingClientRect().height > 0;
        }""",
        arg=before,
    )
    elapsed = time.perf_counter() - started
    settle(tab)
    return elapsed


def test_analyst_runs_a_grouped_count_and_sees_chart_table_csv_and_budget(
    page: Page, api_server: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    project, token = api_server.new_project(epsilon=2.0)
    sign_in(page, token)
    go(page, "My project")
    assert remaining(page) == "2"

    go(page, "Explore")
    pick(page, "explore_group_by", "cpr.region")
    page.locator(".st-key-explore_preview").get_by_text("5 cells.").wait_for()
    shoot(page, "explore-preview")
    timings = [run_and_time(page)]
    table = page.locator(".st-key-explore_result_table")
    assert table.is_visible()
    shoot(page, "explore-result")

    with page.expect_download() as info:
        page.locator(".st-key-explore_result_csv button").click()
    rows = list(csv.DictReader(Path(info.value.path()).read_text(encoding="utf-8").splitlines()))
    assert {r["cpr.region"] for r in rows} == REGIONS
    assert all(r["value"].startswith("<") or int(r["value"]) >= 0 for r in rows)

    for group in ("cpr.sex", "cpr.age_band"):  # two more distinct queries, for the timing
        pick(page, "explore_group_by", group)
        timings.append(run_and_time(page))
    with capsys.disabled():
        print(
            f"\nRun -> chart visible: median {statistics.median(timings):.2f} s "
            f"over {len(timings)} runs ({', '.join(f'{t:.2f}' for t in timings)})"
        )

    go(page, "My project")
    assert remaining(page) == "1.7"  # three releases of epsilon 0.1 each
    page.locator(".st-key-project_gauge canvas, .st-key-project_gauge svg").first.wait_for()
    page.locator(".st-key-project_releases").wait_for()
    settle(page)
    shoot(page, "my-project")


def test_applicant_inside_the_policy_gets_a_token_and_signs_in(page: Page, api_server: Api) -> None:
    with api_server.admin() as admin:
        assert admin.post(
            "/v1/institutions", json={"id": "au-browser", "name": "Aarhus Universitet"}
        ).is_success
        issued = admin.post(
            "/v1/institutions/au-browser/applicants", json={"name": "Bo", "email": "bo@au.dk"}
        )
    go(page, "Apply")
    for key, value in (
        ("apply_title", "Metformin and income"),
        ("apply_institution", "Aarhus Universitet"),
        ("apply_name", "Bo Forsker"),
        ("apply_email", "bo@example.dk"),
        ("apply_applicant_token", issued.json()["token"]),
    ):
        page.locator(f".st-key-{key} input").fill(value)
    page.locator(".st-key-apply_summary textarea").fill("Median income of persons on metformin.")
    page.locator(".st-key-apply_epsilon input").fill("0.5")
    page.locator(".st-key-apply_submit button").click()
    token = page.locator(".st-key-apply_token code")
    token.wait_for()
    assert token.inner_text().strip().startswith("sst_")
    settle(page)
    shoot(page, "apply-approved")
    page.locator(".st-key-apply_signin button").click()
    page.get_by_text("Signed in as").wait_for()
    go(page, "Explore")
    page.locator(".st-key-explore_preview").wait_for()


def test_switching_to_danish(page: Page) -> None:
    page.locator(".st-key-lang").get_by_text("Dansk").click()
    page.get_by_role("heading", name="Katalog").wait_for()
    settle(page)
    assert page.get_by_role("link", name="Udforsk").is_visible()
    assert page.get_by_text("Søg i registre og variable").is_visible()
    page.locator(".st-key-catalog_code_search input").fill("diabetes")
    page.keyboard.press("Enter")
    page.get_by_text(re.compile(r"^\d{1,2} af 869 koder$")).wait_for()  # a handful of the 869 codes
    settle(page)
    shoot(page, "catalog-danish")
    go(page, "Åbenhed")
    assert page.get_by_text("Loggens hovedhash").is_visible()


def test_analyst_writes_sql_runs_it_and_sees_the_table(page: Page, api_server: Api) -> None:
    _, token = api_server.new_project(epsilon=2.0)
    sign_in(page, token)
    go(page, "Explore")
    page.get_by_role("tab", name="SQL", exact=True).first.click()
    editor = page.locator(".st-key-explore_sql_text textarea")
    editor.fill("SELECT sex, COUNT(*) AS persons\nFROM cpr\nGROUP BY sex")
    editor.press("Control+Enter")  # Streamlit takes a text area's value on Ctrl+Enter (or blur)
    page.locator(".st-key-explore_sql_preview").get_by_text("2 cells.").wait_for()
    settle(page)
    page.locator(".st-key-explore_sql_run button").click()
    page.locator(".st-key-explore_sql_result_release_id").wait_for()
    table = page.locator(".st-key-explore_sql_result_table")
    table.wait_for()
    page.locator(
        ".st-key-explore_sql_result_chart canvas, .st-key-explore_sql_result_chart svg"
    ).first.wait_for()
    settle(page)
    assert table.is_visible()
    assert table.locator('[data-testid="stDataFrame"]').count() == 1
    shoot(page, "explore-sql-result")
