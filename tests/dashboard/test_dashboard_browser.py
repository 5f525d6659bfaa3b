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
from playwright.sync_api import Browser, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from service.cli_commands import STREAMLIT_OPTIONS
from tests.dashboard.dash_helpers import APP, SCREENSHOTS, Api, Process, free_port, spawn, wait_for
from tests.helpers.browser import browser_fixture  # noqa: F401

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
        *STREAMLIT_OPTIONS,  # as ``sundstat serve`` starts it: no developer toolbar
    ]
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    process: Process = spawn(command, log, {"SUNDSTAT_API_URL": api_server.url})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/_stcore/health", process)
        yield url
    finally:
        process.stop()


@pytest.fixture
def page(browser: Browser, dashboard_url: str) -> Iterator[Page]:
    """A fresh browser session (a fresh Streamlit session) on the dashboard's first page."""
    context = browser.new_context(viewport={"width": 1400, "height": 2000}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(dashboard_url)
    tab.get_by_role("heading", name="Catalog").wait_for()
    settle(tab, after=0)
    yield tab
    context.close()


def runs(tab: Page) -> int:
    """How many runs the app has finished in this session (its ``st-key-app_run_<n>`` marker)."""
    return int(
        tab.evaluate(
            """() => {
                const marker = document.querySelector('[class*="st-key-app_run_"]');
                const found = marker && marker.className.match(/st-key-app_run_(\\d+)/);
                return found ? Number(found[1]) : 0;
            }"""
        )
    )


def settle(tab: Page, after: int) -> None:
    """Wait for the app's own ready state: a run later than ``after`` has finished (the app's marker)
    and Streamlit's running indicator is gone. No fixed sleep: the marker says the run is done."""
    tab.wait_for_function(
        """after => {
            const marker = document.querySelector('[class*="st-key-app_run_"]');
            const found = marker && marker.className.match(/st-key-app_run_(\\d+)/);
            return found && Number(found[1]) > after
                && !document.querySelector('[data-testid="stStatusWidget"]');
        }""",
        arg=after,
        timeout=60_000,
    )


def shoot(tab: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def click(tab: Page, selector: str) -> None:
    """Click a button and wait until the run it starts has finished."""
    before = runs(tab)
    tab.locator(selector).click()
    settle(tab, before)


def sign_in(tab: Page, token: str) -> None:
    tab.locator(".st-key-signin_token input").fill(token)
    click(tab, ".st-key-signin_button button")
    tab.get_by_text("Signed in as").wait_for()


def sign_out(tab: Page) -> None:
    click(tab, ".st-key-signout_button button")
    tab.locator(".st-key-signin_token input").wait_for()


def go(tab: Page, page_title: str, heading: str | None = None) -> None:
    before = runs(tab)
    tab.get_by_role("link", name=page_title).click()
    tab.get_by_role("heading", name=heading or page_title).wait_for()
    settle(tab, before)


def pick(tab: Page, key: str, option: str) -> None:
    """Choose ``option`` in the multiselect or selectbox with this key by typing it.

    As a person does: open the list, type, and press Enter only once the list shows the typed option.
    On a busy machine the click can land while the widget is being redrawn, so the list does not open
    or the text goes nowhere; a person then clicks again, and so does this (at most three times)."""
    before = runs(tab)
    box = tab.locator(f".st-key-{key}")
    for attempt in range(3):
        box.click()
        try:
            tab.locator('[role="listbox"]').wait_for(timeout=10_000)
            box.locator("input").fill(option)
            tab.wait_for_function(
                """text => {
                    const options = [...document.querySelectorAll('[role="listbox"] [role="option"]')];
                    return options.length > 0 && options.some(o => o.innerText.startsWith(text));
                }""",
                arg=option,
                timeout=10_000,
            )
            break
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
            tab.keyboard.press("Escape")
    tab.keyboard.press("Enter")
    tab.keyboard.press("Escape")
    settle(tab, before)


def remaining(tab: Page) -> str:
    value = tab.locator('.st-key-project_remaining [data-testid="stMetricValue"]')
    return str(value.inner_text()).strip()


def run_and_time(tab: Page, prefix: str = "explore") -> float:
    """Press Run and return the seconds until the new release's chart is visible."""
    caption = tab.locator(f".st-key-{prefix}_result_release_id")
    shown = caption.inner_text() if caption.count() else ""
    before = runs(tab)
    started = time.perf_counter()
    tab.locator(f".st-key-{prefix}_run button").click()
    tab.wait_for_function(
        """([prefix, shown]) => {
            const id = document.querySelector(`.st-key-${prefix}_result_release_id`);
            const chart = document.querySelector(
                `.st-key-${prefix}_result_chart canvas, .st-key-${prefix}_result_chart svg`);
            return id && id.innerText !== shown && chart && chart.getBoundingClientRect().height > 0;
        }""",
        arg=[prefix, shown],
    )
    elapsed = time.perf_counter() - started
    settle(tab, before)
    return elapsed


def page_text(tab: Page) -> str:
    return str(tab.locator("body").inner_text())


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
    table.locator("th").first.wait_for()  # the table's code is loaded on its first use
    headers = table.locator("th").all_inner_texts()
    assert "Region of residence" in headers and "95% CI" in headers, headers
    shown = table.inner_text()
    assert not any(word in shown for word in ("cpr.", "ci_low", "None", "nan")), shown
    assert "Capital Region" in shown or "Hovedstaden" in shown, shown  # the catalog's labels
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
    shoot(page, "explore-three-groups")

    go(page, "My project")
    assert remaining(page) == "1.7"  # three releases of epsilon 0.1 each
    page.locator(".st-key-project_gauge canvas, .st-key-project_gauge svg").first.wait_for()
    page.locator(".st-key-project_releases").wait_for()
    picker = page.locator(".st-key-project_release_pick input").input_value()
    assert picker.startswith(
        "Number of persons (cpr) · by Region of residence, Sex, 10-year age band · ε 0.1"
    ), picker
    shoot(page, "my-project")


def test_enter_in_the_group_by_picker_adds_one_variable_not_all_matches(page: Page, api_server: Api) -> None:
    _, token = api_server.new_project(epsilon=2.0)
    sign_in(page, token)
    go(page, "Explore")
    pick(page, "explore_group_by", "cpr.age_band")  # matches cpr.age_band and cpr.age_band_5
    preview = page.locator(".st-key-explore_preview")
    preview.get_by_text("10 cells.").wait_for()  # the ten 10-year bands, not 10 x 20 nested cells
    assert "same variable twice" not in preview.inner_text()


def test_sign_out_forgets_everything_of_the_analyst(page: Page, api_server: Api) -> None:
    project_a, token_a = api_server.new_project(epsilon=2.0)
    project_b, token_b = api_server.new_project(epsilon=3.0)
    sign_in(page, token_a)
    go(page, "Explore")
    pick(page, "explore_group_by", "cpr.sex")
    run_and_time(page)
    caption = page.locator(".st-key-explore_result_release_id").inner_text()
    release_a = re.search(r"r_[0-9a-f]{16}", caption)
    assert release_a, caption
    go(page, "My project")
    click(page, ".st-key-project_release_open button")
    page.locator(".st-key-project_result_release_id").wait_for()
    assert remaining(page) == "1.9"
    sign_out(page)

    sign_in(page, token_b)
    for title in ("My project", "Explore", "Apply", "Catalog"):
        go(page, title)
        text = page_text(page)
        for trace in (project_a, token_a, release_a.group(0), "1.9"):
            assert trace not in text, (title, trace)
        assert not page.locator('[class*="st-key-explore_result"], [class*="st-key-project_result"]').count()
    go(page, "My project")
    assert remaining(page) == "3" and project_b in page_text(page)
    shoot(page, "signed-in-as-b")


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
    click(page, ".st-key-apply_submit button")
    token = page.locator(".st-key-apply_token code")
    token.wait_for()
    analyst_token = token.inner_text().strip()
    assert analyst_token.startswith("sst_")
    shoot(page, "apply-approved")
    click(page, ".st-key-apply_signin button")
    page.get_by_text("Signed in as").wait_for()
    go(page, "Explore")
    page.locator(".st-key-explore_preview").wait_for()
    sign_out(page)
    go(page, "Apply")  # the one-time token is gone with the session it was shown in
    assert analyst_token not in page_text(page)
    assert not page.locator(".st-key-apply_token").count()


def test_switching_to_danish(page: Page, api_server: Api) -> None:
    before = runs(page)
    page.locator(".st-key-lang").get_by_text("Dansk").click()
    page.get_by_role("heading", name="Katalog").wait_for()
    settle(page, before)
    assert page.get_by_role("link", name="Udforsk").is_visible()
    assert page.get_by_text("Søg i registre og variable").is_visible()
    before = runs(page)
    page.locator(".st-key-catalog_code_search input").fill("diabetes")
    page.keyboard.press("Enter")
    page.get_by_text(re.compile(r"^\d{1,2} af 869 koder$")).wait_for()  # a handful of the 869 codes
    settle(page, before)
    shoot(page, "catalog-danish")
    go(page, "Åbenhed")
    assert page.get_by_text("Loggens hovedhash").is_visible()

    _, token = api_server.new_project(epsilon=2.0)
    sign_in_da(page, token)
    go(page, "Udforsk")
    pick(page, "explore_group_by", "cpr.age_band")
    pick(page, "explore_group_by", "cpr.sex")
    run_and_time(page)
    page.locator(".st-key-explore_result_table th").first.wait_for()
    headers = page.locator(".st-key-explore_result_table th").all_inner_texts()
    assert "10-års aldersgruppe" in headers and "Køn" in headers and "95% KI" in headers, headers
    assert "Kvinde" in page.locator(".st-key-explore_result_table").inner_text()
    shoot(page, "explore-danish")


def sign_in_da(tab: Page, token: str) -> None:
    tab.locator(".st-key-signin_token input").fill(token)
    click(tab, ".st-key-signin_button button")
    tab.get_by_text("Logget ind som").wait_for()


def test_transparency_fits_the_screen_and_no_developer_toolbar(page: Page, api_server: Api) -> None:
    page.set_viewport_size({"width": 1280, "height": 1600})
    go(page, "Transparency")
    page.locator(".st-key-transparency_registers").wait_for()
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the window"
    assert page.get_by_role("button", name="Deploy").count() == 0
    assert page.locator('[data-testid="stMainMenu"]').count() == 0
    page.locator(".st-key-transparency_registers th").first.wait_for()
    headers = page.locator(".st-key-transparency_registers th").all_inner_texts()
    assert "Borne by all projects" in headers, headers
    shoot(page, "transparency")


def test_analyst_writes_sql_runs_it_and_sees_the_table(page: Page, api_server: Api) -> None:
    _, token = api_server.new_project(epsilon=2.0)
    sign_in(page, token)
    go(page, "Explore")
    page.get_by_role("tab", name="SQL", exact=True).first.click()
    editor = page.locator(".st-key-explore_sql_text textarea")
    editor.fill("SELECT sex, COUNT(*) AS persons\nFROM cpr\nGROUP BY sex")
    before = runs(page)
    editor.press("Control+Enter")  # Streamlit takes a text area's value on Ctrl+Enter (or blur)
    page.locator(".st-key-explore_sql_preview").get_by_text("2 cells.").wait_for()
    settle(page, before)
    run_and_time(page, "explore_sql")
    table = page.locator(".st-key-explore_sql_result_table")
    table.locator(
        '[data-testid="stTable"]'
    ).first.wait_for()  # drawn in the same run as the chart, maybe later
    assert table.is_visible()
    assert table.locator('[data-testid="stTable"]').count() == 1
    shoot(page, "explore-sql-result")


COHORT_NAME = "first-mi-browser"


def _type(tab: Page, key: str, text: str) -> None:
    """Type into a text input and press Enter, then wait for the run it starts."""
    before = runs(tab)
    box = tab.locator(f".st-key-{key} input")
    box.fill(text)
    box.press("Enter")
    settle(tab, before)


def index_on_icd10(tab: Page, page_key: str, prefix: str) -> None:
    """Index the cohort of the ``page_key`` page at the lpr contacts whose ICD-10 code starts with ``prefix``."""
    click(tab, f".st-key-{page_key}_index_add_condition_lpr button")
    pick(tab, f"{page_key}_index_cond_lpr_0_column", "lpr.icd10")
    pick(tab, f"{page_key}_index_cond_lpr_0_op", "starts with")
    _type(tab, f"{page_key}_index_cond_lpr_0_text", prefix)


def test_a_survival_analysis_end_to_end_and_cohorts_stay_with_their_project(
    page: Page, api_server: Api
) -> None:
    _, token_a = api_server.new_project(epsilon=3.0)
    _, token_b = api_server.new_project(epsilon=3.0)
    sign_in(page, token_a)
    go(page, "Survival")
    index_on_icd10(page, "survival", "I21")
    _type(page, "survival_name", COHORT_NAME)
    pick(page, "survival_group_by", "cpr.sex")
    preview = page.locator(".st-key-survival_preview")
    preview.get_by_text("Cost").first.wait_for()  # the cost is shown before anything is spent
    shoot(page, "survival-preview")

    run_and_time(page, "survival")
    chart = page.locator(".st-key-survival_result_chart")
    chart.locator("canvas, svg").first.wait_for()
    at_risk = page.locator(".st-key-survival_result_at_risk")
    at_risk.locator("th").first.wait_for()
    assert "Female" in at_risk.inner_text() and "Male" in at_risk.inner_text()
    horizons = page.locator(".st-key-survival_result_horizons").inner_text()
    assert "Cumulative incidence" in horizons and "%" in horizons, horizons
    median = page.locator(".st-key-survival_result_median").inner_text()
    assert "Median survival (years)" in median, median
    chart.scroll_into_view_if_needed()
    shoot(page, "survival-result")

    go(page, "Rates")  # the named cohort is offered for reuse on the other page
    assert "Use a named cohort" in page_text(page)
    sign_out(page)

    sign_in(page, token_b)
    for title in ("Rates", "Survival"):
        go(page, title)
        text = page_text(page)
        assert COHORT_NAME not in text and "Use a named cohort" not in text, title
        assert not page.locator('[class*="st-key-survival_result"], [class*="st-key-rates_result"]').count()
    shoot(page, "survival-signed-in-as-b")


def test_the_models_page_runs_a_poisson_model_and_shows_its_forest_plot_and_terms(
    page: Page, api_server: Api
) -> None:
    _, token = api_server.new_project(epsilon=3.0)
    sign_in(page, token)
    go(page, "Models")
    index_on_icd10(page, "models", "I")
    pick(page, "models_poisson_regression_group_by", "cpr.sex")
    _type(page, "models_epsilon", "1")
    preview = page.locator(".st-key-models_preview")
    preview.get_by_text("Cost").first.wait_for()  # the cost is shown before anything is spent
    expected = page.locator(".st-key-models_expected")
    expected.locator("th").first.wait_for()
    assert "Interval of a ratio of 1 (with the noise)" in expected.inner_text()
    shoot(page, "models-preview")

    seconds = run_and_time(page, "models")
    chart = page.locator(".st-key-models_result_chart")
    assert chart.locator("canvas, svg").first.is_visible()
    terms = page.locator(".st-key-models_result_terms")
    terms.locator("th").first.wait_for()
    shown = terms.inner_text()
    assert "Rate ratio" in shown and "Naive interval (without the noise)" in shown, shown
    assert "Sex: Male (vs Female)" in shown, shown
    chart.scroll_into_view_if_needed()
    shoot(page, "models-forest")
    print(f"models: {seconds:.2f} s from Run to the forest plot")
