// Every page. Widths given as data attributes (<div data-width="42"> is 42% wide): the Content
// Security Policy allows no style="..." in the HTML, but a script may set element.style. Applied on
// load and to whatever htmx swaps in (the run page's live progress bar).
(function () {
  "use strict";
  function applyWidths(root) {
    var elements = root.querySelectorAll ? root.querySelectorAll("[data-width]") : [];
    Array.prototype.forEach.call(elements, function (el) {
      var percent = parseFloat(el.getAttribute("data-width"));
      if (!isNaN(percent)) {
        el.style.width = Math.max(0, Math.min(100, percent)) + "%";
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { applyWidths(document); });
  document.addEventListener("htmx:load", function (event) {
    var elt = event.detail && event.detail.elt ? event.detail.elt : event.target;
    if (elt && elt.parentNode) {
      applyWidths(elt.parentNode);
    }
  });
})();
