(function () {
  "use strict";
  var controls = document.getElementById("controls");
  var table = document.getElementById("matrix-table");
  if (controls && table) {
    controls.hidden = false;
    var filter = document.getElementById("filter");
    var failing = document.getElementById("failing");
    var apply = function () {
      var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
      table.querySelectorAll("tbody").forEach(function (body) {
        var shown = 0;
        body.querySelectorAll("tr[data-name]").forEach(function (row) {
          var name = row.getAttribute("data-name").toLowerCase();
          var ok = words.every(function (w) { return name.indexOf(w) >= 0; }) &&
            !(failing.checked && row.getAttribute("data-pass") === "yes");
          row.hidden = !ok;
          if (ok) { shown += 1; }
        });
        body.hidden = shown === 0;
      });
    };
    filter.addEventListener("input", apply);
    failing.addEventListener("change", apply);
  }
  document.querySelectorAll("table.sortable").forEach(function (t) {
    t.querySelectorAll("thead th").forEach(function (th, index) {
      th.setAttribute("aria-sort", "none");
      th.title = "Sort by this column";
      th.addEventListener("click", function () {
        var body = t.tBodies[0];
        var down = th.getAttribute("aria-sort") !== "descending";
        var key = function (row) {
          var cell = row.children[index];
          var n = cell.getAttribute("data-sort");
          return n === null ? cell.textContent.trim().toLowerCase() : parseFloat(n);
        };
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a), y = key(b);
          var c = x < y ? -1 : (x > y ? 1 : 0);
          return down ? -c : c;
        });
        t.querySelectorAll("thead th").forEach(function (o) { o.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", down ? "descending" : "ascending");
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.documentElement.setAttribute("data-js", "ready");
}());
