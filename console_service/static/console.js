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

// --- Admin pages -----------------------------------------------------------------------------
// A link to a confirmation page (`data-confirm-dialog="<dialog id>"`) opens that dialog
// instead, which holds the same POST form; without JavaScript the link opens the page.
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("a[data-confirm-dialog]");
  if (!link) {
    return;
  }
  var dialog = document.getElementById(link.getAttribute("data-confirm-dialog"));
  if (dialog && typeof dialog.showModal === "function") {
    event.preventDefault();
    dialog.showModal();
  }
});

// A page shown once (a new client secret, the answer to a POST) names the page that stands
// for it afterwards: reloading or going back shows that one, never this one again.
document.addEventListener("DOMContentLoaded", function () {
  var once = document.querySelector("[data-replace-url]");
  if (once) {
    history.replaceState(null, "", once.getAttribute("data-replace-url"));
  }
});
