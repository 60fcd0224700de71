// The console's only script besides htmx: no inline script anywhere (the CSP forbids it).
// A failed htmx request (the console or the admin API down) says so in the page's status
// line instead of leaving a fragment silently stale.
document.addEventListener("htmx:responseError", function (event) {
  var line = document.getElementById("status-line");
  if (line) {
    line.textContent = "The console answered " + event.detail.xhr.status +
      ": the last change was not applied. Try again.";
  }
});
document.addEventListener("htmx:sendError", function () {
  var line = document.getElementById("status-line");
  if (line) { line.textContent = "The console is not answering: check your connection."; }
});
document.addEventListener("htmx:afterSwap", function () {
  var line = document.getElementById("status-line");
  if (line && line.textContent.indexOf("The console") === 0) { line.textContent = ""; }
});
