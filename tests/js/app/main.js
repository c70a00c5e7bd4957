import * as Sentry from "@sentry/browser";
import { checkout } from "./cart.js";

const config = window.HEARTH_TEST;
Sentry.init({
  dsn: config.dsn,
  release: config.release,
  // Only the global error handler: no breadcrumbs or session traffic the test does not read.
  defaultIntegrations: false,
  integrations: [Sentry.globalHandlersIntegration(), Sentry.linkedErrorsIntegration()],
});

function onBuy() {
  const result = checkout({ items: [{ price: 3, quantity: "two" }], currency: "EUR" });
  document.title = String(result.total);
}

document.getElementById("buy").addEventListener("click", onBuy);
window.HEARTH_READY = true;
