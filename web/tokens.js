// tokens.js: one text as token spans shaded by activation. Each span carries its exact value
// (data-value, as the JSON had it) and shows token and value on hover (title); the colour is
// the value over the feature's maximum, orange for positive and blue for negative.

// Tokens as dashboards print them: newlines and tabs made visible, nothing dropped.
export function displayToken(t) {
  return t.replace(/\n/g, '↵').replace(/\t/g, '⇥');
}

function shade(v, max) {
  if (!v || !max) return '';
  const a = Math.min(Math.abs(v) / max, 1);
  return v > 0 ? `rgba(255, 140, 0, ${(0.15 + 0.85 * a).toFixed(3)})` : `rgba(60, 120, 255, ${(0.15 + 0.85 * a).toFixed(3)})`;
}

// Returns a <span class="toks"> of tokens; max (> 0) scales the colours (default: this text's
// largest |value|); mark: index of a token to outline (the example's own token).
export function tokenLine(tokens, values, max, mark = -1) {
  const line = document.createElement('span');
  line.className = 'toks';
  const scale = max > 0 ? max : Math.max(0, ...values.map(Math.abs));
  tokens.forEach((t, i) => {
    const s = document.createElement('span');
    const v = values[i] ?? 0;
    s.className = v ? 'tok on' : 'tok';
    if (i === mark) s.classList.add('max');
    s.textContent = displayToken(t);
    s.dataset.value = String(v);
    s.dataset.i = String(i);
    s.title = `${JSON.stringify(t)}: ${v}`;
    const bg = shade(v, scale);
    if (bg) s.style.backgroundColor = bg;
    line.appendChild(s);
  });
  return line;
}
