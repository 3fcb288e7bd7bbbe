// index.js: the start page: every model with its SAEs, each SAE's dashboard jobs as progress
// bars (refreshed while one is queued or running), a jump to a feature index, and a search
// over explanations (POST /api/explanation/search-all).
import { getJSON, postJSON, featurePath } from './api.js';

const $ = (id) => document.getElementById(id);
const h = (tag, props = {}, ...kids) => {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...kids);
  return e;
};

function jobBar(job) {
  const p = job.progress || {};
  const total = p.promptsTotal || p.featuresTotal || p.bytesTotal || 0;
  const done = p.promptsDone ?? p.featuresDone ?? p.bytesDone ?? 0;
  const frac = job.state === 'completed' ? 1 : total ? Math.min(done / total, 1) : 0;
  const bar = h('progress', { max: 1, value: frac });
  bar.dataset.state = job.state;
  let label = `job ${job.id}: ${job.state}`;
  if (job.state === 'running' && total) label += ` ${Math.round(100 * frac)}%${p.etaSeconds ? `, ~${Math.round(p.etaSeconds)} s left` : ''}`;
  if (job.state === 'failed' && job.lastError) label += ` (${job.lastError})`;
  return h('div', { className: 'job' }, bar, h('span', { className: 'muted', textContent: ` ${label}` }));
}

function saeRow(sae, jobs) {
  const li = h('li', { className: 'sae' });
  const title = sae.hasDashboards
    ? h('a', { href: featurePath(sae.modelId, sae.id, 0), textContent: sae.id })
    : h('span', { textContent: sae.id });
  const info = h('span', { className: 'muted', textContent: ` ${sae.architecture}, ${sae.hookName}, ${sae.dSae} features` });
  li.append(title, info);
  if (sae.hasDashboards) {
    const input = h('input', { type: 'number', min: 0, max: sae.dSae - 1, placeholder: 'index', className: 'jump' });
    const form = h('form', { className: 'row inline' }, input, h('button', { type: 'submit', textContent: 'Open' }));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (input.value !== '') location.href = featurePath(sae.modelId, sae.id, input.value);
    });
    li.append(form);
  }
  li.append(...jobs.filter((j) => j.saeId === sae.id).map(jobBar));
  return li;
}

let timer = null;
async function loadModels() {
  try {
    const [models, saes] = await Promise.all([getJSON('/api/models'), getJSON('/api/saes')]);
    const jobs = (await Promise.all(models.map((m) => getJSON(`/api/dashboard-jobs?modelId=${encodeURIComponent(m.id)}`)))).flat();
    $('models').replaceChildren(...models.map((m) => h('div', { className: 'model' },
      h('h3', { textContent: m.displayName || m.id }, h('span', { className: 'muted', textContent: ` ${m.id} · ${m.architecture}, ${m.layers} layers` })),
      h('ul', { className: 'saes' }, ...saes.filter((s) => s.modelId === m.id).map((s) => saeRow(s, jobs))))));
    $('models-status').textContent = models.length ? '' : 'No models registered yet (POST /api/models).';
    const active = jobs.some((j) => j.state === 'running' || j.state === 'available');
    clearTimeout(timer);
    if (active) timer = setTimeout(loadModels, 2000);
  } catch (e) {
    $('models-status').textContent = `Error: ${e.message}`;
  }
}

let query = '', nextOffset = 0;
async function search(more) {
  if (!more) {
    query = $('search-q').value.trim();
    nextOffset = 0;
    $('search-results').replaceChildren();
  }
  $('search-status').textContent = 'Searching…';
  try {
    const res = await postJSON('/api/explanation/search-all', { query, offset: nextOffset });
    $('search-results').append(...res.results.map((r) => h('li', {},
      h('a', { href: featurePath(r.modelId, r.layer, r.index), textContent: `${r.modelId} ${r.layer} #${r.index}` }),
      h('span', { textContent: ` ${r.description}` }))));
    const n = $('search-results').childElementCount;
    $('search-status').textContent = `${n} result${n === 1 ? '' : 's'}${res.hasMore ? ' so far' : ''}`;
    nextOffset = res.nextOffset;
    $('search-more').hidden = !res.hasMore;
  } catch (e) {
    $('search-status').textContent = `Error: ${e.message}`;
  }
}

$('search-form').addEventListener('submit', (ev) => { ev.preventDefault(); search(false); });
$('search-more').addEventListener('click', () => search(true));
loadModels();
