// Every admin page loads this file: the one HTML escape for names put into markup, and the
// behaviours templates ask for with data- attributes (the CSP allows no inline script).
// Listeners sit on the document, so content htmx swaps in behaves the same.
const Harpoon = (() => {
  const ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};

  // Names (stages, tags, journeys, people...) are text: markup built from them escapes them.
  const escapeHtml = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => ENTITIES[c]);

  // <form data-confirm="question">: submitted only once the user agrees.
  document.addEventListener("submit", (event) => {
    const question = event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("click", async (event) => {
    // data-fill="stage reason": a quick choice fills its form's fields of those names from
    // its own data-stage and data-reason, then selects the field named by data-select.
    const filler = event.target.closest("[data-fill]");
    if (filler) {
      for (const name of filler.dataset.fill.split(" ")) {
        filler.form.elements.namedItem(name).value = filler.dataset[name];
      }
      filler.form.elements.namedItem(filler.dataset.select)?.select();
    }
    const inserter = event.target.closest("[data-insert]");
    if (inserter) insert(inserter.dataset.insert);
    const button = event.target.closest("[data-copy]");
    if (button) await copy(button);
  });

  // data-insert="text": put the text at the cursor of the [data-insert-target] field the user
  // was last in (the first such field when none yet).
  let insertTarget = null;
  document.addEventListener("focusin", (event) => {
    if (event.target.matches("[data-insert-target]")) insertTarget = event.target;
  });
  function insert(text) {
    const field = insertTarget || document.querySelector("[data-insert-target]");
    if (!field) return;
    const start = field.selectionStart ?? field.value.length;
    const end = field.selectionEnd ?? start;
    field.setRangeText(text, start, end, "end");
    field.focus();
    field.dispatchEvent(new Event("input", {bubbles: true}));
  }

  // Copy buttons: the field's text to the clipboard; where the clipboard API is refused
  // (plain HTTP), the text is selected and copied the old way.
  async function copy(button) {
    const field = button.dataset.copyTarget
      ? document.getElementById(button.dataset.copyTarget)
      : button.parentElement.querySelector("input, textarea");
    const text = "value" in field ? field.value : field.textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      if ("select" in field) {
        field.select();
      } else {
        const range = document.createRange();
        range.selectNodeContents(field);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
      }
      document.execCommand("copy");
    }
    const label = button.textContent;
    button.textContent = button.dataset.copied;
    setTimeout(() => { button.textContent = label; }, 1500);
  }

  // data-when="name=value value" (or "name=*" for any value but none): shown only while the
  // form's control of that name has one of the values; the server ignores hidden inputs.
  function showChosenParts(form) {
    form.querySelectorAll("[data-when]").forEach((part) => {
      const [name, values] = part.dataset.when.split("=");
      const control = form.elements.namedItem(name);
      const value = control ? control.value : "";
      part.hidden = values === "*" ? !value : !values.split(" ").includes(value);
    });
  }

  // The live byte count next to menu names and keys: WeChat counts UTF-8 bytes (a Chinese
  // character is 3).
  function showBytes(input) {
    const out = input.parentElement.querySelector(".byte-count");
    if (!out) return;
    const used = new TextEncoder().encode(input.value).length;
    out.textContent = `${used}/${input.dataset.bytes}`;
    out.classList.toggle("over", used > Number(input.dataset.bytes));
  }

  // A preset's weights fill the inputs of its form; they stay editable until saved.
  function fillPreset(radio) {
    const presets = JSON.parse(document.getElementById(radio.dataset.presets).textContent);
    for (const [name, value] of Object.entries(presets[radio.value] || {})) {
      const input = radio.form.elements.namedItem(name);
      if (input) input.value = value;
    }
  }

  document.addEventListener("change", (event) => {
    const control = event.target;
    // data-autosubmit: a change submits the control's form (htmx forms see the submit too).
    if (control.matches("[data-autosubmit]")) control.form.requestSubmit();
    // data-check-all="name": the box checks or clears every checkbox of that name.
    if (control.matches("[data-check-all]")) {
      const boxes = document.querySelectorAll(`input[name="${CSS.escape(control.dataset.checkAll)}"]`);
      for (const box of boxes) box.checked = control.checked;
    }
    if (control.matches("[data-presets]")) fillPreset(control);
    if (control.form?.querySelector("[data-when]")) showChosenParts(control.form);
  });
  document.addEventListener("input", (event) => {
    if (event.target.matches("[data-bytes]")) showBytes(event.target);
  });
  document.addEventListener("DOMContentLoaded", () => {
    for (const form of document.forms) {
      if (form.querySelector("[data-when]")) showChosenParts(form);
    }
    document.querySelectorAll("[data-bytes]").forEach(showBytes);
    // data-scroll-to="id": the page opens at that element (the part an error concerns).
    const scroll = document.querySelector("[data-scroll-to]");
    if (scroll) document.getElementById(scroll.dataset.scrollTo)?.scrollIntoView({block: "start"});
  });

  return {escapeHtml};
})();
