(function () {
  "use strict";
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input[data-filter]"));
  function chosen(kind) {
    var set = {};
    boxes.forEach(function (box) {
      if (box.getAttribute("data-filter") === kind && box.checked) { set[box.value] = true; }
    });
    return set;
  }
  function apply() {
    var severity = chosen("severity"), category = chosen("category"), status = chosen("status");
    var shown = 0;
    document.querySelectorAll("[data-finding]").forEach(function (el) {
      var on = severity[el.getAttribute("data-severity")] === true &&
        category[el.getAttribute("data-category")] === true &&
        status[el.getAttribute("data-status")] === true;
      el.classList.toggle("off", !on);
      if (on && el.tagName === "TR") { shown += 1; }
    });
    document.querySelectorAll("tbody[data-group]").forEach(function (group) {
      group.classList.toggle("off", group.querySelector("tr[data-finding]:not(.off)") === null);
    });
    var count = document.getElementById("shown-count");
    if (count) { count.textContent = String(shown); }
  }
  boxes.forEach(function (box) { box.addEventListener("change", apply); });
  document.querySelectorAll("button[data-all]").forEach(function (button) {
    button.addEventListener("click", function () {
      var kind = button.getAttribute("data-all");
      var all = boxes.filter(function (b) { return b.getAttribute("data-filter") === kind; });
      var on = all.some(function (b) { return !b.checked; });
      all.forEach(function (b) { b.checked = on; });
      apply();
    });
  });
  apply();
  document.documentElement.setAttribute("data-filters", "ready");
})();
