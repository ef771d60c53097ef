/* hashguard review: keyboard shortcuts, the help overlay, and a prompt before each
   decision. Progressive: every page works without it. No inline script (CSP). */
(function () {
  "use strict";

  function typing(event) {
    var t = event.target;
    if (!t || !t.tagName) return false;
    return t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName);
  }

  /* -- the help overlay -- */
  var help = document.getElementById("help");
  var opener = null;
  function showHelp() {
    if (!help) return;
    opener = document.activeElement;
    help.hidden = false;
    var close = document.getElementById("help-close");
    if (close) close.focus();
  }
  function hideHelp() {
    if (!help || help.hidden) return false;
    help.hidden = true;
    if (opener && opener.focus) opener.focus();
    return true;
  }
  function toggleHelp() {
    if (help && help.hidden) showHelp(); else hideHelp();
  }
  var helpOpen = document.getElementById("help-open");
  if (helpOpen) helpOpen.addEventListener("click", showHelp);
  var helpClose = document.getElementById("help-close");
  if (helpClose) helpClose.addEventListener("click", hideHelp);
  if (help) help.addEventListener("click", function (e) { if (e.target === help) hideHelp(); });

  /* -- ask before anything marked data-confirm is sent -- */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var by = event.submitter;
    var message = (by && by.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });

  /* -- the queue: j/k select a case, Enter/o open it -- */
  var queue = document.getElementById("queue");
  var rows = queue ? Array.prototype.slice.call(queue.querySelectorAll("tr.case")) : [];
  var selected = -1;
  function select(index) {
    if (!rows.length) return;
    index = Math.max(0, Math.min(rows.length - 1, index));
    if (selected >= 0 && rows[selected]) {
      rows[selected].classList.remove("selected");
      rows[selected].removeAttribute("aria-selected");
    }
    selected = index;
    var row = rows[selected];
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    var link = row.querySelector("a.case-link");
    if (link) link.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }
  function openSelected() {
    if (selected < 0) return false;
    var link = rows[selected].querySelector("a.case-link");
    if (!link) return false;
    window.location.href = link.href;
    return true;
  }

  /* -- the case page: r reveal, c/f/e decide -- */
  function decide(verdict) {
    var form = document.getElementById("decide");
    if (!form) return false;
    var button = form.querySelector('button[name="verdict"][value="' + verdict + '"]');
    if (!button || button.disabled) return false;
    var reason = form.querySelector('textarea[name="reason"]');
    if (reason && !reason.value.trim()) {
      reason.focus();
      reason.setAttribute("aria-invalid", "true");
      if (reason.reportValidity) reason.reportValidity();
      return true;
    }
    form.requestSubmit(button);
    return true;
  }
  function reveal() {
    var form = document.getElementById("reveal");
    if (!form) return false;
    form.requestSubmit();
    return true;
  }

  var hide = document.getElementById("hide-original");
  if (hide) {
    hide.addEventListener("click", function () {
      var figure = document.getElementById("original-figure");
      var img = document.getElementById("original");
      if (img) img.remove();
      if (figure) figure.hidden = true;
    });
  }

  /* a revealed frame of a video: "Hide" takes it off the page */
  Array.prototype.forEach.call(document.querySelectorAll("button.hide-frame"), function (button) {
    button.addEventListener("click", function () {
      var figure = document.getElementById(button.getAttribute("data-hide"));
      if (figure) figure.remove();
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape") {
      if (hideHelp()) event.preventDefault();
      return;
    }
    var key = event.key;
    if (typing(event)) return;
    if (help && !help.hidden && key !== "?") return;
    var done = false;
    switch (key) {
      case "?": toggleHelp(); done = true; break;
      case "j": if (rows.length) { select(selected + 1); done = true; } break;
      case "k": if (rows.length) { select(selected < 0 ? 0 : selected - 1); done = true; } break;
      case "Enter":
        /* Enter on another link or button keeps its own meaning */
        var focused = document.activeElement;
        if (selected >= 0 && (focused === document.body || rows[selected].contains(focused))) {
          done = openSelected();
        }
        break;
      case "o": done = openSelected(); break;
      case "r": done = reveal(); break;
      case "c": done = decide("confirm"); break;
      case "f": done = decide("false_positive"); break;
      case "e": done = decide("escalate"); break;
      case "u": window.location.href = "/ui/"; done = true; break;
      default: break;
    }
    if (done) event.preventDefault();
  });
})();
