// DOM helpers. User data only ever becomes text nodes or attribute values: nothing here parses
// HTML, so an error message like `<img onerror=...>` stays text.

const SVG_NS = 'http://www.w3.org/2000/svg';

function setProps(el, props) {
  if (!props) return;
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'disabled' || k === 'open') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function appendKids(el, kids) {
  for (const k of kids.flat(Infinity)) {
    if (k == null || k === false) continue;
    el.append(k instanceof Node ? k : String(k));
  }
}

/** `h('div', {class: 'x', onclick: f}, 'text', child)` */
export function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  setProps(el, props);
  appendKids(el, kids);
  return el;
}

/** The same for SVG elements. */
export function s(tag, props, ...kids) {
  const el = document.createElementNS(SVG_NS, tag);
  setProps(el, props);
  appendKids(el, kids);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function fmtNum(n) {
  if (n == null) return '–';
  if (n >= 1e6) return (n / 1e6).toFixed(n >= 1e7 ? 0 : 1) + 'M';
  if (n >= 1e4) return (n / 1e3).toFixed(n >= 1e5 ? 0 : 1) + 'k';
  return String(n);
}

export function ago(ms) {
  if (!ms) return '–';
  const d = (Date.now() - ms) / 1000;
  if (d < 45) return 'just now';
  if (d < 90 * 60) return Math.round(d / 60) + 'm ago';
  if (d < 36 * 3600) return Math.round(d / 3600) + 'h ago';
  if (d < 60 * 86400) return Math.round(d / 86400) + 'd ago';
  return new Date(ms).toLocaleDateString();
}

export function when(ms) {
  if (!ms) return '–';
  return new Date(ms).toLocaleString();
}

export function timeEl(ms, rel = true) {
  return h('time', { datetime: ms ? new Date(ms).toISOString() : '', title: when(ms) }, rel ? ago(ms) : when(ms));
}

/** A sparkline as inline SVG (one rect per bucket: hours by default, or days). */
export function sparkline(values, unit = 'hours') {
  const vals = Array.isArray(values) && values.length ? values : new Array(24).fill(0);
  const max = Math.max(1, ...vals);
  const w = 120, hgt = 28, gap = 1, bw = w / vals.length - gap;
  const svg = s('svg', { class: 'spark', viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `events in the last ${unit === 'days' ? `${vals.length} days` : '24 hours'}: ${vals.reduce((a, b) => a + b, 0)}` });
  vals.forEach((v, i) => {
    const bh = v > 0 ? Math.max(2, (v / max) * (hgt - 2)) : 1;
    svg.append(s('rect', { class: v > 0 ? '' : 'zero', x: (i * (bw + gap)).toFixed(2), y: (hgt - bh).toFixed(2), width: bw.toFixed(2), height: bh.toFixed(2) },
      s('title', null, `${v} event${v === 1 ? '' : 's'}`)));
  });
  return svg;
}

/** A bar chart of `[{t_ms, count}]` with a few axis labels. */
export function barChart(points, labelFn, isTick) {
  const pts = Array.isArray(points) ? points : [];
  const W = 800, H = 180, padL = 36, padB = 20, padT = 8;
  const max = Math.max(1, ...pts.map(p => p.count || 0));
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img' });
  const iw = W - padL, ih = H - padB - padT;
  svg.append(s('line', { class: 'axis', x1: padL, y1: H - padB, x2: W, y2: H - padB }));
  svg.append(s('text', { x: 2, y: padT + 8 }, fmtNum(max)));
  svg.append(s('text', { x: 2, y: H - padB }, '0'));
  const bw = pts.length ? iw / pts.length : iw;
  const every = Math.max(1, Math.ceil(pts.length / 8));
  pts.forEach((p, i) => {
    const c = p.count || 0;
    const bh = c > 0 ? Math.max(1, (c / max) * ih) : 0;
    const x = padL + i * bw;
    svg.append(s('rect', { class: 'bar', x: (x + 0.5).toFixed(2), y: (H - padB - bh).toFixed(2), width: Math.max(0.5, bw - 1).toFixed(2), height: bh.toFixed(2) },
      s('title', null, `${labelFn(p.t_ms, true)}: ${c}`)));
    if ((isTick ? isTick(p.t_ms, i) : i % every === 0) && x < W - 40) svg.append(s('text', { x: x.toFixed(1), y: H - 5 }, labelFn(p.t_ms, false)));
  });
  return svg;
}

/** Copies `text`; falls back to selecting it when the clipboard API is unavailable. */
export async function copyText(text, fallbackEl) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (fallbackEl) {
      const r = document.createRange();
      r.selectNodeContents(fallbackEl);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(r);
    }
    return false;
  }
}
