// The pages' own behaviour, as listeners on htmx and DOM events: the Content-Security-Policy
// allows no inline script and no inline event handler (hx-on, onclick), so none is written.
(function () {
  "use strict";

  // An element marked data-swap-refusals="403 409 422" lets htmx swap in those answers too:
  // they carry the form back with its messages (or the refusal), not an error page.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var holder = event.target.closest("[data-swap-refusals]");
    if (!holder) { return; }
    var statuses = holder.getAttribute("data-swap-refusals").split(/\s+/).map(Number);
    if (statuses.indexOf(event.detail.xhr.status) >= 0) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // A form marked data-once disables the (unnamed) button that submitted it: a double click
  // must not refund or redeem twice. A named button stays enabled, so that its value is sent.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.hasAttribute("data-once") && event.submitter && !event.submitter.name) {
      event.submitter.disabled = true;
    }
  });

  // A split refund's live total: the sum of its parts' amounts, in whole minor units (no
  // floating point), shown as the user types. The server checks and books; this only adds.
  function minorUnits(text, digits) {
    var clean = String(text).replace(/[,\s]/g, "");
    var match = /^(\d*)(?:\.(\d*))?$/.exec(clean);
    if (!clean || !match || (match[2] || "").length > digits) { return null; }
    var fraction = ((match[2] || "") + "000000").slice(0, digits);
    return parseInt(match[1] || "0", 10) * Math.pow(10, digits) + parseInt(fraction || "0", 10);
  }
  function showTotal(form) {
    var out = form.querySelector("[data-live-total-out]");
    if (!out) { return; }
    var digits = parseInt(out.getAttribute("data-digits") || "2", 10);
    var total = 0, bad = false;
    form.querySelectorAll("[data-part-amount]").forEach(function (input) {
      if (!input.value.trim()) { return; }
      var minor = minorUnits(input.value, digits);
      if (minor === null) { bad = true; } else { total += minor; }
    });
    var whole = Math.floor(total / Math.pow(10, digits));
    var part = String(total % Math.pow(10, digits));
    while (part.length < digits) { part = "0" + part; }
    out.textContent = bad ? "Check the amounts" : whole.toLocaleString("en-US") +
      (digits ? "." + part : "");
  }
  document.addEventListener("input", function (event) {
    var form = event.target.closest ? event.target.closest("form[data-live-total]") : null;
    if (form) { showTotal(form); }
  });
  document.querySelectorAll("form[data-live-total]").forEach(showTotal);

  // A link in a <details> menu closes the menu when it is followed in place (hx-get).
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("details.menu a") : null;
    if (link) { link.closest("details").open = false; }
  });
})();

// New invoice: picking a package template makes the row a package line named after it.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var pick = event.target.closest ? event.target.closest("select[data-template-pick]") : null;
    if (!pick) { return; }
    var row = pick.closest("[data-line-row]");
    if (!row || !pick.value) { return; }
    var kind = row.querySelector("select[name$='-kind']");
    var description = row.querySelector("input[name$='-description']");
    if (kind) { kind.value = "package"; }
    if (description && !description.value) {
      description.value = pick.options[pick.selectedIndex].text;
    }
  });
})();

// Menus (<details class="menu">: Refund ▾, ⋮, I want to): opening one closes the others and
// puts the focus on its first item; Escape closes it and gives the focus back to its button;
// a click outside closes it; the arrow keys move between its items.
(function () {
  "use strict";
  function items(menu) {
    return Array.prototype.slice.call(menu.querySelectorAll(".menu-items a, .menu-items button"));
  }
  function closeAll(except) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (menu !== except) { menu.open = false; }
    });
  }
  document.addEventListener("toggle", function (event) {
    var menu = event.target;
    if (!(menu.matches && menu.matches("details.menu")) || !menu.open) { return; }
    closeAll(menu);
    var first = items(menu)[0];
    if (first) { first.focus(); }
  }, true);
  document.addEventListener("keydown", function (event) {
    var menu = event.target.closest ? event.target.closest("details.menu[open]") : null;
    if (!menu) { return; }
    if (event.key === "Escape") {
      menu.open = false;
      menu.querySelector("summary").focus();
      event.preventDefault();
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      var list = items(menu);
      var at = list.indexOf(document.activeElement);
      var next = event.key === "ArrowDown" ? at + 1 : at - 1;
      if (list.length) { list[(next + list.length) % list.length].focus(); }
      event.preventDefault();
    }
  });
  document.addEventListener("click", function (event) {
    if (!event.target.closest || !event.target.closest("details.menu")) { closeAll(null); }
  });
})();
