// feature.js: the feature page: reads /feature/{modelId}/{layer}/{index} from the address,
// loads /api/feature for it and fills the page. Moving to another feature (←/→, the prev/next
// links, a neighbour) loads it in place and records it with history.pushState, so every
// feature has a permalink and Back works.
import { getJSON, featurePath, apiFeaturePath } from './api.js';
import { histogram } from './plots.js';
import { displayToken } from './tokens.js';
import { renderExamples } from './examples.js';
import { setupLive } from './live.js';
import { setupSteer } from './steer.js';

const $ = (id) => document.getElementById(id);
let feature = null, width = null, loadSeq = 0;

function parsePath(path) {
  const m = path.match(/^\/feature\/([^/]+)\/([^/]+)\/([^/]+)\/?$/);
  return m && { modelId: decodeURIComponent(m[1]), layer: decodeURIComponent(m[2]), index: decodeURIComponent(m[3]) };
}

function link(text, href) {
  const a = document.createElement('a');
  a.href = href;
  a.textContent = text;
  return a;
}

function renderExplanations(list) {
  const ul = $('explanations');
  if (!list.length) {
    const li = document.createElement('li');
    li.className = 'muted';
    li.textContent = 'No explanations yet.';
    ul.replaceChildren(li);
    return;
  }
  ul.replaceChildren(...list.map((e) => {
    const li = document.createElement('li');
    const d = document.createElement('span');
    d.className = 'desc';
    d.textContent = e.description;
    const meta = document.createElement('span');
    meta.className = 'meta';
    const parts = [e.explanationModelName, e.typeName].filter(Boolean);
    if (e.scoreV1 != null) parts.push(`scoreV1 ${e.scoreV1}`);
    if (e.scoreV2 != null) parts.push(`scoreV2 ${e.scoreV2}`);
    for (const s of e.scores || []) {
      if (s.value != null) parts.push(`${s.explanationScoreTypeName} ${Number(s.value).toFixed(3)}`);
    }
    meta.textContent = parts.join(' · ');
    li.append(d, meta);
    return li;
  }));
}

function renderLogits(tbody, strs, values) {
  tbody.replaceChildren(...strs.map((s, i) => {
    const tr = document.createElement('tr');
    const t = document.createElement('td');
    t.className = 'tokcell';
    t.textContent = displayToken(s);
    const v = document.createElement('td');
    v.className = 'num';
    v.textContent = Number(values[i]).toFixed(3);
    v.dataset.value = String(values[i]);
    tr.append(t, v);
    return tr;
  }));
}

function renderNeighbours(f) {
  const ul = $('neighbours');
  const idx = f.topkCosSimIndices || [], val = f.topkCosSimValues || [];
  const items = idx.map((n, i) => {
    const li = document.createElement('li');
    li.append(link(`#${n}`, featurePath(f.modelId, f.layer, n)));
    const c = document.createElement('span');
    c.className = 'muted';
    c.textContent = ` ${Number(val[i]).toFixed(3)}`;
    li.append(c);
    return li;
  });
  if (!items.length) items.push(Object.assign(document.createElement('li'), { textContent: 'none stored', className: 'muted' }));
  ul.replaceChildren(...items);
}

function renderHeader(f) {
  const c = $('crumbs');
  c.replaceChildren(link(f.modelId, '/'), document.createTextNode(' / '), document.createTextNode(f.layer),
    document.createTextNode(' / '), Object.assign(document.createElement('strong'), { textContent: `#${f.index}` }));
  document.title = `${f.modelId} ${f.layer} #${f.index} · saed`;
}

function setNavLinks(where) {
  const i = Number(where.index);
  const prev = $('prev'), next = $('next');
  const ok = Number.isInteger(i);
  prev.toggleAttribute('hidden', !ok || i <= 0);
  next.toggleAttribute('hidden', !ok || (width != null && i + 1 >= width));
  if (ok) {
    prev.href = featurePath(where.modelId, where.layer, i - 1);
    next.href = featurePath(where.modelId, where.layer, i + 1);
  }
}

function render(f) {
  renderHeader(f);
  renderExplanations(f.explanations || []);
  $('density').textContent = `${(100 * (f.frac_nonzero || 0)).toPrecision(3)}% of tokens`;
  $('freq-hist').replaceChildren(histogram(f.freq_hist_data_bar_values || [], f.freq_hist_data_bar_heights || [],
    { title: 'activation density', cls: 'freq' }));
  $('logits-hist').replaceChildren(histogram(f.logits_hist_data_bar_values || [], f.logits_hist_data_bar_heights || [],
    { title: 'logit weight distribution', cls: 'logit' }));
  renderLogits($('neg-logits'), f.neg_str || [], f.neg_values || []);
  renderLogits($('pos-logits'), f.pos_str || [], f.pos_values || []);
  renderNeighbours(f);
  renderExamples($('top-acts'), $('intervals'), f);
}

async function load(where) {
  const seq = ++loadSeq;
  resetLive();
  resetSteer();
  $('status').textContent = 'Loading…';
  $('status').hidden = false;
  setNavLinks(where);
  try {
    const f = await getJSON(apiFeaturePath(where.modelId, where.layer, where.index));
    if (seq !== loadSeq) return; // a later navigation won
    feature = f;
    width = f.source && f.source.saelensConfig ? f.source.saelensConfig.d_sae : null;
    setNavLinks(where);
    render(f);
    resetSteer(f);
    $('body').hidden = false;
    $('status').hidden = true;
    document.body.dataset.loaded = `${f.modelId}/${f.layer}/${f.index}`;
  } catch (e) {
    if (seq !== loadSeq) return;
    feature = null;
    $('body').hidden = true;
    $('status').textContent = e.message;
    document.body.dataset.loaded = '';
  }
}

function go(href) {
  const where = parsePath(new URL(href, location.href).pathname);
  if (!where) return false;
  history.pushState(null, '', featurePath(where.modelId, where.layer, where.index));
  load(where);
  return true;
}

// Feature links inside the page load in place.
document.addEventListener('click', (ev) => {
  const a = ev.target.closest && ev.target.closest('a[href^="/feature/"]');
  if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  if (go(a.href)) ev.preventDefault();
});

document.addEventListener('keydown', (ev) => {
  if (ev.target.closest && ev.target.closest('input, textarea, select, [contenteditable]')) return;
  if (ev.metaKey || ev.ctrlKey || ev.altKey) return;
  const id = ev.key === 'ArrowLeft' ? 'prev' : ev.key === 'ArrowRight' ? 'next' : null;
  if (!id || $(id).hidden || !$(id).href) return;
  ev.preventDefault();
  go($(id).href);
});

window.addEventListener('popstate', () => {
  const where = parsePath(location.pathname);
  if (where) load(where);
});

const resetLive = setupLive(() => feature);
const resetSteer = setupSteer(() => feature);
const start = parsePath(location.pathname);
if (start) load(start);
else $('status').textContent = 'Not a feature address: /feature/{modelId}/{layer}/{index}';
