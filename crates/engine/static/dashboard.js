// Wharf dashboard: the little behaviour HTML cannot do alone. Loaded as a file, never inline,
// so the Content-Security-Policy can forbid inline script. Every page works without it.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // Forms that destroy something ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });
  // Forms whose change has a consequence (a verified destination loses its verification) ask
  // first, but only when a field was really changed: saving a step unchanged clears nothing.
  // A field marked data-changes-when-filled (a token left empty keeps the stored one) counts
  // as a change whenever it holds something. A button marked data-skip-confirm never asks.
  function changed(form) {
    return Array.prototype.some.call(form.elements, function (el) {
      if (el.type === "hidden" || el.type === "submit" || el.type === "button") { return false; }
      if (el.hasAttribute("data-changes-when-filled")) { return el.value !== ""; }
      if (el.tagName === "SELECT") {
        // With no option marked selected, the page opened on the first one.
        var initial = Array.prototype.find.call(el.options, function (o) { return o.defaultSelected; })
          || el.options[0];
        return initial !== undefined && el.value !== initial.value;
      }
      if (el.type === "radio" || el.type === "checkbox") { return el.checked !== el.defaultChecked; }
      return el.value !== el.defaultValue;
    });
  }
  document.querySelectorAll("form[data-confirm-change]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (event.submitter && event.submitter.hasAttribute("data-skip-confirm")) { return; }
      if (changed(form) && !window.confirm(form.getAttribute("data-confirm-change"))) {
        event.preventDefault();
      }
    });
  });
  // Copy buttons: data-copy-text holds the text to copy (a whole ID shown shortened).
  document.querySelectorAll("button[data-copy-text]").forEach(function (button) {
    button.addEventListener("click", function () {
      if (navigator.clipboard) {
        navigator.clipboard.writeText(button.getAttribute("data-copy-text")).then(function () {
          button.textContent = "Copied";
        });
      }
    });
  });
  // Copy buttons: data-copy names the element whose text is copied.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.textContent).then(function () {
          button.textContent = "Copied";
        });
      }
    });
  });
});
