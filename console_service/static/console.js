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

// --- Confirmation dialogs (every page that asks before a destructive action) ---
// A link `<a data-confirm-dialog="ID" href="...">` leads to a confirmation page; with this
// script it opens the `<dialog id="ID">` instead, which holds the same POST form. A form of the
// dialog marked `data-confirm-form` is pointed at the link's address (one dialog serving a
// list's rows), and `[data-confirm-subject]` shows the link's `data-subject`. Cancel is a
// `formmethod="dialog"` button, and Escape closes it too: no script needed to close.
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

// --- Parts of a form shown for one choice only (the job form's schedule kinds) ---
// `<fieldset data-shown-when="schedule_kind:cron">` is shown while the form's control named
// `schedule_kind` has the value `cron`; hidden, a fieldset is also disabled, so its inputs are
// not sent. Without JavaScript every part stays visible and the server reads the chosen one.
(function () {
  function sync(form) {
    form.querySelectorAll("[data-shown-when]").forEach(function (part) {
      var rule = part.getAttribute("data-shown-when").split(":");
      var control = form.elements.namedItem(rule[0]);
      if (!control) {
        return;
      }
      var shown = control.value === rule[1];
      part.hidden = !shown;
      if (part.tagName === "FIELDSET") {
        part.disabled = !shown;
      }
    });
  }

  function syncAll() {
    document.querySelectorAll("form").forEach(function (form) {
      if (form.querySelector("[data-shown-when]")) {
        sync(form);
      }
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.form && event.target.tagName === "SELECT") {
      sync(event.target.form);
    }
  });
  document.addEventListener("input", function (event) {
    if (event.target.form && event.target.tagName === "SELECT") {
      sync(event.target.form);
    }
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", syncAll);
  } else {
    syncAll();
  }
})();
// --- Pages shown once ---
// A page shown once (a new client secret, the answer to a POST) names the page that stands
// for it afterwards: reloading or going back shows that one, never this one again.
document.addEventListener("DOMContentLoaded", function () {
  var once = document.querySelector("[data-replace-url]");
  if (once) {
    history.replaceState(null, "", once.getAttribute("data-replace-url"));
  }
});
