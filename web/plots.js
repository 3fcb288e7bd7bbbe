// plots.js: bar histograms as inline SVG (no library). One <rect class="bar"> per bin, zero
// bins included (height 0), each with data-height and a <title> for the hover, so what is drawn
// can be checked against the JSON bin for bin.

const NS = 'http://www.w3.org/2000/svg';

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function fmt(x) {
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return x.toExponential(1);
  return String(Number(x.toPrecision(3)));
}

// values: each bin's left edge (Neuronpedia's *_bar_values), heights: counts.
// opts: {title, cls (colour class), width, height}. Returns the <svg>.
export function histogram(values, heights, opts = {}) {
  const W = opts.width || 320, H = opts.height || 140, padL = 34, padB = 22, padT = 6, padR = 6;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: `hist ${opts.cls || ''}`, role: 'img' });
  if (opts.title) el('title', {}, svg).textContent = opts.title;
  const n = heights.length;
  if (!n) {
    el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, svg).textContent = 'no data';
    return svg;
  }
  const maxH = Math.max(...heights, 1);
  const plotW = W - padL - padR, plotH = H - padT - padB, bw = plotW / n;
  const step = n > 1 ? values[1] - values[0] : 0;
  heights.forEach((h, i) => {
    const bh = (h / maxH) * plotH;
    const r = el('rect', {
      class: 'bar', x: (padL + i * bw).toFixed(2), y: (padT + plotH - bh).toFixed(2),
      width: Math.max(bw - 1, 0.5).toFixed(2), height: bh.toFixed(2), 'data-height': String(h),
    }, svg);
    const lo = values[i], hi = step ? lo + step : lo;
    el('title', {}, r).textContent = `${fmt(lo)} – ${fmt(hi)}: ${h}`;
  });
  // Axes: baseline, y max, x ends and zero when inside the range.
  el('line', { x1: padL, y1: padT + plotH, x2: W - padR, y2: padT + plotH, class: 'axis' }, svg);
  el('text', { x: padL - 4, y: padT + 8, 'text-anchor': 'end', class: 'tick' }, svg).textContent = String(maxH);
  el('text', { x: padL - 4, y: padT + plotH, 'text-anchor': 'end', class: 'tick' }, svg).textContent = '0';
  const x0 = values[0], x1 = values[n - 1] + step;
  el('text', { x: padL, y: H - 6, 'text-anchor': 'start', class: 'tick' }, svg).textContent = fmt(x0);
  el('text', { x: W - padR, y: H - 6, 'text-anchor': 'end', class: 'tick' }, svg).textContent = fmt(x1);
  if (x0 < 0 && x1 > 0) {
    const zx = padL + ((0 - x0) / (x1 - x0)) * plotW;
    el('line', { x1: zx, y1: padT, x2: zx, y2: padT + plotH, class: 'zero' }, svg);
  }
  return svg;
}
