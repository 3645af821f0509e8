// Keyboard shortcuts of the review page: c correct, x incorrect, e edit the corrected output,
// m comment, s or j skip. Letters do nothing while typing in a text box; there Ctrl+Enter (or
// Cmd+Enter) saves (the corrected output as a corrected verdict, a comment as comment only) and
// Esc leaves the box.
(function () {
  "use strict";

  function typing(target) {
    if (!target) return false;
    const tag = target.tagName;
    return tag === "TEXTAREA" || tag === "INPUT" || tag === "SELECT" || target.isContentEditable;
  }

  function click(id) {
    const node = document.getElementById(id);
    if (node) node.click();
  }

  function focusEnd(id) {
    const node = document.getElementById(id);
    if (!node) return;
    node.focus();
    const end = node.value.length;
    node.setSelectionRange(end, end);
  }

  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (typing(target)) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        click(target.id === "corrected_output" ? "verdict-corrected" : "verdict-comment");
      } else if (event.key === "Escape") {
        target.blur();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    switch (event.key) {
      case "c": click("verdict-correct"); break;
      case "x": click("verdict-incorrect"); break;
      case "e": focusEnd("corrected_output"); break;
      case "m": focusEnd("comment"); break;
      case "s":
      case "j": click("review-skip"); break;
      default: return;
    }
    event.preventDefault();
  });
})();
