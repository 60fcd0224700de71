// The audience builder: the live count's answer names the rows it found wrong
// (data-row-errors, JSON: slot id → message); each message goes to its row's slot, and
// a slot the answer does not name is cleared. A row removed meanwhile is skipped (an
// out-of-band swap would log an error for it). No eval, no inline script.
document.addEventListener("htmx:afterSwap", function (event) {
  if (!event.detail.target || event.detail.target.id !== "live") { return; }
  var carrier = document.querySelector("#live [data-row-errors]");
  var errors = carrier ? JSON.parse(carrier.getAttribute("data-row-errors")) : {};
  var slots = document.querySelectorAll("#tree .field-error[id^='err-t']");
  for (var i = 0; i < slots.length; i++) {
    slots[i].textContent = errors[slots[i].id] || "";
  }
});
