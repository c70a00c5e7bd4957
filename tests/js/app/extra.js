// Only in the second build: more code, so the minifier picks other names.
export function formatPrice(value, currency) {
  return new Intl.NumberFormat("en", { style: "currency", currency }).format(value);
}
export function banner(text) {
  const el = document.createElement("p");
  el.textContent = text;
  document.body.appendChild(el);
}
