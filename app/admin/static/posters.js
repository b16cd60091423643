// The poster editor: the preview image follows the layout inputs as they are typed.
(function () {
  "use strict";
  const form = document.getElementById("poster-form");
  const preview = document.getElementById("poster-preview");
  if (!form || !preview || !form.dataset.preview) return;
  const names = ["qr_x", "qr_y", "qr_size", "text", "text_x", "text_y", "text_size", "text_color"];
  let timer = null;
  function refresh() {
    const query = new URLSearchParams();
    for (const name of names) {
      const input = form.elements.namedItem(name);
      if (input) query.set(name, input.value);
    }
    preview.src = form.dataset.preview + "?" + query.toString();
  }
  form.addEventListener("input", function (event) {
    if (!names.includes(event.target.name)) return;
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  });
})();
