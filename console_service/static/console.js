// The console's only script of its own. Everything works without it (plain links, GET forms,
// POST forms with their hidden `csrf` field); it only lets htmx's requests carry the session's
// CSRF token, which the server requires on every state change (console_service/security.py).
"use strict";

document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) {
    event.detail.headers["X-CSRF-Token"] = meta.content;
  }
});
