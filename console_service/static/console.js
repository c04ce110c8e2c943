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

// --- Confirmation dialogs (history and webhook pages) ---
// A link `<a data-confirm-dialog="ID" href="...">` leads to a confirmation page; with this
// script it opens the `<dialog id="ID">` instead. A form of the dialog marked
// `data-confirm-form` is pointed at the link's address, and `[data-confirm-subject]` shows the
// link's `data-subject`. Cancel is a `formmethod="dialog"` button: no script needed to close.
document.addEventListener("click", function (event) {
  var link = event.target.closest ? event.target.closest("a[data-confirm-dialog]") : null;
  if (!link) {
    return;
  }
  var dialog = document.getElementById(link.getAttribute("data-confirm-dialog"));
  if (!dialog || typeof dialog.showModal !== "function") {
    return; // the confirmation page it links to
  }
  event.preventDefault();
  var form = dialog.querySelector("form[data-confirm-form]");
  if (form) {
    form.setAttribute("action", link.getAttribute("href").split("?")[0]);
  }
  var subject = dialog.querySelector("[data-confirm-subject]");
  if (subject) {
    subject.textContent = link.getAttribute("data-subject") || "";
  }
  dialog.showModal();
});
