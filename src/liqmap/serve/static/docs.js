// The API description rendered from /openapi.json (served offline; no Swagger UI from a CDN).
"use strict";
(async function () {
  const doc = document.getElementById("doc");
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  const spec = await (await fetch("/openapi.json")).json();
  let html = `<p>${esc(spec.info.description)} Version ${esc(spec.info.version)}.</p>`;
  for (const [path, item] of Object.entries(spec.paths)) {
    const op = item.get;
    html += `<h3><code>GET ${esc(path)}</code></h3><p>${esc(op.description)}</p>`;
    if (op.parameters.length) {
      html += "<table><tr><th>parameter</th><th>type</th><th>meaning</th></tr>";
      for (const p of op.parameters) {
        const s = p.schema, type = s.enum ? s.enum.join(" | ") : s.format || s.type;
        const range = [s.minimum !== undefined ? "≥ " + s.minimum : "", s.maximum !== undefined ? "≤ " + s.maximum : "", s.default !== undefined ? "default " + s.default : ""].filter(Boolean).join(", ");
        html += `<tr><td><code>${esc(p.name)}</code></td><td>${esc(type)}${range ? " (" + esc(range) + ")" : ""}</td><td>${esc(p.description)}</td></tr>`;
      }
      html += "</table>";
    }
    html += "<ul>" + Object.entries(op.responses["200"].content).map(([m, c]) => `<li><code>${esc(m)}</code>: ${esc(c.schema.description)}</li>`).join("") + "</ul>";
  }
  doc.innerHTML = html + `<p>Errors: <code>{"ok": false, "error": "...", "status": N}</code>.</p>`;
})();
