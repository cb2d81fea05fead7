"""The storefront widget in a real browser: Debian's Chromium driven by Playwright against the
fake storefront and app proxy of `fake_proxy.py`.

Every test also checks, through the `shop` fixture, that the page raised no script error,
opened no alert, and sent no request beyond 127.0.0.1.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.widgets.conftest import Storefront
from tests.widgets.fake_proxy import HOSTILE, HOSTILE_MEMBER, MEMBER

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture reports it: a skip, or a failure with CI=true
    expect: Any = None  # type: ignore[no-redef]

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Route

pytestmark = pytest.mark.browser

UNAVAILABLE = "Rewards are unavailable right now."
INSIDE_DIALOG = "() => document.querySelector('[role=dialog]').contains(document.activeElement)"
LAYOUT_SHIFT = """() => new Promise(done => {
  let total = 0;
  const observer = new PerformanceObserver(list => {
    for (const entry of list.getEntries()) total += entry.value;
  });
  observer.observe({type: 'layout-shift', buffered: true});
  setTimeout(() => { observer.disconnect(); done(total); }, 100);
})"""


def launcher(page: Page, name: str = "Rewards") -> Locator:
    return page.locator("button.stamp-launcher", has_text=name)


def dialog(page: Page) -> Locator:
    return page.get_by_role("dialog")


def status(page: Page) -> Locator:
    return dialog(page).get_by_role("status")


def open_panel(shop: Storefront, **query: str) -> Locator:
    shop.visit(**query)
    launcher(shop.page, "Récompenses" if query.get("locale") == "fr" else "Rewards").click()
    panel = dialog(shop.page)
    expect(panel).to_be_visible()
    expect(panel).not_to_have_attribute("aria-busy", "true")
    expect(panel).not_to_contain_text(re.compile(r"\b(null|undefined|NaN)\b"))
    return panel


def test_nothing_is_fetched_until_the_launcher_is_clicked(shop: Storefront) -> None:
    shop.visit(customer=MEMBER)
    button = launcher(shop.page)
    expect(button).to_be_visible()
    shop.page.wait_for_load_state("networkidle")
    shop.idle()
    assert [u for u in shop.requests if "/apps/stamp/" in u or "stamp-panel" in u] == []
    assert not [u for u in shop.requests if u.endswith("stamp.css")]
    assert button.evaluate("b => getComputedStyle(b).position") == "fixed"
    assert shop.page.evaluate(LAYOUT_SHIFT) == 0

    button.click()

    panel = dialog(shop.page)
    expect(panel).to_be_visible()
    expect(panel).to_have_attribute("aria-modal", "true")
    expect(panel).to_have_accessible_name("Rewards")
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(panel.locator(".stamp-balance__value")).to_have_text("1,250")
    expect(panel.get_by_text("+150 points pending")).to_be_visible()
    progress = panel.get_by_role("progressbar")
    expect(progress).to_have_attribute("aria-valuenow", "3250")
    expect(progress).to_have_attribute("aria-valuemax", "4000")
    expect(panel.get_by_text("750 points to reach Gold")).to_be_visible()
    expect(panel.get_by_text("Silver tier")).to_be_visible()
    expect(panel.get_by_text("Shop with us")).to_be_visible()
    assert len(shop.api_calls("/api/state")) == 1
    device = shop.page.evaluate("() => localStorage.getItem('stamp_device')")
    assert device
    assert f"device={device}" in shop.api_calls("/api/state")[0]
    assert shop.fake.forwarded[-1]["logged_in_customer_id"] == MEMBER
    assert shop.fake.forwarded[-1]["path_prefix"] == "/apps/stamp"
    shop.screenshot("panel-member-en")


def test_keyboard_opens_traps_focus_and_escape_returns_it(shop: Storefront) -> None:
    shop.visit(customer=MEMBER)
    button = launcher(shop.page)
    button.focus()
    shop.page.keyboard.press("Enter")
    panel = dialog(shop.page)
    expect(panel).to_be_visible()
    expect(panel.get_by_role("button", name="Close")).to_be_focused()
    expect(panel.locator(".stamp-balance__value")).to_have_text("1,250")

    for _ in range(40):
        shop.page.keyboard.press("Tab")
        assert shop.page.evaluate(INSIDE_DIALOG), "Tab left the dialog"
    for _ in range(40):
        shop.page.keyboard.press("Shift+Tab")
        assert shop.page.evaluate(INSIDE_DIALOG), "Shift+Tab left the dialog"

    shop.page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(button).to_be_focused()
    expect(button).to_have_attribute("aria-expanded", "false")

    shop.page.keyboard.press("Space")
    expect(panel).to_be_visible()
    shop.page.keyboard.press("Escape")
    expect(button).to_be_focused()


def test_a_theme_link_opens_the_panel_and_gets_focus_back(shop: Storefront) -> None:
    shop.visit(customer=MEMBER)
    link = shop.page.get_by_role("link", name="Open rewards")
    link.click()
    expect(dialog(shop.page)).to_be_visible()
    dialog(shop.page).get_by_role("button", name="Close").click()
    expect(dialog(shop.page)).to_be_hidden()
    expect(link).to_be_focused()


def test_a_link_to_hash_stamp_opens_the_panel_on_arrival(shop: Storefront) -> None:
    shop.page.goto(f"{shop.base}/?customer={MEMBER}#stamp")
    expect(dialog(shop.page).locator(".stamp-balance__value")).to_have_text("1,250")
    expect(dialog(shop.page).get_by_role("button", name="Close")).to_be_focused()


def test_redeem_shows_the_code_and_copy_announces_it(shop: Storefront) -> None:
    panel = open_panel(shop, customer=MEMBER)

    panel.get_by_role("button", name="Redeem $5 off your order").click()

    code = panel.locator(".stamp-code__value")
    expect(code).to_have_text(re.compile(r"^STAMP-[0-9A-F]{8}$"))
    expect(panel.locator(".stamp-balance__value")).to_have_text("750")
    expect(status(shop.page)).to_contain_text("Your code is ready")
    copy = panel.get_by_role("button", name="Copy code")
    expect(copy).to_be_focused()
    expect(panel.get_by_text("Expires Jan 31, 2030.", exact=False)).to_be_visible()
    # 750 points left: the 1,000-point reward is no longer affordable
    expect(panel.get_by_role("button", name="Redeem $10 off your order")).to_be_disabled()

    copy.click()

    expect(status(shop.page)).to_have_text("Copied")
    assert shop.page.evaluate("() => navigator.clipboard.readText()") == code.inner_text()
    shop.screenshot("panel-code")

    # closed and reopened: fresh state, and the code is still there
    shop.page.keyboard.press("Escape")
    launcher(shop.page).click()
    expect(panel).not_to_have_attribute("aria-busy", "true")
    expect(panel.locator(".stamp-balance__value")).to_have_text("750")
    expect(panel.locator(".stamp-code__value")).to_have_text(code.inner_text())
    assert len(shop.api_calls("/api/state")) == 2


def test_a_double_click_is_one_redemption(shop: Storefront) -> None:
    panel = open_panel(shop, customer=MEMBER)

    panel.get_by_role("button", name="Redeem Free shipping").dblclick()

    expect(panel.locator(".stamp-code__value")).to_be_visible()
    expect(panel.locator(".stamp-balance__value")).to_have_text("950")
    assert len(shop.fake.redeem_posts) == 1
    assert shop.fake.members[MEMBER]["points_balance"] == 950


def test_redeem_errors_are_announced_and_locked_rewards_say_why(shop: Storefront) -> None:
    shop.fake.failing_rewards.add("r-ship")
    panel = open_panel(shop, customer=MEMBER)

    expect(panel.get_by_role("button", name="Redeem $25 off your order")).to_be_disabled()
    expect(panel.get_by_text("You need 1,250 points more.")).to_be_visible()
    gold = panel.get_by_role("button", name="Redeem Gold gift box")
    expect(gold).to_be_disabled()
    expect(gold).to_have_accessible_description("Gold members only")

    panel.get_by_role("button", name="Redeem Free shipping").click()

    expect(status(shop.page)).to_have_text(
        "We couldn’t create your code; your points were returned."
    )
    expect(status(shop.page)).to_have_class("stamp-status stamp-status--error")
    expect(panel.locator(".stamp-balance__value")).to_have_text("1,250")
    expect(panel.locator(".stamp-code__value")).to_have_count(0)


def test_markup_in_shop_data_renders_as_text(shop: Storefront) -> None:
    panel = open_panel(shop, customer=HOSTILE_MEMBER)

    expect(panel.get_by_text(f"Hi, {HOSTILE}")).to_be_visible()
    expect(panel.get_by_text("<script>alert(2)</script>")).to_be_visible()
    expect(panel.get_by_text("<b>Bronze</b> tier")).to_be_visible()
    expect(panel.get_by_text("<i>not italic</i>")).to_be_visible()
    assert panel.locator("img, script, b, i").count() == 0
    # a javascript: referral URL never becomes a link or a field
    assert shop.page.locator("a[href^='javascript:']").count() == 0
    expect(panel.get_by_label("Your referral link")).to_have_count(0)
    shop.page.get_by_role("button", name="Close").click()
    assert not [url for url in shop.requests if url.rstrip("/").endswith("/x")]
    assert shop.dialogs == []


def test_a_guest_is_invited_to_join_or_sign_in(shop: Storefront) -> None:
    panel = open_panel(shop)

    expect(panel.get_by_text("Join our rewards program")).to_be_visible()
    join = panel.get_by_role("link", name="Join now")
    expect(join).to_have_attribute("href", shop.base + "/account/register")
    expect(panel.get_by_role("link", name="Sign in")).to_have_attribute(
        "href", shop.base + "/account/login"
    )
    expect(panel.get_by_text("Sign in to redeem rewards.")).to_be_visible()
    expect(panel.get_by_role("button", name="Redeem", exact=False)).to_have_count(0)
    expect(panel.get_by_text("$10 off your order")).to_be_visible()
    shop.screenshot("panel-guest")


@pytest.mark.parametrize(
    ("locale", "label", "balance", "phrase"),
    [
        ("fr", "Récompenses", "1\u202f250", "Plus que 750\u00a0points pour atteindre Gold"),
        ("de", "Prämien", "1.250", "Noch 750\u00a0Punkte bis Gold"),
    ],
)
def test_the_shop_locale_translates_the_panel(
    shop: Storefront, locale: str, label: str, balance: str, phrase: str
) -> None:
    shop.visit(customer=MEMBER, locale=locale)
    launcher(shop.page, label).click()
    panel = dialog(shop.page)
    expect(panel).to_have_accessible_name(label)
    expect(panel.locator(".stamp-balance__value")).to_have_text(balance)
    expect(panel.get_by_text(phrase)).to_be_visible()
    assert f"locale={locale}" in shop.api_calls("/api/state")[0]
    if locale == "fr":
        expect(panel.get_by_role("button", name="Échanger Livraison offerte")).to_be_enabled()
        expect(panel.get_by_role("button", name="Fermer")).to_be_visible()
        shop.screenshot("panel-member-fr")


def test_an_unknown_locale_falls_back_to_english(shop: Storefront) -> None:
    panel = open_panel(shop, customer=MEMBER, locale="pt-BR")
    expect(panel).to_have_accessible_name("Rewards")
    expect(panel.locator(".stamp-balance__value")).to_have_text("1.250")


def test_api_errors_leave_the_page_working(shop: Storefront) -> None:
    panel = open_panel(shop, customer=MEMBER, fail="500")

    expect(panel.get_by_text(UNAVAILABLE)).to_be_visible()
    shop.screenshot("panel-unavailable")
    shop.page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    shop.page.get_by_role("button", name="Add to cart").first.click()
    expect(shop.page.locator("#cart-count")).to_have_text("1")
    launcher(shop.page).click()
    expect(panel.get_by_text(UNAVAILABLE)).to_be_visible()


def test_an_unreachable_api_shows_the_notice_and_recovers(shop: Storefront) -> None:
    def refuse(route: Route) -> None:
        route.abort("connectionrefused")

    shop.page.route("**/apps/stamp/**", refuse)
    panel = open_panel(shop, customer=MEMBER)

    expect(panel.get_by_text(UNAVAILABLE)).to_be_visible()
    shop.page.unroute("**/apps/stamp/**")
    panel.get_by_role("button", name="Try again").click()
    expect(panel.locator(".stamp-balance__value")).to_have_text("1,250")
    assert shop.page.evaluate(INSIDE_DIALOG)


def test_an_unreachable_panel_script_keeps_the_launcher_working(shop: Storefront) -> None:
    def refuse(route: Route) -> None:
        route.abort("connectionrefused")

    shop.page.route("**/stamp-panel.js", refuse)
    shop.visit(customer=MEMBER)
    button = launcher(shop.page)
    button.click()

    expect(shop.page.locator(".stamp-notice")).to_have_text(UNAVAILABLE)
    expect(button).not_to_have_attribute("aria-busy", "true")
    shop.page.get_by_role("button", name="Add to cart").first.click()
    expect(shop.page.locator("#cart-count")).to_have_text("1")

    shop.page.unroute("**/stamp-panel.js")
    button.click()
    expect(dialog(shop.page)).to_be_visible()


def test_history_pages_with_more(shop: Storefront) -> None:
    panel = open_panel(shop, customer=MEMBER)
    assert shop.api_calls("/api/history") == []
    rows = panel.locator(".stamp-history__row")

    panel.get_by_text("Points history").click()
    expect(rows).to_have_count(10)
    expect(rows.first).to_contain_text("Order #1100")
    expect(rows.first).to_contain_text("+40")
    more = panel.get_by_role("button", name="More")
    more.click()
    expect(rows).to_have_count(20)
    more.click()
    expect(rows).to_have_count(23)
    expect(more).to_be_hidden()
    assert len(shop.api_calls("/api/history")) == 3
    panel.get_by_role("button", name="Leave the program").scroll_into_view_if_needed()
    shop.screenshot("panel-history")


def test_referral_link_copies_and_shares_without_loading_anything(shop: Storefront) -> None:
    panel = open_panel(shop, customer=MEMBER)
    link = "https://stamp-test.myshopify.com/apps/stamp/r/ADA7K2Q"

    expect(panel.get_by_label("Your referral link")).to_have_value(link)
    panel.get_by_role("button", name="Copy link").click()
    expect(status(shop.page)).to_have_text("Copied")
    assert shop.page.evaluate("() => navigator.clipboard.readText()") == link

    if shop.page.evaluate("() => 'share' in navigator"):
        expect(panel.get_by_role("button", name="Share")).to_be_visible()
    else:
        hrefs = [a.get_attribute("href") or "" for a in panel.locator(".stamp-share a").all()]
        assert [h.split("?")[0] for h in hrefs] == [
            "mailto:",
            "https://wa.me/",
            "https://x.com/intent/post",
            "https://www.facebook.com/sharer/sharer.php",
        ]
        assert all("ADA7K2Q" in h for h in hrefs)


def test_download_my_data_and_leave_the_program(shop: Storefront) -> None:
    panel = open_panel(shop, customer=MEMBER)

    with shop.page.expect_download() as download:
        panel.get_by_role("link", name="Download my data").click()
    assert download.value.suggested_filename == "stamp-data.json"

    panel.get_by_role("button", name="Leave the program").click()
    expect(panel.get_by_text("This erases your points")).to_be_visible()
    expect(panel.get_by_role("button", name="Cancel")).to_be_focused()
    panel.get_by_role("button", name="Yes, erase and leave").click()

    expect(status(shop.page)).to_have_text("You have left the program.")
    expect(panel.get_by_text("Join our rewards program")).to_be_visible()
    assert MEMBER not in shop.fake.members


def test_an_empty_badge_is_filled_when_idle_without_loading_the_panel(shop: Storefront) -> None:
    shop.visit(customer=MEMBER, badge="1")

    expect(shop.page.locator("header [data-stamp-badge]")).to_have_text("1,250 points")
    expect(launcher(shop.page).locator(".stamp-badge")).to_have_text("1,250")
    assert len(shop.api_calls("/api/state")) == 1
    assert not [url for url in shop.requests if "stamp-panel" in url]


def test_a_badge_from_the_metafield_needs_no_request(shop: Storefront) -> None:
    shop.visit(customer=MEMBER, badge="1", points="1250")
    shop.page.wait_for_load_state("networkidle")
    shop.idle()

    expect(launcher(shop.page).locator(".stamp-badge")).to_have_text("1,250")
    assert shop.api_calls("/api/state") == []


def test_the_rewards_section_mounts_the_panel_inline(shop: Storefront) -> None:
    shop.visit("/pages/rewards", customer=MEMBER)

    section = shop.page.get_by_role("region", name="Rewards")
    expect(section.locator(".stamp-balance__value")).to_have_text("1,250")
    expect(shop.page.get_by_role("dialog")).to_have_count(0)
    # the section's tag and the app embed's tag share one loader: one launcher, on the left
    expect(shop.page.locator(".stamp-launcher")).to_have_count(1)
    expect(launcher(shop.page)).to_have_attribute("data-stamp-position", "left")
    section.get_by_role("button", name="Redeem $5 off your order").click()
    expect(section.locator(".stamp-code__value")).to_be_visible()
    shop.screenshot("section-inline")


@pytest.mark.parametrize(
    ("accent", "text"), [("#0f766e", "rgb(255, 255, 255)"), ("#facc15", "rgb(17, 17, 17)")]
)
def test_text_on_the_accent_colour_stays_readable(shop: Storefront, accent: str, text: str) -> None:
    shop.visit("/pages/rewards", customer=MEMBER, accent=accent)
    head = shop.page.locator(".stamp-panel--inline .stamp-head")
    expect(head).to_have_css("color", text)


def test_the_panel_fits_a_phone(shop: Storefront) -> None:
    shop.page.set_viewport_size({"width": 390, "height": 844})
    panel = open_panel(shop, customer=MEMBER)
    box = panel.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 390
    assert box["y"] >= 0
    assert box["y"] + box["height"] <= 844
    shop.screenshot("panel-phone")
