// End-to-end tests of the web console in a real Chromium, against a running
// stack (deploy/tests/console starts one). In order, sharing one page:
// sign in, generate and play speech, the usage chart, keys, generations,
// webhooks, the messages for a revoked key and a credit limit, and voices
// (filters, previews, designing, cloning, deleting).
//
//   VOICEPROD_URL, VOICEPROD_API_KEY   the stack and a key with every scope
//   CONSOLE_ARTIFACTS                  where screenshots go
//   CHROMIUM                           the browser (default /usr/bin/chromium)

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

const BASE = process.env.VOICEPROD_URL;
const KEY = process.env.VOICEPROD_API_KEY;
const ARTIFACTS = process.env.CONSOLE_ARTIFACTS || ".cache/console-artifacts";
assert.ok(BASE && KEY, "VOICEPROD_URL and VOICEPROD_API_KEY must be set");
mkdirSync(ARTIFACTS, { recursive: true });

let context;
let page;
let profile;
let receiver;
const received = [];
const problems = []; // console errors, page errors, CSP violations

async function api(method, path, { key = KEY, body } = {}) {
  const response = await fetch(`${BASE}/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function shot(name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function go(section) {
  await page.click(`#nav a[data-page="${section}"]`);
  await page.waitForSelector(`[data-page="${section}"]`);
}

async function signIn(key) {
  await page.fill("#api-key", key);
  await page.click("#signin button[type=submit]");
}

/** Waits for a generation made through the API to finish. */
async function generate(text, key = KEY) {
  const accepted = await api("POST", "/generations", { key, body: { text, voiceId: "voice_8f2a1c", format: "wav" } });
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  for (let i = 0; i < 240; i++) {
    const g = await api("GET", `/generations/${accepted.body.id}`, { key });
    if (g.body.status !== "processing") {
      assert.equal(g.body.status, "completed", JSON.stringify(g.body));
      return g.body;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${accepted.body.id} did not finish`);
}

before(async () => {
  profile = mkdtempSync(join(tmpdir(), "console-chromium-"));
  // A fresh profile (user-data-dir) for every run.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
  });
  page = context.pages()[0] || (await context.newPage());
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of (401|402|403|404|429)/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // A webhook receiver on loopback (the dev stack allows 127.0.0.0/8).
  receiver = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push({ headers: req.headers, body });
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("thanks from the e2e receiver");
    });
  });
  await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
});

after(async () => {
  await context?.close();
  receiver?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

test("the page loads under its CSP and asks for a key", async () => {
  const response = await page.goto(`${BASE}/console`);
  assert.equal(response.status(), 200);
  assert.match(response.headers()["content-security-policy"], /default-src 'self'/);
  await page.waitForSelector("#signin");
  await shot("01-sign-in");
});

test("a malformed or unknown key is refused with a clear message", async () => {
  await signIn("not-a-key");
  await page.waitForSelector(".notice.error");
  assert.match(await page.textContent(".notice.error"), /does not look like an API key/);
  await signIn(`vp_${"A".repeat(40)}`);
  await page.waitForFunction(() => /not valid/.test(document.querySelector("#notices").textContent));
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
});

test("a pasted key opens the workspace and stays in session storage only", async () => {
  await signIn(KEY);
  await page.waitForSelector('[data-page="playground"]');
  await page.waitForSelector("#nav:not([hidden])");
  const where = await page.evaluate(() => ({
    stored: Object.values(sessionStorage),
    local: localStorage.length,
    cookie: document.cookie,
    url: location.href,
  }));
  assert.deepEqual(where.stored, [KEY]);
  assert.equal(where.local, 0);
  assert.equal(where.cookie, "");
  assert.ok(!where.url.includes(KEY));
  assert.equal((await context.cookies()).length, 0);
});

test("the playground generates speech that plays in the page", async () => {
  await page.waitForFunction(() => document.querySelectorAll("#voice option").length >= 300);
  // Natural (neural) voices come first, and are marked.
  const natural = await page.evaluate(() =>
    [...document.querySelectorAll("#voice option")].map((o) => ({ natural: o.dataset.natural === "true", text: o.textContent })),
  );
  const firstOther = natural.findIndex((o) => !o.natural);
  assert.ok(firstOther > 0, "no natural voice listed first");
  assert.ok(natural.slice(firstOther).every((o) => !o.natural), "a natural voice after the others");
  assert.ok(natural.slice(0, firstOther).every((o) => o.text.includes("◆ natural")), "an unmarked natural voice");
  await page.check("#voice-natural");
  await page.waitForFunction(() => [...document.querySelectorAll("#voice option")].every((o) => o.dataset.natural === "true"));
  await page.uncheck("#voice-natural");
  await page.waitForFunction(() => document.querySelectorAll("#voice option").length >= 300);
  // The search filters the list.
  await page.fill("#voice-search", "en-GB");
  await page.waitForFunction(() => {
    const options = [...document.querySelectorAll("#voice option")];
    return options.length > 0 && options.length < 300 && options.every((o) => o.textContent.includes("en-GB"));
  });
  await page.fill("#voice-search", "");
  await page.selectOption("#voice", "voice_8f2a1c");
  await page.selectOption("#format", "wav");
  await page.fill("#text", "Hello from the voiceprod console. This sentence is spoken in a real browser.");
  await page.click("#generate");
  await page.waitForSelector("#result-status.ok", { timeout: 60_000 });
  const credits = Number(await page.textContent("#credits-charged"));
  assert.ok(credits >= 1, `credits charged: ${credits}`);
  const audio = await page.evaluate(async () => {
    const a = document.querySelector("#player");
    if (!Number.isFinite(a.duration) || a.duration === 0) {
      await new Promise((r) => a.addEventListener("loadedmetadata", r, { once: true }));
    }
    a.currentTime = 0;
    await a.play();
    const start = a.currentTime;
    await new Promise((r) => setTimeout(r, 600));
    // (The page's CSP forbids fetching the blob: URL again; the page says its size.)
    const size = Number(document.querySelector("#audio-size").textContent.replace(/\D/g, ""));
    return { src: a.src, duration: a.duration, start, now: a.currentTime, size };
  });
  assert.match(audio.src, /^blob:/);
  assert.ok(audio.duration > 1, `duration ${audio.duration}`);
  assert.ok(audio.now > audio.start, `currentTime did not advance: ${JSON.stringify(audio)}`);
  assert.ok(audio.size > 44 + 16000, `audio of ${audio.size} bytes`);
  const download = page.waitForEvent("download");
  await page.click("#download");
  const file = await download;
  assert.match(file.suggestedFilename(), /^gen_.*\.wav$/);
  await page.evaluate(() => document.querySelector("#player").pause());
  await shot("02-playground");
});

test("the usage chart changes after a generation", async () => {
  await go("usage");
  await page.waitForSelector("#usage-chart svg.chart");
  await page.waitForSelector("#credits-used");
  const before = Number(await page.getAttribute("#usage-chart svg.chart", "data-total"));
  const usedNow = () => page.evaluate(() => Number(document.querySelector("#credits-used").firstChild.textContent.replace(/\D/g, "")));
  const usedBefore = await usedNow();
  assert.ok(before >= 1, "the playground's generation is in the chart");
  // 1,500 characters cost 2 credits.
  const g = await generate("Usage is counted in credits. ".repeat(52).slice(0, 1500));
  assert.equal(g.credits, 2);
  await page.click("#usage-refresh");
  await page.waitForFunction(
    (n) => Number(document.querySelector("#usage-chart svg.chart")?.getAttribute("data-total")) === n,
    before + 2,
  );
  const today = new Date().toISOString().slice(0, 10);
  const bar = Number(await page.getAttribute(`#usage-chart g.bar[data-day="${today}"]`, "data-total"));
  assert.ok(bar >= 3, `today's bar: ${bar}`);
  await page.waitForFunction(
    (n) => Number(document.querySelector("#credits-used")?.firstChild?.textContent.replace(/\D/g, "")) === n,
    usedBefore + 2,
  );
  assert.equal(await usedNow(), usedBefore + 2);
  assert.ok(await page.isVisible("#usage-table table"));
  await shot("03-usage");
});

test("a key is created with its secret shown once, then revoked", async () => {
  const name = `e2e key ${Math.random().toString(36).slice(2, 6)}`;
  await go("keys");
  await page.waitForSelector("#keys-list table");
  await page.fill("#key-name", name);
  await page.fill("#key-limit", "1");
  await page.uncheck('input[name=scope][value="webhooks:manage"]');
  await page.click("#key-create");
  await page.waitForSelector("dialog.modal [data-testid=secret]");
  const secret = (await page.textContent("dialog.modal [data-testid=secret]")).trim();
  assert.match(secret, /^vp_[0-9A-Za-z]{40}$/);
  await shot("04-key-created");
  await page.click("dialog.modal button[value=ok]");
  const row = page.locator(`tr[data-key-name="${name}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), /active/);
  assert.equal((await api("GET", "/voices?limit=1", { key: secret })).status, 200);
  // It spends its one credit, so the usage is split between two keys.
  await generate("One credit from the e2e key.", secret);

  // A key with a credit limit of 1: the console says why 2 credits are refused.
  await page.click("#forget-key");
  await signIn(secret);
  await page.waitForSelector("#nav:not([hidden])");
  await go("playground");
  await page.waitForFunction(() => document.querySelectorAll("#voice option").length > 0);
  await page.fill("#text", "x".repeat(1500));
  await page.click("#generate");
  await page.waitForSelector("#result-status.error");
  assert.match(await page.textContent("#result-status"), /credit limit/);
  await shot("05-credit-limit");
  await page.click("#forget-key");
  await signIn(KEY);
  await page.waitForSelector("#nav:not([hidden])");

  await go("keys");
  await row.waitFor();
  await shot("06-keys");
  await row.locator("button", { hasText: "Revoke" }).click();
  await page.waitForSelector("dialog.modal");
  assert.match(await page.textContent("dialog.modal"), /cannot be undone/);
  await page.click('dialog.modal button[value=ok]');
  await page.waitForFunction((n) => /revoked/.test(document.querySelector(`tr[data-key-name="${n}"]`)?.textContent || ""), name);
  const refused = await api("GET", "/voices?limit=1", { key: secret });
  assert.equal(refused.status, 401);
  assert.equal(refused.body.error.code, "key_revoked");

  // The usage chart and table split the credits by key.
  await go("usage");
  await page.waitForSelector("#usage-table table");
  assert.ok((await page.textContent("#usage-chart .legend")).includes(name));
  assert.ok((await page.textContent("#usage-table")).includes(name));
  await shot("07-usage-by-key");

  // The revoked key is refused at sign-in with the reason.
  await page.click("#forget-key");
  await signIn(secret);
  await page.waitForFunction(() => /revoked/.test(document.querySelector("#notices").textContent));
  await shot("08-revoked-key");
  await signIn(KEY);
  await page.waitForSelector("#nav:not([hidden])");
});

test("generations are listed, played and deleted", async () => {
  await go("generations");
  await page.waitForSelector("#gen-list table");
  const rows = page.locator("#gen-list tbody tr");
  assert.ok((await rows.count()) >= 2);
  const first = rows.first();
  const id = await first.getAttribute("data-generation");
  await first.locator("button", { hasText: "Play" }).click();
  await page.waitForFunction(() => document.querySelector("#gen-player").duration > 0);
  await page.waitForFunction(() => document.querySelector("#gen-player").currentTime > 0);
  await page.evaluate(() => document.querySelector("#gen-player").pause());
  await shot("09-generations");
  await first.locator("button", { hasText: "Delete" }).click();
  await page.click("dialog.modal button[value=ok]");
  await page.waitForFunction((gid) => /deleted/.test(document.querySelector(`tr[data-generation="${gid}"]`)?.textContent || ""), id);
  const gone = await api("GET", `/generations/${id}`);
  assert.equal(gone.body.deleted, true);
});

test("a webhook endpoint is added, tested, retried, edited and disabled", async () => {
  // Start from none (the suite's stack is fresh; this makes a rerun work too).
  for (const e of (await api("GET", "/webhooks?limit=100")).body.data) {
    assert.equal((await api("DELETE", `/webhooks/${e.id}`)).status, 204);
  }
  await go("webhooks");
  await page.waitForSelector("#webhook-list .empty");
  await shot("10-webhooks-empty");
  const url = `http://127.0.0.1:${receiver.address().port}/hooks`;
  await page.fill("#webhook-url", url);
  await page.fill("#webhook-description", "e2e receiver");
  await page.click("#webhook-create");
  await page.waitForSelector("dialog.modal [data-testid=secret]");
  assert.match(await page.textContent("dialog.modal [data-testid=secret]"), /^whsec_/);
  await page.click("dialog.modal button[value=ok]");
  await page.waitForSelector("#webhook-detail [data-webhook-detail]");

  await page.click("#webhook-test");
  await page.waitForSelector('#delivery-log tr[data-status="succeeded"]', { timeout: 30_000 });
  assert.ok(received.some((r) => r.body.includes("webhook.test") && r.headers["webhook-signature"]));
  const delivery = page.locator("#delivery-log tbody tr").first();
  await delivery.locator("summary").first().click();
  assert.match(await delivery.textContent(), /200/);
  assert.match(await delivery.textContent(), /thanks from the e2e receiver/);

  const before = received.length;
  await delivery.locator("button", { hasText: "Retry" }).click();
  await page.waitForFunction(
    () => document.querySelectorAll("#delivery-log tbody tr:first-child ol.attempts li").length >= 2,
    null,
    { timeout: 30_000 },
  );
  assert.ok(received.length > before);
  await shot("11-webhooks");

  await page.click("#webhook-edit");
  await page.fill("#edit-description", "e2e receiver, edited");
  await page.check('dialog.modal input[value="generation.failed"]');
  await page.click("dialog.modal button[value=ok]");
  await page.waitForFunction(() => /generation\.failed/.test(document.querySelector("#webhook-list").textContent));
  assert.match(await page.textContent("#webhook-list"), /edited/);

  await page.click("#webhook-rotate");
  await page.click("dialog.modal button[value=ok]");
  await page.waitForSelector("dialog.modal [data-testid=secret]");
  await page.click("dialog.modal button[value=ok]");
  await page.waitForFunction(() => /previous secret signs too/.test(document.querySelector("#webhook-detail").textContent));

  await page.click("#webhook-toggle");
  await page.waitForFunction(() => /disabled/.test(document.querySelector("#webhook-list").textContent));
  assert.ok(await page.isDisabled("#webhook-test"));
  await shot("12-webhook-disabled");
});

/** Every voice `GET /v1/voices` lists with `query`, page by page. */
async function allVoices(query) {
  const out = [];
  let cursor = "";
  for (;;) {
    const got = await api("GET", `/voices?limit=100${query}${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    out.push(...got.body.data);
    if (!got.body.nextCursor) return out;
    cursor = got.body.nextCursor;
  }
}

/** The ids of the rows the voices page shows. */
const shownVoices = () => page.evaluate(() => [...document.querySelectorAll("#voices-list tbody tr")].map((r) => ({ ...r.dataset })));

/**
 * Clicks `selector` and returns the preview response it caused: status,
 * type, cache and length (the page read the body into a blob; the browser
 * keeps no copy for the test).
 */
async function previewFrom(selector, urlPart) {
  const response = page.waitForResponse((r) => r.url().includes(urlPart) && r.request().method() === "GET", { timeout: 90_000 });
  await page.click(selector);
  const r = await response;
  const headers = r.headers();
  return { status: r.status(), type: headers["content-type"], cache: headers["x-preview-cache"], length: Number(headers["content-length"]) };
}

/** A preview fetched here with the key: status, cache and the bytes. */
async function preview(path) {
  const r = await fetch(`${BASE}/v1${path}`, { headers: { Authorization: `Bearer ${KEY}` } });
  return { status: r.status, cache: r.headers.get("x-preview-cache"), body: Buffer.from(await r.arrayBuffer()) };
}

/** Waits until `audio` (a selector) plays from a blob: URL. */
async function plays(selector) {
  await page.waitForFunction((s) => /^blob:/.test(document.querySelector(s)?.src || ""), selector);
  return page.evaluate(async (s) => {
    const a = document.querySelector(s);
    if (!Number.isFinite(a.duration) || a.duration === 0) {
      await new Promise((r) => a.addEventListener("loadedmetadata", r, { once: true }));
    }
    a.currentTime = 0;
    await a.play();
    const start = a.currentTime;
    await new Promise((r) => setTimeout(r, 600));
    const now = a.currentTime;
    a.pause();
    return { duration: a.duration, start, now, size: Number(a.dataset.size) };
  }, selector);
}

test("the voices page lists natural voices first, filters them and plays previews", async () => {
  await go("voices");
  await page.waitForFunction(() => document.querySelectorAll("#voices-list tbody tr").length > 0);
  const first = await shownVoices();
  assert.equal(first[0].natural, "true", "a natural voice first");
  assert.equal(first.length, 150, "the first 150 of every voice");

  // British and female: exactly what the API lists for those filters, in its order.
  await page.selectOption("#voices-accent", "british");
  await page.selectOption("#voices-gender", "female");
  const expected = await allVoices("&accent=british&gender=female");
  assert.ok(expected.length >= 4, `${expected.length} British female voices`);
  await page.waitForFunction((n) => document.querySelectorAll("#voices-list tbody tr").length === n, expected.length);
  const british = await shownVoices();
  assert.ok(british.every((v) => v.accent === "British" && v.gender === "female"), JSON.stringify(british.slice(0, 3)));
  assert.deepEqual(
    british.map((v) => v.voiceId),
    expected.map((v) => v.id),
  );
  assert.match(await page.textContent("#voices-count"), new RegExp(`^${expected.length} of \\d+ voices`));

  // Emma's preview: fetched with the key, 200 MP3, played in the page.
  const emma = "voice_e1e2da";
  const heard = await previewFrom(`tr[data-voice-id="${emma}"] button[data-action=preview]`, `/v1/voices/${emma}/preview`);
  assert.equal(heard.status, 200);
  assert.equal(heard.type, "audio/mpeg");
  assert.equal(heard.cache, "miss");
  assert.ok(heard.length > 8_000, `a preview of ${heard.length} bytes`);
  const played = await plays("#voices-player");
  assert.ok(played.duration > 1, `duration ${played.duration}`);
  assert.ok(played.now > played.start, `currentTime did not advance: ${JSON.stringify(played)}`);
  assert.equal(played.size, heard.length, "the page played every byte");
  assert.match(await page.textContent("#voices-playing"), /Emma/);
  // Again: served from the store, the same clip.
  const again = await previewFrom(`tr[data-voice-id="${emma}"] button[data-action=preview]`, `/v1/voices/${emma}/preview`);
  assert.equal(again.cache, "hit");
  assert.equal(again.length, heard.length);
  const stored = await preview(`/voices/${emma}/preview`);
  assert.equal(stored.cache, "hit");
  assert.equal(stored.body.length, heard.length);
  const b = stored.body;
  assert.ok(b.subarray(0, 3).toString("latin1") === "ID3" || (b[0] === 0xff && (b[1] & 0xe0) === 0xe0), "an MP3");
  await shot("13-voices");

  // The engine and type filters, and the search.
  await page.selectOption("#voices-accent", "");
  await page.selectOption("#voices-gender", "");
  await page.selectOption("#voices-engine", "espeak-ng");
  await page.selectOption("#voices-type", "preset");
  await page.fill("#voices-search", "german");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#voices-list tbody tr")];
    return rows.length > 0 && rows.every((r) => r.dataset.engine === "espeak-ng" && r.dataset.type === "preset" && r.dataset.language.startsWith("de"));
  });
  await page.fill("#voices-search", "");
  await page.selectOption("#voices-engine", "");
  await page.selectOption("#voices-type", "");
});

test("a voice is designed with sliders, previewed, saved and deleted", async () => {
  const [bella, sky] = ["voice_ccb82c", "voice_f055e0"];
  const name = `E2E blend ${Math.random().toString(36).slice(2, 6)}`;
  await page.waitForSelector("#design-parts .design-part");
  await page.fill("#design-name", name);
  const parts = page.locator("#design-parts .design-part");
  assert.equal(await parts.count(), 2);
  await parts.nth(0).locator("select").selectOption(bella);
  await parts.nth(1).locator("select").selectOption(sky);
  // The sliders: 8 and 4, two thirds and one third.
  for (const [i, weight] of [
    [0, 8],
    [1, 4],
  ]) {
    await parts
      .nth(i)
      .locator("input[type=range]")
      .evaluate((el, w) => {
        el.value = String(w);
        el.dispatchEvent(new Event("input", { bubbles: true }));
      }, weight);
  }
  assert.equal(await page.textContent("#design-recipe"), `${bella}(8)+${sky}(4)`);
  assert.deepEqual(await parts.locator("output").allTextContents(), ["67%", "33%"]);
  assert.equal(await page.textContent("#design-recipe-text"), "67% Bella + 33% Sky");

  const blend = await previewFrom("#design-preview", "/v1/voices/preview?recipe=");
  assert.equal(blend.status, 200);
  assert.equal(blend.type, "audio/mpeg");
  assert.ok(blend.length > 8_000, `a preview of ${blend.length} bytes`);
  const played = await plays("#design-player");
  assert.ok(played.now > played.start, JSON.stringify(played));
  assert.equal(played.size, blend.length);
  await shot("14-voice-design");

  await page.click("#design-save");
  await page.waitForSelector("#design-result.ok[data-voice-id]");
  const id = await page.getAttribute("#design-result", "data-voice-id");
  const row = page.locator(`tr[data-voice-id="${id}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), new RegExp(name));
  assert.equal(await row.locator(".recipe").textContent(), "67% Bella + 33% Sky");
  const saved = await api("GET", `/voices/${id}`);
  assert.equal(saved.body.type, "designed");
  assert.deepEqual(
    saved.body.recipe.map((p) => [p.voiceId, Math.round(p.weight * 1000)]),
    [
      [bella, 667],
      [sky, 333],
    ],
  );
  // The saved voice is the blend: its preview is the one just rendered.
  const same = await previewFrom(`tr[data-voice-id="${id}"] button[data-action=preview]`, `/v1/voices/${id}/preview`);
  assert.equal(same.status, 200);
  assert.equal(same.cache, "hit");
  assert.equal(same.length, blend.length);
  const [ofVoice, ofRecipe] = [await preview(`/voices/${id}/preview`), await preview(`/voices/preview?recipe=${bella}(8)%2B${sky}(4)`)];
  assert.equal(ofRecipe.cache, "hit");
  assert.ok(ofVoice.body.equals(ofRecipe.body), "one recipe, one preview");
  await shot("15-voice-designed");

  await row.locator("button[data-action=delete]").click();
  await page.waitForSelector("dialog.modal");
  assert.match(await page.textContent("dialog.modal"), /cannot be undone/);
  await page.click("dialog.modal button[value=ok]");
  await page.waitForFunction((vid) => !document.querySelector(`tr[data-voice-id="${vid}"]`), id);
  assert.equal((await api("GET", `/voices/${id}`)).status, 404);
});

test("a voice is cloned from an uploaded WAV and followed until ready", async () => {
  // A sample of over 10 s of speech: generated through the API, downloaded.
  const g = await generate(
    "A recording for cloning: my voice reads a few plain sentences at an even pace. " +
      "The weather was mild this morning, and the trains ran on time. " +
      "We counted twelve boats in the harbour before lunch, then walked home along the river.",
  );
  assert.ok(g.durationMs >= 10_000, `a sample of ${g.durationMs} ms`);
  const audio = await fetch(`${BASE}/v1/generations/${g.id}/audio`, { headers: { Authorization: `Bearer ${KEY}` } });
  assert.equal(audio.status, 200);
  const wav = Buffer.from(await audio.arrayBuffer());
  assert.equal(wav.subarray(0, 4).toString(), "RIFF");

  await page.waitForFunction(() => document.querySelectorAll("#clone-engine option").length > 0);
  // Whether this server clones onto Kokoro (202, then processing) or only
  // onto espeak-ng (201, ready at once): the page handles both.
  const onlyEspeak = (await page.getAttribute("#clone-engine", "data-only")) === "espeak-ng";
  const engines = onlyEspeak ? ["espeak-ng"] : ["espeak-ng", "kokoro"];
  for (const engine of engines) {
    const name = `E2E clone ${engine} ${Math.random().toString(36).slice(2, 6)}`;
    await page.fill("#clone-name", name);
    await page.selectOption("#clone-language", "en-US");
    await page.selectOption("#clone-gender", "male");
    await page.selectOption("#clone-engine", engine);
    await page.setInputFiles("#clone-samples", { name: "speaker.wav", mimeType: "audio/wav", buffer: wav });
    await page.click("#clone-submit");
    if (engine === "kokoro") {
      await page.waitForSelector('#clone-status[data-status="processing"]', { timeout: 60_000 });
      await shot("16-voice-cloning");
    }
    await page.waitForSelector('#clone-status[data-status="ready"], #clone-status[data-status="failed"], #clone-status[data-status="error"]', {
      timeout: engine === "kokoro" ? 20 * 60_000 : 60_000,
    });
    const status = await page.getAttribute("#clone-status", "data-status");
    assert.equal(status, "ready", await page.textContent("#clone-status"));
    const id = await page.getAttribute("#clone-status", "data-voice-id");
    const voice = (await api("GET", `/voices/${id}`)).body;
    assert.equal(voice.status, "ready");
    assert.equal(voice.type, "cloned");
    assert.equal(voice.engine, engine);
    const similarity = await page.textContent("#clone-similarity");
    if (engine === "kokoro") {
      assert.ok(typeof voice.similarity === "number" && voice.similarity > 0 && voice.similarity <= 1, JSON.stringify(voice));
      assert.match(similarity, new RegExp(`^${voice.similarity.toFixed(3)}`));
    } else {
      assert.match(similarity, /not measured/);
    }
    // Listed (the list shows the new voice), and it has a preview.
    const row = page.locator(`tr[data-voice-id="${id}"]`);
    await row.waitFor();
    const heard = await previewFrom(`tr[data-voice-id="${id}"] button[data-action=preview]`, `/v1/voices/${id}/preview`);
    assert.equal(heard.status, 200);
    assert.ok(heard.length > 8_000, `a preview of ${heard.length} bytes`);
    await shot(`17-voice-cloned-${engine}`);
    assert.equal((await api("DELETE", `/voices/${id}`)).status, 204);
  }
});

test("no console error, page error or CSP violation happened", () => {
  assert.deepEqual(problems, []);
});
