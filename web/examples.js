// examples.js: the feature's stored activations. Neuronpedia marks the top examples with
// binMin = -1; the others are interval (quantile) samples, one group per [binMin, binMax],
// shown highest interval first.
import { tokenLine } from './tokens.js';

// The outlined token is the one the example was chosen (or binned) by: several examples can
// share a text, each chosen by another of its tokens. Older imports lack the index: the max.
function exampleRow(act, max) {
  const row = document.createElement('div');
  row.className = 'example';
  const badge = document.createElement('span');
  badge.className = 'badge';
  badge.textContent = Number(act.maxValue).toFixed(3);
  badge.title = 'the example\'s maximum';
  const qual = Number.isInteger(act.qualifyingTokenIndex) ? act.qualifyingTokenIndex : act.maxValueTokenIndex;
  row.append(badge, tokenLine(act.tokens, act.values, max, qual));
  return row;
}

export function renderExamples(topEl, intervalsEl, feature) {
  const acts = feature.activations || [];
  const max = feature.maxActApprox || Math.max(0, ...acts.map((a) => a.maxValue));
  topEl.replaceChildren(...acts.filter((a) => a.binMin === -1).map((a) => exampleRow(a, max)));
  if (!topEl.childElementCount) topEl.textContent = 'No stored examples.';

  const groups = new Map();
  for (const a of acts) {
    if (a.binMin === -1) continue;
    const key = `${a.binMin}|${a.binMax}`;
    if (!groups.has(key)) groups.set(key, { lo: a.binMin, hi: a.binMax, acts: [] });
    groups.get(key).acts.push(a);
  }
  const sorted = [...groups.values()].sort((x, y) => y.lo - x.lo);
  intervalsEl.replaceChildren(...sorted.map((g) => {
    const sec = document.createElement('div');
    sec.className = 'interval';
    const h = document.createElement('h3');
    h.textContent = `Interval ${g.lo.toFixed(3)} – ${g.hi.toFixed(3)}`;
    const list = document.createElement('div');
    list.className = 'examples';
    list.append(...g.acts.map((a) => exampleRow(a, max)));
    sec.append(h, list);
    return sec;
  }));
  if (!sorted.length) intervalsEl.textContent = 'No interval examples.';
}
