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

// --- Jobs: confirmation dialogs ---
// A link with `data-dialog="<id>"` (cancel, delete) opens that <dialog>, which holds the same
// POST form as the confirmation page the link leads to without JavaScript. Escape or its
// "Keep" button (formmethod="dialog") closes it without sending anything.
document.addEventListener("click", function (event) {
  var link = event.target.closest ? event.target.closest("a[data-dialog]") : null;
  if (!link) {
    return;
  }
  var dialog = document.getElementById(link.getAttribute("data-dialog"));
  if (!dialog || typeof dialog.showModal !== "function") {
    return;
  }
  event.preventDefault();
  dialog.showModal();
});
