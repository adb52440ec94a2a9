// Keyboard shortcuts for the review pages (progressive enhancement: the pages work without it).
// Queue: j/k move between items, Enter opens. Item: j/k next/previous item, r/n choose the label,
// s saves. Keys are ignored while typing in a field; Escape leaves the field.
(function () {
  "use strict";

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select" || target.isContentEditable) return true;
    return tag === "input" && !/^(radio|checkbox|button|submit)$/.test(target.type);
  }

  function setupQueue(table) {
    var rows = Array.prototype.slice.call(table.querySelectorAll("tr[data-item]"));
    if (!rows.length) return;
    var current = -1;
    function select(index) {
      if (index < 0 || index >= rows.length) return;
      if (current >= 0) rows[current].classList.remove("current");
      current = index;
      rows[current].classList.add("current");
      rows[current].querySelector("a").focus();
    }
    rows.forEach(function (row, i) {
      row.querySelector("a").addEventListener("focus", function () {
        if (current >= 0) rows[current].classList.remove("current");
        current = i;
        row.classList.add("current");
      });
    });
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
      if (event.key === "j") { event.preventDefault(); select(current + 1); }
      else if (event.key === "k") { event.preventDefault(); select(Math.max(current - 1, 0)); }
    });
  }

  function setupItem(form) {
    var rate = form.querySelector("[data-rate-criteria]");
    form.querySelectorAll("[data-criterion]").forEach(function (box) {
      box.addEventListener("change", function () { if (rate) rate.checked = true; });
    });
    function go(selector) {
      var link = document.querySelector(selector);
      if (link) window.location.assign(link.href);
    }
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (typing(event.target)) {
        if (event.key === "Escape") event.target.blur();
        return;
      }
      var radio;
      switch (event.key) {
        case "r": radio = form.querySelector("#resolved-yes"); break;
        case "n": radio = form.querySelector("#resolved-no"); break;
        case "s": event.preventDefault(); form.requestSubmit(); return;
        case "j": go("[data-next]"); return;
        case "k": go("[data-prev]"); return;
        default: return;
      }
      event.preventDefault();
      radio.checked = true;
      radio.focus();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.querySelector("[data-queue]");
    if (table) setupQueue(table);
    var form = document.querySelector("[data-label-form]");
    if (form) setupItem(form);
  });
})();
