// A tiny shop: the bug is in computeTotal, two calls below the click handler.
export function computeTotal(items) {
  let total = 0;
  for (const item of items) {
    total += item.price * item.quantity;
  }
  if (!Number.isFinite(total)) {
    throw new Error("cart total is not a number");
  }
  return total;
}

export function checkout(cart) {
  const total = computeTotal(cart.items);
  return { total, currency: cart.currency };
}
