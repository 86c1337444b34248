"""A real browser (Debian's chromium through Playwright) against a live server:
log in, create a vcluster through the form, see it fail for want of a host cluster,
retry it, and see it listed with its phase."""

import shutil

import pytest

from accounts.models import Membership, Role, Team
from tests.portal.conftest import PASSWORD, make_user

CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `scripts/services.sh install chromium` (make test does)")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        page.goto("about:blank")  # stop htmx polling before the live server goes away
        browser.close()


@pytest.fixture
def ada():
    # Created before Playwright runs its event loop in this thread: ORM calls inside
    # it raise SynchronousOnlyOperation, and with DJANGO_ALLOW_ASYNC_UNSAFE they open
    # a second, context-local connection that outlives the test. So the test body
    # only drives the browser.
    team = Team.objects.create(name="Web team", slug="web")
    Membership.objects.create(team=team, user=make_user("ada"), role=Role.MEMBER)


def test_it_logs_in_creates_a_vcluster_and_lists_it(live_server, ada, page):
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Vclusters", exact=True)).to_be_visible()

    page.get_by_role("link", name="+ Create vcluster").click()
    expect(page.get_by_role("heading", name="Headroom in Web team")).to_be_visible()
    page.get_by_label("Name").fill("Not_Valid")
    page.get_by_role("button", name="Create vcluster").click()
    expect(page.get_by_text("DNS-1123")).to_be_visible()

    page.get_by_label("Name").fill("browser-made")
    page.get_by_label("Memory").fill("4Gi")
    page.get_by_role("button", name="Create vcluster").click()
    expect(page.get_by_role("heading", name="browser-made")).to_be_visible()
    # No host cluster is registered: provisioning fails at its first step, says why,
    # and offers a retry, which fails the same way until a platform admin adds one.
    expect(page.locator("#live-status [data-phase]")).to_have_attribute("data-phase", "Failed")
    failure = page.get_by_role("alert").filter(has_text="No enabled host cluster is open to team Web team")
    expect(failure).to_be_visible()
    failure.get_by_role("button", name="Retry").click()
    expect(page.get_by_text("Retrying browser-made")).to_be_visible()
    expect(page.locator("#live-status [data-phase]")).to_have_attribute("data-phase", "Failed")
    expect(page.locator("#events li")).to_have_count(3)

    page.get_by_role("link", name="Dashboard").click()
    row = page.get_by_role("row").filter(has_text="browser-made")
    expect(row).to_be_visible()
    expect(row.locator("[data-phase]")).to_have_text("Failed")
    expect(row).to_contain_text("4Gi")
