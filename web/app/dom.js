// Small DOM helpers: no framework, no HTML strings (text is always text).

/** $ returns the element with the id, which the page must have. */
export function $(id) {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} is missing from the page`);
  return e;
}

/**
 * el makes an element: el("li", {class: "x", dataset: {id: 1}, onclick}, child, "text").
 * null and false children are skipped.
 */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) e.append(c);
  }
  return e;
}

/** show shows one of the page's screens and hides the others. */
export function show(screen, others) {
  for (const o of others) o.hidden = o !== screen;
}

/** time formats an API timestamp as the local hour and minute. */
export function time(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
