// live.js: "Test activation": the typed text through POST /api/activation/new for the feature
// on screen, shown as highlighted tokens like the stored examples.
import { postJSON } from './api.js';
import { tokenLine } from './tokens.js';

// current() returns the feature JSON on screen (it changes as the user navigates).
export function setupLive(current) {
  const form = document.getElementById('live-form');
  const text = document.getElementById('live-text');
  const status = document.getElementById('live-status');
  const out = document.getElementById('live-result');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = current();
    if (!f) return;
    status.textContent = 'Running…';
    out.replaceChildren();
    try {
      const res = await postJSON('/api/activation/new', {
        feature: { modelId: f.modelId, source: f.layer, index: f.index },
        customText: text.value,
      });
      const row = document.createElement('div');
      row.className = 'example';
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = Number(res.maxValue).toFixed(3);
      row.append(badge, tokenLine(res.tokens, res.values, Math.max(f.maxActApprox || 0, res.maxValue),
        res.maxValue > 0 ? res.maxValueTokenIndex : -1));
      out.replaceChildren(row);
      status.textContent = `max ${res.maxValue} at token ${res.maxValueTokenIndex}`;
    } catch (e) {
      status.textContent = `Error: ${e.message}`;
    }
  });
  // A new feature: the old result no longer applies.
  return () => { out.replaceChildren(); status.textContent = ''; };
}
