// The dashboard in real headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core).
// Started by gateway/tests/dashboard_browser.rs, which runs the gateway, a partner simulator and
// a trickle of tickets, and passes: BASE_URL, PASSWORD, SHOTS (screenshot folder), DEAD (comma-
// separated dead delivery ids), DEAD_PHONE (a dead ticket's caller phone, which must never show
// to a viewer).
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const base = process.env.BASE_URL;
const password = process.env.PASSWORD;
const shots = process.env.SHOTS;
const dead = process.env.DEAD.split(",");
const deadPhone = process.env.DEAD_PHONE;
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

const problems = [];
async function session(user) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: "zh-CN" });
  const page = await context.newPage();
  page.on("pageerror", e => problems.push(`${user}: page error: ${e.message}`));
  page.on("console", m => { if (m.type() === "error") problems.push(`${user}: console: ${m.text()}`); });
  await page.goto(`${base}/ui`);
  assert.match(page.url(), /\/ui\/login$/, "an anonymous visitor lands on the login page");
  await page.fill("input[name=user]", user);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForURL(`${base}/ui`), page.click("button.primary")]);
  return { context, page };
}

function step(name) { console.log(`browser: ${name}`); }

try {
  // A viewer: sees dead letters, cannot act, sees no personal data.
  step("viewer");
  const viewer = await session("zhao");
  await viewer.page.goto(`${base}/ui/dead`);
  await viewer.page.waitForSelector(`tr[data-delivery="${dead[0]}"]`);
  assert.equal(await viewer.page.locator("button.retry").count(), 0, "a viewer has no retry button");
  assert.equal(await viewer.page.locator("#replay-all").count(), 0, "a viewer has no replay button");
  const csrf = await viewer.page.locator("input[name=csrf]").first().inputValue();
  const refused = await viewer.page.request.post(`${base}/ui/dead/replay`, {
    form: { csrf, reason: "viewer tries", expected: "2" },
  });
  assert.equal(refused.status(), 403, "the replay endpoint refuses a viewer");
  await viewer.page.click(`tr[data-delivery="${dead[0]}"] a`);
  await viewer.page.waitForSelector("#masked");
  const personal = await viewer.page.locator("dl.personal").innerText();
  assert.ok(!personal.includes(deadPhone), "the phone number is masked for a viewer");
  assert.match(personal, /\*{4}/, "masked values show stars");
  await viewer.page.screenshot({ path: `${shots}/ticket-viewer.png`, fullPage: true });
  await viewer.context.close();

  // An operator: live tiles, a dead letter retried, the rest replayed, the audit log.
  step("operator: overview updates live");
  const op = await session("li");
  const page = op.page;
  // All eight navigation links (the audit log's too) on one row beside the brand at 1366 px,
  // their English as tooltips.
  const links = page.locator("header.top nav a");
  assert.equal(await links.count(), 8, "an operator sees every page in the navigation");
  const tops = new Set();
  for (const box of await links.evaluateAll(as => as.map(a => a.getBoundingClientRect().top))) {
    tops.add(Math.round(box));
  }
  assert.equal(tops.size, 1, `the navigation is one row at 1366 px (rows at ${[...tops]})`);
  const brand = await page.locator("header.top .brand").boundingBox();
  const who = await page.locator("header.top .who").boundingBox();
  assert.ok(Math.abs(brand.y - who.y) < brand.height, "brand, navigation and user share the bar's row");
  assert.equal(await links.first().getAttribute("title"), "Overview", "English labels stay as tooltips");
  await page.evaluate(() => { window.__stayed = true; });
  const tile = page.locator('.tile[data-partner="p1"] [data-f="delivered_5m"]');
  const before = Number(await tile.innerText());
  await page.waitForFunction(
    n => Number(document.querySelector('.tile[data-partner="p1"] [data-f="delivered_5m"]').textContent) > n,
    before, { timeout: 15000 });
  assert.equal(await page.evaluate(() => window.__stayed), true, "updated in place, not by reloading");
  await page.waitForSelector("#chart-throughput path");
  assert.match(await page.locator("#live-state").innerText(), /live/);
  await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });

  step("operator: open a dead letter and retry it");
  await page.goto(`${base}/ui/dead`);
  assert.equal(await page.locator("tbody tr[data-delivery]").count(), dead.length);
  await page.screenshot({ path: `${shots}/dead-letters.png`, fullPage: true });
  await page.click(`tr[data-delivery="${dead[0]}"] a`);
  await page.waitForSelector(`.delivery[data-delivery="${dead[0]}"]`);
  await page.click(`.delivery[data-delivery="${dead[0]}"] summary`);
  assert.ok((await page.locator(`.delivery[data-delivery="${dead[0]}"] pre.payload`).innerText()).length > 20,
    "the wire payload is shown");
  await page.screenshot({ path: `${shots}/ticket.png`, fullPage: true });
  await page.fill(`.delivery[data-delivery="${dead[0]}"] input[name=reason]`, "对方已恢复 partner is back");
  await Promise.all([page.waitForURL(/\/ui\/tickets\//), page.click(`.delivery[data-delivery="${dead[0]}"] button.retry`)]);
  for (let i = 0; i < 50; i++) {
    const status = await page.locator(`.delivery[data-delivery="${dead[0]}"] h3 .st`).innerText();
    if (status === "acknowledged") break;
    await page.waitForTimeout(200);
    await page.reload();
  }
  assert.equal(await page.locator(`.delivery[data-delivery="${dead[0]}"] h3 .st`).innerText(), "acknowledged",
    "the retried dead letter is delivered");

  step("operator: replay the rest by filter");
  await page.goto(`${base}/ui/dead?partner=p1`);
  await page.click("#replay-all");
  await page.waitForSelector("#replay-count");
  const count = Number(await page.locator("#replay-count").innerText());
  assert.equal(count, dead.length - 1, "the confirmation states how many will be sent");
  await page.fill("textarea[name=reason]", "维护结束 maintenance over");
  await Promise.all([page.waitForURL(/\/ui\/jobs\//), page.click("#confirm-replay")]);
  await page.waitForFunction(() => document.getElementById("job-state").textContent.includes("finished"), null, { timeout: 15000 });
  assert.equal(await page.locator("#job-requeued").innerText(), String(count));
  const bar = await page.locator("#job-progress").evaluate(p => [p.value, p.max]);
  assert.deepEqual(bar, [count, count], "the progress bar is full");
  await page.screenshot({ path: `${shots}/replay-progress.png`, fullPage: true });
  for (let i = 0; i < 50; i++) {
    await page.goto(`${base}/ui/dead`);
    if (await page.locator("tbody tr[data-delivery]").count() === 0) break;
    await page.waitForTimeout(200);
  }
  assert.equal(await page.locator("tbody tr[data-delivery]").count(), 0, "no dead letters left");
  await page.goto(`${base}/ui/deliveries?status=acknowledged&partner=p1`);
  for (const id of dead) {
    assert.equal(await page.locator(`tr[data-delivery="${id}"] .st`).innerText(), "acknowledged", `${id} delivered`);
  }

  step("operator: the audit log shows both");
  await page.goto(`${base}/ui/audit`);
  const audit = await page.locator("table.audit").innerText();
  assert.match(audit, /deliveries\.replay/);
  assert.match(audit, /维护结束 maintenance over/);
  assert.match(audit, /delivery\.retry/);
  assert.match(audit, /对方已恢复 partner is back/);
  assert.equal(await page.locator("table.audit .bad").count(), 0, "the chain is intact");
  await page.screenshot({ path: `${shots}/audit.png`, fullPage: true });

  for (const [path, name] of [["/ui/partners", "partners"], ["/ui/sla", "sla"], ["/ui/transfers", "transfers"],
    ["/ui/legal-aid", "legal-aid"], ["/ui/deliveries", "deliveries"]]) {
    await page.goto(`${base}${path}`);
    await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  }
  await Promise.all([page.waitForURL(/\/ui\/login$/), page.click("header button.link")]);
  await op.context.close();
  assert.deepEqual(problems, [], "no script errors or blocked resources");
  step("done");
} finally {
  await browser.close();
}
