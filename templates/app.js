// reportgen: small comforts on top of pages that work without JavaScript.
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) return;
    var link = document.querySelector('[data-shortcut="' + event.key + '"]');
    if (link && link.href) {
      window.location.href = link.href;
      event.preventDefault();
    }
  });
})();
