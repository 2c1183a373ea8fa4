// reportgen: small comforts on top of pages that work without JavaScript.
// Keyboard shortcuts (with a switch to turn them off), a help overlay, sorting and filtering of the channel grid and
// of the classes index, and an
// overlay opacity slider. No inline styles (the page's CSP forbids them): only classes
// and the hidden attribute change.
(function () {
  "use strict";

  var root = document.documentElement;
  root.classList.add("js");

  function store(key, value) {
    try {
      if (value === undefined) return window.localStorage.getItem("reportgen." + key);
      window.localStorage.setItem("reportgen." + key, value);
    } catch (e) {
      // Storage can be unavailable (file:// in some browsers, private modes): ignore.
    }
    return null;
  }

  // A folder report has one page per document. A --single-file report holds every page
  // as a <section class="rg-page"> and shows the targeted one: work on that one.
  var pageRoots = document.querySelectorAll(".rg-page");
  function currentRoot() {
    if (!pageRoots.length) return document;
    var hash = window.location.hash.slice(1);
    if (hash) {
      var target = null;
      try { target = document.getElementById(decodeURIComponent(hash)); } catch (e) { target = null; }
      var section = target && target.closest(".rg-page");
      if (section) return section;
    }
    return document.querySelector(".rg-page.rg-home") || document;
  }
  function eachRoot(fn) {
    if (!pageRoots.length) fn(document);
    else Array.prototype.forEach.call(pageRoots, fn);
  }

  // ---- keyboard help, its button and the shortcut switch ------------------------
  // Made here, not in every page's markup: a report can have tens of thousands of pages,
  // and shortcuts need JavaScript anyway. Pages mark what a key follows with data-keys.
  var HELP = [
    ["\u2192 or n", "next channel, layer or model"],
    ["\u2190 or p", "previous channel, layer or model"],
    ["]", "next layer"], ["[", "previous layer"],
    ["u", "up one level"], ["h", "report home"],
    ["/", "filter the channels (layer pages) or the classes"],
    ["?", "show or hide this help"], ["Esc", "close this help"]
  ];
  // What each key follows, found by the page's structure (so the markup repeated on every
  // page carries no key names): the first and the parent breadcrumb, the pager's rel
  // links, and the links marked as the previous and next layer.
  var TARGETS = {
    home: "nav.crumbs li:first-child > a", up: "nav.crumbs li:nth-last-child(2) > a",
    prev: "nav.pager a[rel=prev]", next: "nav.pager a[rel=next]",
    "prev-layer": "nav.pager a[data-layer=prev]", "next-layer": "nav.pager a[data-layer=next]"
  };
  var SHORTCUTS = { prev: "ArrowLeft p", next: "ArrowRight n", up: "u", home: "h",
    "prev-layer": "[", "next-layer": "]" };
  var NAMES = { prev: "Previous", next: "Next", up: "Up", home: "Home",
    "prev-layer": "Previous layer", "next-layer": "Next layer" };
  // Shortcuts are on unless turned off (WCAG 2.1.4); the choice is kept where the browser
  // lets a page keep it (not every browser does from file://: then it lasts this page).
  var keysOn = store("shortcuts") !== "off";

  function make(tag, attrs, text) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text) el.textContent = text;
    return el;
  }
  function keyCell(text) {
    var cell = make("th", { scope: "row" });
    text.split(" or ").forEach(function (key, i) {
      if (i) cell.appendChild(document.createTextNode(" or "));
      cell.appendChild(make("kbd", {}, key));
    });
    return cell;
  }
  function buildHelp() {
    var help = make("dialog", { id: "keys-help", "class": "help", "aria-labelledby": "keys-help-h" });
    help.appendChild(make("h2", { id: "keys-help-h" }, "Keyboard shortcuts"));
    var body = make("tbody");
    HELP.forEach(function (row) {
      var tr = make("tr");
      tr.appendChild(keyCell(row[0]));
      tr.appendChild(make("td", {}, row[1]));
      body.appendChild(tr);
    });
    help.appendChild(make("table", { "class": "keys" })).appendChild(body);
    var label = make("label", { "class": "switch" });
    var box = make("input", { type: "checkbox", "data-keys-switch": "" });
    label.appendChild(box);
    label.appendChild(document.createTextNode(" Single-key shortcuts on (off: keys type and scroll as usual)"));
    help.appendChild(make("p")).appendChild(label);
    var close = make("button", { type: "button" }, "Close");
    help.appendChild(make("p")).appendChild(close);
    box.checked = keysOn;
    box.addEventListener("change", function () { setKeys(box.checked, true); });
    close.addEventListener("click", function () { help.close(); });
    help.addEventListener("click", function (event) {
      if (event.target === help) help.close(); // a click on the backdrop
    });
    document.body.appendChild(help);
    return help;
  }
  var help = buildHelp();
  var buttons = [];
  // One button per page header (a --single-file report has a header per page).
  Array.prototype.forEach.call(document.querySelectorAll("header.top .pager"), function (pager) {
    var button = make("button", { type: "button", "class": "keys-button", "aria-haspopup": "dialog" });
    button.addEventListener("click", toggleHelp);
    pager.appendChild(button);
    buttons.push(button);
  });
  // Every link a key follows, each with the names of its keys (once: pages do not change).
  var keyedLinks = [];
  Object.keys(TARGETS).forEach(function (name) {
    Array.prototype.forEach.call(document.querySelectorAll(TARGETS[name]), function (link) {
      if (!link.rgKeys) { link.rgKeys = []; keyedLinks.push(link); }
      link.rgKeys.push(name);
    });
  });
  function setKeys(on, remember) {
    keysOn = on;
    if (remember) store("shortcuts", on ? "on" : "off");
    buttons.forEach(function (button) {
      button.textContent = "";
      button.appendChild(make("kbd", {}, "?"));
      button.appendChild(document.createTextNode(on ? " keys" : " keys off"));
      button.title = on ? "Keyboard shortcuts (?)" : "Keyboard shortcuts are off";
      if (on) button.setAttribute("aria-keyshortcuts", "?");
      else button.removeAttribute("aria-keyshortcuts");
    });
    keyedLinks.forEach(function (link) {
      var names = link.rgKeys;
      var keys = names.map(function (n) { return SHORTCUTS[n]; });
      if (on && keys.length) {
        link.setAttribute("aria-keyshortcuts", keys.join(" "));
        link.title = NAMES[names[0]] + " (" + keys.join(", ").replace("ArrowLeft", "\u2190")
          .replace("ArrowRight", "\u2192") + ")";
      } else {
        link.removeAttribute("aria-keyshortcuts");
        link.removeAttribute("title");
      }
    });
  }
  setKeys(keysOn, false);
  function toggleHelp() {
    if (help.open) { help.close(); return; }
    if (typeof help.showModal === "function") help.showModal();
  }

  // ---- keyboard shortcuts ------------------------------------------------------
  var KEYS = {
    ArrowLeft: "prev", p: "prev", ArrowRight: "next", n: "next",
    "[": "prev-layer", "]": "next-layer", u: "up", h: "home"
  };
  function follow(name) {
    var link = currentRoot().querySelector(TARGETS[name]);
    if (link && link.href) {
      window.location.href = link.href;
      return true;
    }
    return false;
  }
  // Where keys belong to what has focus: form controls, editable text, and any box that
  // scrolls sideways (arrows scroll it).
  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" ||
      (target && target.isContentEditable);
  }
  function inScroller(target) {
    for (var el = target; el && el !== document.body && el !== root; el = el.parentElement) {
      if (el.scrollWidth > el.clientWidth + 1) {
        var overflow = getComputedStyle(el).overflowX;
        if (overflow === "auto" || overflow === "scroll") return true;
      }
    }
    return false;
  }
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || !keysOn) return;
    var target = event.target;
    if (typing(target)) {
      if (event.key === "Escape" && target.blur) target.blur();
      return;
    }
    if (event.key === "?") {
      toggleHelp();
      event.preventDefault();
      return;
    }
    if (help.open) return; // Esc closes the dialog by itself
    if (event.key === "/") {
      var box = currentRoot().querySelector(
        "[data-grid-tools] input[name=value], [data-class-tools] input[name=name]");
      if (box) {
        box.focus();
        event.preventDefault();
      }
      return;
    }
    var name = KEYS[event.key];
    if (!name || (event.key.indexOf("Arrow") === 0 && inScroller(target))) return;
    if (follow(name)) event.preventDefault();
  });

  // ---- boxes that scroll sideways ----------------------------------------------
  // A wide table scrolls in its own box: keyboard users reach it with Tab (then arrows
  // scroll it), and the breadcrumbs of a phone's one-line header show the current page.
  function markScrollers() {
    Array.prototype.forEach.call(document.querySelectorAll("table.data, table.compare"), function (table) {
      var wide = table.scrollWidth > table.clientWidth + 1;
      if (wide && !table.hasAttribute("tabindex")) table.setAttribute("tabindex", "0");
      if (!wide && table.getAttribute("tabindex") === "0") table.removeAttribute("tabindex");
    });
    Array.prototype.forEach.call(document.querySelectorAll("nav.crumbs ol"), function (crumbs) {
      crumbs.scrollLeft = crumbs.scrollWidth;
    });
  }
  markScrollers();
  window.addEventListener("resize", markScrollers);

  // ---- overlay opacity slider --------------------------------------------------
  function buildSlider(tool) {
    var value = tool.getAttribute("data-value") || "50";
    var label = document.createElement("label");
    label.textContent = "Overlay opacity ";
    var input = document.createElement("input");
    input.type = "range";
    input.min = "0";
    input.max = "100";
    input.step = "5";
    input.value = value;
    label.appendChild(input);
    var output = document.createElement("output");
    output.textContent = value + "%";
    tool.appendChild(label);
    tool.appendChild(output);
  }
  function setupSlider(root) {
    var tool = root.querySelector("[data-opacity-tool]");
    if (!tool) return;
    if (!tool.querySelector("input")) buildSlider(tool);
    var slider = tool.querySelector("input[type=range]");
    var output = tool.querySelector("output");
    var stacks = root.querySelectorAll(".stack");
    var setAlpha = function (value) {
      var step = Math.max(0, Math.min(100, Math.round(Number(value) / 5) * 5));
      if (isNaN(step)) return;
      Array.prototype.forEach.call(stacks, function (stack) {
        var names = stack.className.split(/\s+/).filter(function (c) { return !/^alpha-\d+$/.test(c); });
        names.push("alpha-" + step);
        stack.className = names.join(" ");
      });
      slider.value = String(step);
      if (output) output.textContent = step + "%";
    };
    var saved = store("opacity");
    if (saved !== null && saved !== "") setAlpha(saved);
    slider.addEventListener("input", function () {
      setAlpha(slider.value);
      store("opacity", slider.value);
    });
    tool.hidden = false;
  }
  eachRoot(setupSlider);

  // ---- statistics tables built when opened --------------------------------------
  // A detail input's page carries every channel's statistics as data, not as rows: a
  // row is ten elements, and a layer of 512 channels would hold more than 5,000. The
  // rows are made when the table is first opened (texts already formatted by reportgen).
  function fillStatsTable(details) {
    var body = details.querySelector("table.stats tbody");
    var script = details.querySelector("script.stats-data");
    if (!body || !script || body.children.length) return;
    var data;
    try { data = JSON.parse(script.textContent); } catch (e) { return; }
    var rows = document.createDocumentFragment();
    data.rows.forEach(function (row) {
      var tr = make("tr", { "data-c": String(row[0]) });
      var head = make("th", { scope: "row" });
      var link = make("a", { href: row[1] });
      if (row[3]) {
        tr.className = "sel";
        link.appendChild(make("span", { "aria-hidden": "true" }, "\u25cf "));
      }
      link.appendChild(document.createTextNode(row[2]));
      head.appendChild(link);
      if (row[3]) head.appendChild(make("span", { "class": "vh" }, " (selected)"));
      tr.appendChild(head);
      row.slice(4).forEach(function (text) { tr.appendChild(make("td", {}, text)); });
      rows.appendChild(tr);
    });
    body.appendChild(rows);
    markScrollers();
  }
  Array.prototype.forEach.call(document.querySelectorAll("details.stats-rows"), function (details) {
    details.addEventListener("toggle", function () { if (details.open) fillStatsTable(details); });
    if (details.open) fillStatsTable(details);
  });

  // ---- channel grid: sort and filter -------------------------------------------
  // A grid of links over one picture of every map ([data-sheet]) keeps its order (each
  // link covers its own map): filtering dims the maps left out instead of hiding them.
  function setupGrid(root) {
    var form = root.querySelector("[data-grid-tools]");
    if (!form) return;
    var sections = [];
    Array.prototype.forEach.call(root.querySelectorAll(".layer-input"), function (section) {
      var script = section.querySelector("script.channel-data");
      if (!script) return;
      var data;
      try { data = JSON.parse(script.textContent); } catch (e) { return; }
      var byChannel = {};
      data.channels.forEach(function (c, i) {
        var row = { c: c, channel: c, selected: data.selected.indexOf(c) >= 0 };
        Object.keys(data.stats).forEach(function (k) { row[k] = data.stats[k][i]; });
        byChannel[c] = row;
      });
      var containers = [];
      var grid = section.querySelector("[data-grid]");
      if (grid) containers.push(grid);
      var body = section.querySelector("table.stats tbody");
      if (body) containers.push(body);
      sections.push({
        byChannel: byChannel, count: section.querySelector(".grid-count"),
        containers: containers, total: data.channels.length
      });
    });
    if (!sections.length) return;
    // A statistics table's rows come when it is first opened: sort and filter them then.
    Array.prototype.forEach.call(root.querySelectorAll("details.stats-rows"), function (details) {
      details.addEventListener("toggle", function () { if (details.open) apply(); });
    });

    function apply() {
      var sortKey = form.elements.sort.value;
      var desc = form.elements.order.value === "desc";
      var stat = form.elements.stat.value;
      var op = form.elements.op.value;
      var raw = form.elements.value.value;
      var threshold = raw === "" ? null : Number(raw);
      var onlySelected = form.elements.selected.checked;
      sections.forEach(function (s) {
        var shown = null; // from the first container with items (a table may be unbuilt)
        var keep = function (row) {
          if (!row) return true;
          if (onlySelected && !row.selected) return false;
          if (threshold !== null && !isNaN(threshold)) {
            var v = row[stat];
            if (v === null || v === undefined) return false;
            if (op === "ge" ? v < threshold : v > threshold) return false;
          }
          return true;
        };
        var order = function (a, b) {
          var ra = s.byChannel[a.getAttribute("data-c")], rb = s.byChannel[b.getAttribute("data-c")];
          if (!ra || !rb) return 0;
          var va = ra[sortKey], vb = rb[sortKey];
          if (sortKey === "channel") return desc ? vb - va : va - vb;
          if (va === null || va === undefined) return (vb === null || vb === undefined) ? ra.c - rb.c : 1;
          if (vb === null || vb === undefined) return -1; // unknown values last
          if (va === vb) return ra.c - rb.c;
          return desc ? vb - va : va - vb;
        };
        s.containers.forEach(function (container) {
          var items = Array.prototype.filter.call(container.children, function (el) {
            return el.hasAttribute("data-c");
          });
          var sheet = container.hasAttribute("data-sheet");
          if (!sheet) items.sort(order);
          var visible = 0;
          items.forEach(function (item) {
            var ok = keep(s.byChannel[item.getAttribute("data-c")]);
            if (sheet) item.classList.toggle("out", !ok);
            else item.hidden = !ok;
            if (ok) visible += 1;
            if (!sheet) container.appendChild(item);
          });
          if (shown === null && items.length) shown = visible;
        });
        if (s.count) {
          s.count.hidden = shown === null;
          s.count.textContent = "Showing " + shown + " of " + s.total + " channels" +
            (sortKey === "channel" ? "" : ", sorted by " + sortKey +
              (desc ? " (highest first)" : " (lowest first)")) + ".";
        }
      });
    }

    // Channel numbers and ranks read best lowest first; statistics highest first.
    var lowFirst = function (key) { return key === "channel" || /rank$/.test(key); };
    form.elements.order.value = "asc";
    form.elements.sort.addEventListener("change", function () {
      form.elements.order.value = lowFirst(form.elements.sort.value) ? "asc" : "desc";
    });
    // A select or a checkbox fires both "input" and "change": one sort per change, not
    // two (a sort of thousands of cards takes a second). Typed numbers apply as typed.
    form.addEventListener("input", function (event) {
      if (event.target.type === "number") apply();
    });
    form.addEventListener("change", function (event) {
      if (event.target.type !== "number") apply();
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); apply(); });
    form.addEventListener("reset", function () {
      window.setTimeout(function () { form.elements.order.value = "asc"; apply(); }, 0);
    });
    form.hidden = false;
    apply();
  }
  eachRoot(setupGrid);

  // ---- classes index: sort by inputs, number or name; filter by name ------------
  function setupClasses(root) {
    var form = root.querySelector("[data-class-tools]");
    var list = root.querySelector("[data-classes]");
    if (!form || !list) return;
    var items = Array.prototype.slice.call(list.children);
    var name = function (item) { return item.firstElementChild.textContent; };
    var number = function (item, key) { return Number(item.getAttribute("data-" + key)); };
    var orders = {
      n: function (a, b) { return number(b, "n") - number(a, "n") || number(a, "k") - number(b, "k"); },
      k: function (a, b) { return number(a, "k") - number(b, "k"); },
      name: function (a, b) {
        return name(a).localeCompare(name(b)) || number(a, "k") - number(b, "k");
      }
    };
    function apply() {
      var wanted = form.elements.name.value.trim().toLowerCase();
      var shown = 0;
      items.sort(orders[form.elements.sort.value] || orders.n);
      items.forEach(function (item) {
        var ok = !wanted || name(item).toLowerCase().indexOf(wanted) >= 0;
        item.hidden = !ok;
        if (ok) shown += 1;
        list.appendChild(item);
      });
      form.elements.shown.textContent = "Showing " + shown + " of " + items.length + ".";
    }
    form.addEventListener("input", apply);
    form.addEventListener("submit", function (event) { event.preventDefault(); apply(); });
    form.hidden = false;
    apply();
  }
  eachRoot(setupClasses);
})();
