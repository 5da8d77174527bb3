"""The Dagster UI as a user meets it: a real webserver, a real Chromium, clicks and what they show.

One webserver and one browser serve the whole module (tiny warehouse, temporary DAGSTER_HOME, free
port). Selectors are roles, visible text, titles and URLs: the Dagster UI's CSS classes are hashed
per release. On failure the page's screenshot and text land in test-artifacts/<test>/.

Set ZHUFU_DOC_SCREENSHOTS=docs/img to also write the README's screenshots.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.ui_helpers import DAGSTER_YAML, ROOT, chromium_path, save_failure_artifacts, webserver

pytestmark = pytest.mark.skipif(chromium_path() is None,
                                reason="no Chromium at /usr/bin/chromium (apt-get install chromium; .ci/run does)")

MISSING_BATCH = "inbox-gone.txt"  # registered like an inbox file, whose file is then gone
RUN_TIMEOUT_MS = 180_000  # a run starts two processes that load the code location: ~25 s on 2 cores


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from dagster import DagsterInstance

    base = tmp_path_factory.mktemp("ui")
    dagster_home, zhufu_home = base / "dagster_home", base / "zhufu"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    # What the inbox sensor's first ticks would have registered: the built-in batch and an inbox file.
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.add_dynamic_partitions("prompt_batches", ["builtin", MISSING_BATCH])
    with webserver(dagster_home, zhufu_home) as ws:
        yield ws


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                      args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server, request):
    context = browser.new_context(base_url=server.url, viewport={"width": 1600, "height": 1000})
    # The "join the community" dialog covers the first page of a fresh profile; a returning user never sees it.
    context.add_init_script("window.localStorage.setItem('communityNux', '\"1\"')")
    context.set_default_timeout(30_000)
    pg = context.new_page()
    failed_before = request.session.testsfailed
    yield pg
    if request.session.testsfailed > failed_before:
        out = save_failure_artifacts(pg, request.node.name)
        print(f"screenshot and page text: {out}")
    context.close()


def _doc_screenshot(page, name: str) -> None:
    """Write a README screenshot when ZHUFU_DOC_SCREENSHOTS names a directory (e.g. docs/img)."""
    target = os.environ.get("ZHUFU_DOC_SCREENSHOTS")
    if target:
        out = Path(target) if Path(target).is_absolute() else ROOT / target
        out.mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(2000)  # let edges and images finish drawing; only for the docs
        page.screenshot(path=str(out / name))


def _plain(text: str) -> str:
    """Markdown and whitespace out, so a description compares with how the UI renders it."""
    return re.sub(r"\s+", " ", re.sub(r"[`*_#>\[\]]", "", text)).strip()


def _launch_and_open_run(page, launch_button) -> None:
    """Click a launch button, then the toast's "View" link to the run's page."""
    launch_button.click()
    page.locator("li", has_text="Launched run").get_by_role("link", name="View").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"))


def _run_status(page) -> str:
    status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    status.wait_for(timeout=RUN_TIMEOUT_MS)
    return status.inner_text()


def _materialize_partition(page, asset: str, partition: str) -> None:
    page.goto(f"/assets/{asset}")
    page.get_by_role("button", name="Materialize…").click()
    page.get_by_text("Select a partition or create one").click()
    page.keyboard.type(partition)
    page.get_by_role("menuitem", name=partition).click()
    page.keyboard.press("Escape")  # close the partition picker, keep the dialog
    _launch_and_open_run(page, page.get_by_role("button", name="Launch 1 run"))


def test_asset_graph_shows_every_asset_in_its_group_with_its_description(page):
    from definitions import defs

    graph = defs.resolve_asset_graph()
    groups: dict[str, list] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        groups.setdefault(node.group_name, []).append((key.to_user_string(), node.description or ""))
    assert len(groups) > 1

    for group, assets in sorted(groups.items()):
        page.goto(f"/locations/zhufu/asset-groups/{group}")
        if group == "path_a":
            expect(page.get_by_text("verdicts", exact=True).first).to_be_visible()  # the graph is drawn
            _doc_screenshot(page, "asset-graph.png")
        # The graph's side panel lists every asset of the group (the canvas only draws what is in view).
        page.get_by_role("img", name="panel_show_left").click()
        for name, _ in assets:
            expect(page.get_by_title(name, exact=True).first, f"{name} in group {group}'s graph").to_be_visible()

        page.get_by_role("tab", name="List").click()
        page.wait_for_url(f"**/asset-groups/{group}/list")
        for name, _ in assets:
            page.get_by_title(name, exact=True).first.wait_for()
        shown = _plain(page.locator("main").inner_text() if page.locator("main").count()
                       else page.inner_text("body"))
        for name, description in assets:
            assert description, f"{name} has no description"
            assert _plain(description)[:60] in shown, f"{name}'s description is not shown in group {group}"


def test_materializing_one_prompt_batch_from_the_ui_succeeds(page, server):
    _materialize_partition(page, "prompts", "builtin")
    assert _run_status(page) == "Success"

    from warehouse import Warehouse, WarehouseConfig

    wh = Warehouse(WarehouseConfig.embedded(server.zhufu_home))
    try:
        assert wh.sql("SELECT count(*) AS n FROM prompts WHERE batch = 'builtin'")["n"][0] > 0
    finally:
        wh.close()


def test_latest_materialization_shows_its_metadata_table_and_plot(page):
    page.goto("/assets/human_labels")
    _launch_and_open_run(page, page.get_by_role("button").filter(has_text=re.compile(r"^Materialize$")))
    assert _run_status(page) == "Success"

    page.goto("/assets/human_labels")
    page.get_by_role("tab", name="Events").click()
    page.get_by_text("Materialized in run").wait_for()
    table_row = page.locator("tr", has_text="label_balance")
    for cell in ("label", "rows", "mean_chars", "excellent (1)", "not excellent (0)"):
        assert table_row.get_by_text(cell, exact=True).first.is_visible(), cell

    page.locator("tr", has_text="length_by_label").get_by_text("[Show Markdown]").click()
    plot = page.get_by_role("dialog").get_by_role("img", name="response length by label")
    plot.wait_for()
    assert plot.evaluate("img => img.complete && img.naturalWidth") > 100  # a decoded PNG, not a broken link
    _doc_screenshot(page, "materialization-plot.png")


def test_sensor_can_be_switched_off_and_on(page):
    page.goto("/automation")
    page.get_by_role("link", name="inbox_sensor").click()
    page.wait_for_url("**/sensors/inbox_sensor")

    def switch():  # the visible switch is the <label> around a hidden checkbox
        box = page.get_by_role("checkbox")
        return box, page.locator("label", has=box)

    box, label = switch()
    expect(box).to_be_checked()  # default_status RUNNING
    label.click()
    expect(box).not_to_be_checked()
    page.reload()
    box, label = switch()
    expect(box).not_to_be_checked()  # stored in the instance, not just in the page

    label.click()
    expect(box).to_be_checked()
    page.reload()
    expect(switch()[0]).to_be_checked()


def test_a_run_whose_input_file_is_missing_fails_with_a_message_naming_it(page):
    _materialize_partition(page, "prompts", MISSING_BATCH)
    assert _run_status(page) == "Failure"
    message = page.get_by_text(re.compile(rf"prompt batch '{re.escape(MISSING_BATCH)}': no such file in the inbox"))
    message.first.wait_for()
