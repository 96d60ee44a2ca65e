// restyle's page, fast models: the "Fast model" choice (GET /api/models), the weights of a
// multi-style model's styles, and the options a fast job sends. Loaded before app.js, whose helpers
// ($, json) it calls; app.js calls loadModels, fastOptions and applyFast.
"use strict";

const fast = { models: [], weights: {} };  // weights: the last ones set, by model

const pretty = (name) => name.replace(/[-_]+/g, " ");

function fastOption(text, model, style) {
  const option = new Option(text, style ? `${model}/${style}` : model);
  option.dataset.model = model;
  if (style) option.dataset.style = style;
  return option;
}

async function loadModels() {  // the choice appears only when the server offers a model
  fast.models = await json("/api/models");
  const select = $("fast-model");
  select.replaceChildren(new Option("none — optimise towards paintings", ""));
  for (const m of fast.models) {
    if (m.styles.length > 1) {
      select.append(fastOption(`${pretty(m.name)} (blend)`, m.name, null));
      for (const s of m.styles) select.append(fastOption(`${pretty(m.name)}: ${pretty(s)}`, m.name, s));
    } else {
      select.append(fastOption(pretty(m.name), m.name, null));
    }
  }
  $("fast-row").hidden = !fast.models.length;
  select.onchange = () => fastChosen();
  $("refine").oninput = () => {
    $("refine-out").textContent = Number($("refine").value) ? $("refine").value : "off";
  };
  fastChosen();
}

function chosenModel() {  // {model, style}: style null for the model's blend; null: no fast model
  const option = $("fast-model").selectedOptions[0];
  const model = option?.value ? fast.models.find((m) => m.name === option.dataset.model) : null;
  return model ? { model, style: option.dataset.style || null } : null;
}

function fastChosen(blend = null) {  // a fast model hides the style images and the iterations
  const chosen = chosenModel();
  document.body.classList.toggle("fast", chosen !== null);
  $("style-images").hidden = chosen !== null;
  $("style-note").textContent = chosen ? "(the model's own)" : "(one or more)";
  const box = $("blend");
  const styles = chosen && !chosen.style ? chosen.model.styles : [];
  box.hidden = styles.length < 2;
  if (chosen && !chosen.style && blend) fast.weights[chosen.model.name] = blend;
  const weights = chosen ? fast.weights[chosen.model.name] : null;
  box.replaceChildren(...(styles.length < 2 ? [] : styles.map((s, i) => blendRow(chosen.model, i, weights?.[i] ?? 1))));
}

function blendRow(model, index, value) {
  const style = model.styles[index];
  const row = document.createElement("label");
  row.className = "row";
  const span = document.createElement("span");
  const out = document.createElement("output");
  span.append(`${pretty(style)} `, out);
  const input = document.createElement("input");
  input.type = "range";
  input.min = "0"; input.max = "1"; input.step = "0.05";
  input.value = String(value);
  input.dataset.style = style;
  input.setAttribute("aria-label", `weight of ${pretty(style)}`);
  const shown = () => { out.textContent = Number(input.value).toFixed(2); };
  input.addEventListener("input", () => {
    shown();
    (fast.weights[model.name] ||= model.styles.map(() => 1))[index] = Number(input.value);
  });
  shown();
  row.append(span, input);
  return row;
}

function fastOptions() {  // the options of a fast job (null: no fast model chosen)
  const chosen = chosenModel();
  if (!chosen) return null;
  const options = { fast_model: chosen.model.name };
  if (chosen.style) options.style_blend = chosen.model.styles.map((s) => (s === chosen.style ? 1 : 0));
  else if (chosen.model.styles.length > 1)
    options.style_blend = [...document.querySelectorAll("#blend input")].map((i) => Number(i.value));
  if (Number($("refine").value)) options.refine = Number($("refine").value);
  return options;
}

function applyFast(job) {  // "Edit": the job's fast model, weights and refinement back on the form
  const o = job.options;
  const model = fast.models.find((m) => m.name === o.fast_model);
  const blend = o.style_blend;
  let value = model ? model.name : "";  // a model no longer offered: none
  if (model && blend && model.styles.length > 1 && blend.filter((w) => w > 0).length === 1)
    value = `${model.name}/${model.styles[blend.findIndex((w) => w > 0)]}`;
  $("fast-model").value = value;
  $("refine").value = String(o.refine ?? 0);
  $("refine").dispatchEvent(new Event("input"));
  fastChosen(model ? blend : null);
}
