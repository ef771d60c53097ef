/* hashguard review: the "Copy the facts" buttons of hotline referrals. Progressive: the
   facts stay in a read-only field anyone can select. No inline script (CSP). */
(function () {
  "use strict";

  function say(id, text) {
    var status = document.querySelector('[data-copied-for="' + id + '"]');
    if (status) status.textContent = text;
  }

  function fallback(field, id) {
    field.focus();
    field.select();
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    say(id, copied ? "Copied." : "Selected: press Ctrl+C to copy.");
  }

  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest ? event.target.closest("button.copy") : null;
    if (!button) return;
    var id = button.getAttribute("data-copy");
    var field = id ? document.getElementById(id) : null;
    if (!field) return;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(
        function () { say(id, "Copied."); },
        function () { fallback(field, id); }
      );
    } else {
      fallback(field, id);
    }
  });
})();
