// feature_page.mjs BASE_URL MODEL LAYER INDEX SHOT_DIR: drives saed's feature page in headless
// Chromium (Debian's, through playwright-core) against a running saed whose SAE has dashboards,
// and checks the rendered page against saed's JSON fetched directly: histogram bars per bin,
// logits, explanations, highlighted tokens and their values, a live activation test, a
// streamed steer, keyboard navigation, the start page (job bars, search) and a 390px phone
// viewport without horizontal overflow. Screenshots go to SHOT_DIR. Any console error or
// uncaught exception in a page fails. Exit 0 when all passed, 1 otherwise ("FAIL: ..." lines).
// Environment: SAED_PLAYWRIGHT (playwright-core folder), SAED_CHROMIUM (default /usr/bin/chromium).
import path from 'node:path';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

const [base, modelId, layer, index, shots] = process.argv.slice(2);
if (!shots) {
  console.error('usage: feature_page.mjs BASE_URL MODEL LAYER INDEX SHOT_DIR');
  process.exit(2);
}
const pwDir = process.env.SAED_PLAYWRIGHT || 'build/npm/playwright-core';
const { chromium } = await import(pathToFileURL(path.resolve(pwDir, 'index.mjs')).href);

let failures = 0;
const check = (cond, what) => {
  if (cond) console.log(`ok: ${what}`);
  else { failures++; console.log(`FAIL: ${what}`); }
};
const eq = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const enc = encodeURIComponent;
const featureUrl = (i) => `${base}/feature/${enc(modelId)}/${enc(layer)}/${i}`;
async function api(p, body) {
  const res = await fetch(base + p, body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${p}: ${res.status} ${await res.text()}`);
  return res.json();
}
const shown = (t) => t.replace(/\n/g, '↵').replace(/\t/g, '⇥');

const browser = await chromium.launch({
  executablePath: process.env.SAED_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const pageErrors = [];
// expected: a console error that page may show (a RegExp), at most once.
async function newPage(viewport, expected) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expected && expected.test(m.text())) { expected = null; return; }
    pageErrors.push(`console: ${m.text()} (${page.url()})`);
  });
  page.on('pageerror', (e) => pageErrors.push(`exception: ${e.message} (${page.url()})`));
  return page;
}
const loaded = (page, i) => page.waitForSelector(`body[data-loaded="${modelId}/${layer}/${i}"]`, { timeout: 15000 });

try {
  const f = await api(`/api/feature/${enc(modelId)}/${enc(layer)}/${index}`);
  const page = await newPage({ width: 1280, height: 900 });
  await page.goto(featureUrl(index));
  await loaded(page, index);

  // Histograms: one bar per bin, in order, each carrying its count; heights proportional.
  for (const [sel, hk] of [['#freq-hist', 'freq_hist_data_bar_heights'], ['#logits-hist', 'logits_hist_data_bar_heights']]) {
    const bars = await page.$$eval(`${sel} rect.bar`, (rs) => rs.map((r) => [Number(r.dataset.height), Number(r.getAttribute('height'))]));
    const want = f[hk];
    check(want.length > 0 && bars.length === want.length, `${sel}: ${bars.length} bars for ${want.length} bins`);
    check(eq(bars.map((b) => b[0]), want), `${sel}: bar counts equal ${hk}`);
    const top = Math.max(...want), tallest = Math.max(...bars.map((b) => b[1]));
    check(bars.every(([c, h]) => Math.abs(h - (c / top) * tallest) < 0.02 && (c === 0) === (h === 0)),
      `${sel}: bar heights proportional to the counts`);
  }

  // Explanations with their scores.
  const expl = await page.$$eval('#explanations li', (ls) => ls.map((l) => l.textContent));
  check(f.explanations.length > 0 && expl.length === f.explanations.length, `${f.explanations.length} explanations listed`);
  for (const e of f.explanations) {
    check(expl.some((t) => t.includes(e.description)), `explanation "${e.description}" shown`);
    for (const s of e.scores) check(expl.some((t) => t.includes(s.explanationScoreTypeName) && t.includes(Number(s.value).toFixed(3))),
      `score ${s.explanationScoreTypeName} ${s.value} shown`);
  }

  // Top logits, both signs: tokens and values in the JSON's order.
  for (const [sel, sk, vk] of [['#pos-logits', 'pos_str', 'pos_values'], ['#neg-logits', 'neg_str', 'neg_values']]) {
    const rows = await page.$$eval(`${sel} tr`, (rs) => rs.map((r) => [r.cells[0].textContent, Number(r.cells[1].dataset.value)]));
    check(rows.length === f[sk].length && rows.length > 0, `${sel}: ${rows.length} logits`);
    check(eq(rows.map((r) => r[0]), f[sk].map(shown)) && eq(rows.map((r) => r[1]), f[vk]), `${sel}: tokens and values equal ${sk}/${vk}`);
  }

  // Stored examples: every token span carries the JSON's value, and hovering shows it.
  const topActs = f.activations.filter((a) => a.binMin === -1), intervalActs = f.activations.filter((a) => a.binMin !== -1);
  const rows = await page.$$eval('#top-acts .example', (es) => es.map((e) => [...e.querySelectorAll('.tok')].map((s) => [s.textContent, Number(s.dataset.value), s.title])));
  check(topActs.length > 0 && rows.length === topActs.length, `${rows.length} top examples for ${topActs.length}`);
  let same = rows.length === topActs.length;
  topActs.forEach((a, k) => {
    same &&= eq(rows[k].map((t) => t[0]), a.tokens.map(shown)) && eq(rows[k].map((t) => t[1]), a.values) &&
      rows[k].every((t, i) => t[2].endsWith(`: ${a.values[i]}`));
  });
  check(same, 'top examples: tokens, data-value and hover title equal the JSON values');
  const hl = await page.$$eval('#top-acts .example:first-child .tok.on', (ss) => ss.map((s) => s.style.backgroundColor));
  check(hl.length === topActs[0].values.filter((v) => v !== 0).length && hl.every((c) => /^rgba?\(255, 140, 0\b/.test(c)),
    'first example: exactly its non-zero tokens highlighted');
  const maxTok = await page.$(`#top-acts .example:first-child .tok[data-i="${topActs[0].maxValueTokenIndex}"]`);
  await maxTok.hover();
  check((await maxTok.getAttribute('title')).endsWith(`: ${topActs[0].maxValue}`), 'hovered max token shows maxValue');
  // Every example outlines the token it was chosen by (qualifyingTokenIndex), one per row.
  const marks = await page.$$eval('#top-acts .example, #intervals .example', (es) => es.map((e) => [...e.querySelectorAll('.tok')].findIndex((t) => t.classList.contains('max'))));
  const quals = topActs.concat([...new Map(intervalActs.map((a) => [`${a.binMin}|${a.binMax}`, 0])).keys()]
    .sort((x, y) => Number(y.split('|')[0]) - Number(x.split('|')[0]))
    .flatMap((k) => intervalActs.filter((a) => `${a.binMin}|${a.binMax}` === k))).map((a) => a.qualifyingTokenIndex);
  check(quals.every(Number.isInteger) && eq(marks, quals), `${marks.length} examples outline their qualifyingTokenIndex (shown ${marks}, JSON ${quals})`);
  const ivals = await page.$$eval('#intervals .interval .tok', (ss) => ss.map((s) => Number(s.dataset.value)));
  check(intervalActs.length > 0 && eq(ivals.slice().sort((x, y) => x - y), intervalActs.flatMap((a) => a.values).sort((x, y) => x - y)),
    `interval examples: ${intervalActs.length} shown with their values`);

  // Neighbours by decoder cosine, as links.
  const nb = await page.$$eval('#neighbours a', (as) => as.map((a) => a.getAttribute('href')));
  check(nb.length === f.topkCosSimIndices.length && nb.every((h, i) => h.endsWith(`/${f.topkCosSimIndices[i]}`)),
    `${nb.length} neighbour links`);

  // Live activation test from the page against POST /api/activation/new answered directly.
  // The top example's own text: the page must show non-zero values, not only zeros.
  const text = topActs[0].tokens.filter((t) => t !== '<|endoftext|>').join('');
  await page.fill('#live-text', text);
  await page.click('#live-form button');
  await page.waitForSelector('#live-result .tok', { timeout: 20000 });
  const live = await page.$$eval('#live-result .tok', (ss) => ss.map((s) => [s.textContent, Number(s.dataset.value)]));
  const want = await api('/api/activation/new', { feature: { modelId, source: layer, index }, customText: text });
  check(want.values.some((v) => v !== 0), 'live test: the text activates the feature');
  check(eq(live.map((t) => t[0]), want.tokens.map(shown)) && eq(live.map((t) => t[1]), want.values),
    `live test: ${live.length} tokens with the values of /api/activation/new`);

  // Steering, streamed into both columns, equal to the (stored) non-stream answer.
  check(Number(await page.inputValue('#steer-strength')) === f.vectorDefaultSteerStrength, 'steer: the feature\'s default strength preset');
  await page.fill('#steer-strength', '40');
  await page.fill('#steer-tokens', '8');
  await page.click('#steer-form button');
  await page.waitForSelector('#steer-status[data-done="1"]', { timeout: 60000 });
  const steered = await page.textContent('#steer-steered'), plain = await page.textContent('#steer-default');
  const ref = await api('/api/steer', { prompt: 'The quick brown fox', modelId, features: [{ modelId, layer, index: Number(index), strength: 40 }],
    temperature: 0.5, n_tokens: 8, seed: 16, strength_multiplier: 1 });
  check(steered.length > 0 && plain.length > 0, 'steer: STEERED and DEFAULT columns filled');
  check(steered === ref.STEERED && plain === ref.DEFAULT, 'steer: columns equal /api/steer\'s answer');
  fs.mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: path.join(shots, 'feature-desktop.png'), fullPage: true });

  // Keyboard: → to the next feature (URL changes, page reloads in place), ← back.
  await page.click('h2');
  await page.keyboard.press('ArrowRight');
  const next = Number(index) + 1;
  await loaded(page, next);
  check(new URL(page.url()).pathname === `/feature/${enc(modelId)}/${enc(layer)}/${next}`, `→ goes to ${page.url()}`);
  const nf = await api(`/api/feature/${enc(modelId)}/${enc(layer)}/${next}`);
  const nbars = await page.$$eval('#freq-hist rect.bar', (rs) => rs.map((r) => Number(r.dataset.height)));
  check(eq(nbars, nf.freq_hist_data_bar_heights), 'next feature: its own histogram drawn');
  await page.keyboard.press('ArrowLeft');
  await loaded(page, index);
  check(new URL(page.url()).pathname.endsWith(`/${index}`), '← comes back');
  await page.goBack();
  await loaded(page, next);
  check(new URL(page.url()).pathname.endsWith(`/${next}`), 'Back follows the history');

  // Start page: the SAE with its job, and a search that finds the explanation. The first job
  // list it reads is saed's own with the job turned back to running half way (256 of 512
  // prompts), so the bar, its label and the polling that brings the real (completed) state
  // are seen; every later read is saed's answer untouched.
  let rewound = 0;
  await page.route('**/api/dashboard-jobs?*', async (route) => {
    const res = await route.fetch();
    const jobs = await res.json();
    if (rewound++ === 0 && jobs.length) {
      jobs[0].state = 'running';
      jobs[0].progress = { phase: 'encoding', promptsDone: 256, promptsTotal: 512, tokensPerSecond: 100, etaSeconds: 12 };
    }
    await route.fulfill({ response: res, json: jobs });
  });
  await page.goto(`${base}/`);
  const bar = await page.waitForSelector('progress[data-state="running"]', { timeout: 15000 });
  check(Number(await bar.evaluate((b) => b.value)) === 0.5 && (await bar.evaluate((b) => b.parentElement.textContent)).includes('running 50%, ~12 s left'),
    'start page: a running job\'s bar at 50% with its ETA');
  await page.waitForSelector('progress[data-state="completed"]', { timeout: 15000 });
  check(rewound >= 2, 'start page: polled the jobs again while one was running');
  await page.unroute('**/api/dashboard-jobs?*');
  const links = await page.$$eval('.sae a', (as) => as.map((a) => a.getAttribute('href')));
  check(links.includes(`/feature/${enc(modelId)}/${enc(layer)}/0`), 'start page links the SAE\'s dashboards');
  const q = f.explanations[0].description;
  await page.fill('#search-q', q);
  await page.click('#search-form button');
  await page.waitForSelector('#search-results a', { timeout: 15000 });
  const hits = await page.$$eval('#search-results a', (as) => as.map((a) => a.getAttribute('href')));
  check(hits.includes(`/feature/${enc(modelId)}/${enc(layer)}/${index}`), `search "${q}" links the feature`);

  // An unknown feature: the page says so (Neuronpedia's message). The browser reports the
  // 404 of that fetch on the console itself; only that one line is expected there.
  const lost = await newPage({ width: 1280, height: 900 }, /status of 404/);
  await lost.goto(featureUrl(999999));
  await lost.waitForFunction(() => document.getElementById('status').textContent.includes('not available'), null, { timeout: 15000 });
  check(await lost.$eval('#body', (b) => b.hidden), 'unknown feature: "not available" shown, no dashboard');

  // Phone: 390px wide, nothing wider than the viewport.
  const phone = await newPage({ width: 390, height: 844 });
  await phone.goto(featureUrl(index));
  await loaded(phone, index);
  const [sw, cw] = await phone.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  check(sw <= 390 && cw === 390, `phone: feature page ${sw}px wide in a 390px viewport`);
  await phone.screenshot({ path: path.join(shots, 'feature-phone.png'), fullPage: true });
  await phone.goto(`${base}/`);
  await phone.waitForSelector('progress[data-state="completed"]', { timeout: 15000 });
  const iw = await phone.evaluate(() => document.documentElement.scrollWidth);
  check(iw <= 390, `phone: start page ${iw}px wide`);
  await phone.screenshot({ path: path.join(shots, 'index-phone.png'), fullPage: true });
} catch (e) {
  failures++;
  console.log(`FAIL: ${e.stack || e}`);
}
for (const e of pageErrors) console.log(`FAIL: ${e}`);
failures += pageErrors.length;
await browser.close();
console.log(failures ? `${failures} check(s) failed` : 'all checks passed');
process.exit(failures ? 1 : 0);
