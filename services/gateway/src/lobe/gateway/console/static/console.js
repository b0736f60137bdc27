// The console's one script. Forms marked class="action" are sent to the API route they name as
// JSON (the only way a session cookie may change state: lobe.gateway.auth.browser); the
// playground streams a chat completion. No third-party code, no inline script (the CSP).
"use strict";

function fieldsOf(form) {
  const body = {};
  for (const input of form.querySelectorAll("input[name], select[name], textarea[name]")) {
    const value = input.value.trim();
    if (value === "") {
      if (input.dataset.type === "integer" || input.name === "cost_usd") body[input.name] = null;
      continue;
    }
    body[input.name] = input.dataset.type === "integer" ? Number(value) : value;
  }
  return body;
}

function say(form, message) {
  let box = form.querySelector("[role=alert]");
  if (!box) {
    box = document.createElement("p");
    box.setAttribute("role", "alert");
    form.append(box);
  }
  box.textContent = message;
}

async function send(form) {
  const method = form.dataset.method;
  const options = { method, credentials: "same-origin", headers: { "Content-Type": "application/json" } };
  if (method !== "DELETE") options.body = JSON.stringify(fieldsOf(form));
  const answer = await fetch(form.dataset.url, options);
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    say(form, (body.error && body.error.message) || `Refused (${answer.status}).`);
    return;
  }
  if (form.dataset.shows === "key") {
    document.getElementById("new-key-value").textContent = body.key;
    document.getElementById("new-key").hidden = false;
    document.getElementById("copy-key").focus();
    return;
  }
  window.location.reload();
}

async function signOut() {
  await fetch("/auth/logout", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" } });
  window.location.assign("/console/sign-in");
}

async function fillModels(select) {
  const answer = await fetch("/v1/models", { credentials: "same-origin" });
  const body = await answer.json();
  for (const model of body.data || []) select.append(new Option(model.id, model.id));
}

async function play(form) {
  const output = document.getElementById("answer");
  const cost = document.getElementById("answer-cost");
  output.textContent = "";
  cost.textContent = "Streaming…";
  const answer = await fetch("/v1/chat/completions", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      model: form.model.value,
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: form.prompt.value }],
    }),
  });
  if (!answer.ok) {
    const body = await answer.json().catch(() => ({}));
    cost.textContent = (body.error && body.error.message) || `Refused (${answer.status}).`;
    return;
  }
  const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    const events = buffered.split("\n\n");
    buffered = events.pop();
    for (const event of events) {
      const data = event.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice(6)).join("");
      if (!data || data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      if (chunk.error) cost.textContent = chunk.error.message;
      for (const choice of chunk.choices || []) output.textContent += (choice.delta && choice.delta.content) || "";
      if (chunk.usage) {
        const price = chunk.usage.cost === undefined ? "not priced" : `$${chunk.usage.cost}`;
        cost.textContent = `${chunk.usage.prompt_tokens} prompt + ${chunk.usage.completion_tokens} completion tokens, ${price}`;
      }
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form.action")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send(form).catch((error) => say(form, String(error)));
    });
  }
  const signOutButton = document.getElementById("sign-out");
  if (signOutButton) signOutButton.addEventListener("click", signOut);
  const copy = document.getElementById("copy-key");
  if (copy) {
    copy.addEventListener("click", () => {
      navigator.clipboard.writeText(document.getElementById("new-key-value").textContent).catch(() => {});
    });
  }
  const playground = document.getElementById("playground");
  if (playground) {
    fillModels(playground.model).catch(() => {});
    playground.addEventListener("submit", (event) => {
      event.preventDefault();
      play(playground).catch((error) => (document.getElementById("answer-cost").textContent = String(error)));
    });
  }
});
