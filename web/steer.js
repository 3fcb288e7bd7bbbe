// steer.js: the steering box: POST /api/steer with "stream": true for the feature on screen at
// the chosen strength; STEERED and DEFAULT fill side by side as the events arrive.
import { postStream } from './api.js';

export function setupSteer(current) {
  const $ = (id) => document.getElementById(id);
  const form = $('steer-form'), status = $('steer-status');
  const steered = $('steer-steered'), plain = $('steer-default');
  let inflight = null;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = current();
    if (!f) return;
    if (inflight) inflight.abort();
    const ctl = new AbortController();
    inflight = ctl;
    steered.textContent = plain.textContent = '';
    status.textContent = 'Generating…';
    const body = {
      prompt: $('steer-prompt').value,
      modelId: f.modelId,
      features: [{ modelId: f.modelId, layer: f.layer, index: Number(f.index), strength: Number($('steer-strength').value) }],
      temperature: Number($('steer-temp').value),
      n_tokens: Number($('steer-tokens').value),
      seed: Number($('steer-seed').value),
      strength_multiplier: 1,
      stream: true,
    };
    try {
      const last = await postStream('/api/steer', body, (r) => {
        steered.textContent = r.STEERED;
        plain.textContent = r.DEFAULT;
      }, ctl.signal);
      status.textContent = last && last.id ? 'Done.' : 'Stopped.';
      status.dataset.done = last && last.id ? '1' : '';
    } catch (e) {
      if (e.name !== 'AbortError') status.textContent = `Error: ${e.message}`;
    } finally {
      if (inflight === ctl) inflight = null;
    }
  });
  // The feature's default strength (vectorDefaultSteerStrength) until the user picks one.
  const strength = $('steer-strength');
  strength.addEventListener('input', () => { strength.dataset.touched = '1'; });
  // Clears the outputs for a new feature; with the feature JSON, adopts its default strength.
  return (f) => {
    if (inflight) inflight.abort();
    steered.textContent = plain.textContent = status.textContent = '';
    status.dataset.done = '';
    if (f && f.vectorDefaultSteerStrength != null && !strength.dataset.touched) strength.value = f.vectorDefaultSteerStrength;
  };
}
