// The second build's entry: the same app with more code before it.
import { banner, formatPrice } from "./extra.js";
banner(formatPrice(12.5, "EUR"));
import "./main.js";
