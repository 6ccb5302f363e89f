// The episode viewer of report.html: filters, sorting and transcripts over the JSON in #report-data.
// Plain DOM, no dependencies; text goes in through textContent only.
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const C = {};
  DATA.cols.forEach((c, i) => { C[c] = i; });
  const PAGE = 300;
  const state = { outcome: "", env: "", text: "", key: null, dir: 1, shown: PAGE };
  const table = document.getElementById("episodes");
  if (!table) return;
  const tbody = table.querySelector("tbody");
  const count = document.getElementById("count");
  const more = document.getElementById("more");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(x, digits) { return x === null || x === undefined ? "-" : Number(x).toFixed(digits); }

  const haystack = new Map();
  function searchText(r) {
    let s = haystack.get(r);
    if (s === undefined) {
      const parts = [r[C.id], DATA.envs[r[C.env]], r[C.error] >= 0 ? DATA.errors[r[C.error]] : ""];
      const t = r[C.transcript] >= 0 ? DATA.transcripts[r[C.transcript]] : null;
      if (t) {
        t.prompt.forEach((m) => parts.push(m.t));
        t.turns.forEach((u) => { parts.push(u.action); u.obs.forEach((m) => parts.push(m.t)); });
      }
      s = parts.join("\n").toLowerCase();
      haystack.set(r, s);
    }
    return s;
  }

  function visibleRows() {
    const text = state.text.trim().toLowerCase();
    let rows = DATA.rows.filter((r) =>
      (!state.outcome || r[C.outcome] === state.outcome) &&
      (state.env === "" || DATA.envs[r[C.env]] === state.env) &&
      (!text || searchText(r).includes(text)));
    if (state.key !== null) {
      const k = C[state.key];
      const val = state.key === "env" ? (r) => DATA.envs[r[k]] :
        state.key === "error" ? (r) => (r[k] >= 0 ? DATA.errors[r[k]] : "") : (r) => r[k];
      rows = rows.slice().sort((a, b) => {
        const x = val(a), y = val(b);
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * state.dir;
      });
    }
    return rows;
  }

  function render() {
    const rows = visibleRows();
    tbody.textContent = "";
    rows.slice(0, state.shown).forEach((r) => tbody.appendChild(rowOf(r)));
    count.textContent = rows.length + " of " + DATA.rows.length + " episodes shown";
    more.hidden = rows.length <= state.shown;
    more.textContent = "show " + Math.min(PAGE, rows.length - state.shown) + " more";
  }

  function shortId(r) {
    const env = DATA.envs[r[C.env]] + "/";
    return r[C.id].startsWith(env) ? r[C.id].slice(env.length) : r[C.id];
  }

  function rowOf(r) {
    const tr = el("tr", "ep");
    tr.dataset.id = r[C.id];
    tr.dataset.outcome = r[C.outcome];
    const outcome = el("span", "o o-" + r[C.outcome], r[C.outcome] === "none" ? "-" : r[C.outcome]);
    const err = r[C.error] >= 0 ? DATA.errors[r[C.error]] : "";
    const cells = [
      el("td", "l", shortId(r)), el("td", "l", DATA.envs[r[C.env]]), el("td", "", r[C.seed] === null ? "-" : r[C.seed]),
      el("td", "", r[C.group]), el("td", "l"), el("td", "", fmt(r[C.return], 3)), el("td", "", r[C.turns]),
      el("td", "", r[C.tokens]), el("td", "", r[C.invalid]), el("td", "err", err.split("\n")[0]),
      el("td", "", fmt(r[C.time], 2)),
    ];
    cells[0].title = r[C.id];
    cells[4].appendChild(outcome);
    if (err) cells[9].title = err;
    cells.forEach((c) => tr.appendChild(c));
    tr.addEventListener("click", () => toggle(tr, r));
    return tr;
  }

  function toggle(tr, r) {
    const next = tr.nextElementSibling;
    if (next && next.classList.contains("detail-row")) {
      next.remove();
      tr.classList.remove("open");
      return;
    }
    const row = el("tr", "detail-row");
    const td = el("td", "detail");
    td.colSpan = DATA.cols.length - 1;
    td.appendChild(transcriptOf(r));
    row.appendChild(td);
    tr.after(row);
    tr.classList.add("open");
  }

  function messageOf(m) {
    const box = el("div", "msg");
    box.appendChild(el("div", "role " + m.r, m.r));
    if (m.t) box.appendChild(el("pre", "", m.t + (m.cut ? "\n[... cut: " + m.cut + " more characters]" : "")));
    (m.img || []).forEach((im) => {
      if (im.missing) {
        box.appendChild(el("div", "muted", "image file missing: " + im.src));
        return;
      }
      const img = el("img", "shot");
      img.alt = "screenshot";
      img.src = im.src;
      box.appendChild(img);
    });
    return box;
  }

  function transcriptOf(r) {
    const box = el("div", "transcript");
    const t = r[C.transcript] >= 0 ? DATA.transcripts[r[C.transcript]] : null;
    if (!t) {
      box.appendChild(el("p", "muted", "This episode's transcript is not embedded (" + DATA.caps.transcripts +
        "). Read it from episodes.jsonl (run_id " + (DATA.meta.run_id || "?") + ", episode_id " + r[C.id] + ")."));
      return box;
    }
    if (r[C.error] >= 0) box.appendChild(el("pre", "bad", "episode error: " + DATA.errors[r[C.error]]));
    if (t.info) box.appendChild(el("div", "muted", "info: " + t.info));
    t.prompt.forEach((m) => box.appendChild(messageOf(m)));
    t.turns.forEach((u) => {
      const turn = el("div", "turn");
      const head = ["turn " + u.i, "reward " + u.reward];
      if (u.atok !== null) head.push("tokens: action " + u.atok + (u.otok !== null ? ", observation " + u.otok : ""));
      head.push(fmt(u.dur, 3) + " s");
      if (u.term) head.push("terminated");
      if (u.trunc) head.push("truncated");
      turn.appendChild(el("div", "head", head.join(" · ")));
      turn.appendChild(el("div", "role assistant", "assistant"));
      if (u.action) turn.appendChild(el("pre", "", u.action));
      (u.calls || []).forEach((c) => turn.appendChild(el("pre", "call", "tool call " + c[0] + "(" + c[1] + ")")));
      if (u.aerr) turn.appendChild(el("div", "bad", "action error: " + u.aerr));
      u.obs.forEach((m) => turn.appendChild(messageOf(m)));
      box.appendChild(turn);
    });
    if (t.more) box.appendChild(el("p", "muted", t.more + " more turns not embedded"));
    return box;
  }

  const envSel = document.getElementById("f-env");
  DATA.envs.forEach((name) => { const o = el("option", "", name); o.value = name; envSel.appendChild(o); });
  document.getElementById("f-outcome").addEventListener("change", (ev) => { state.outcome = ev.target.value; state.shown = PAGE; render(); });
  envSel.addEventListener("change", (ev) => { state.env = ev.target.value; state.shown = PAGE; render(); });
  document.getElementById("f-text").addEventListener("input", (ev) => { state.text = ev.target.value; state.shown = PAGE; render(); });
  more.addEventListener("click", () => { state.shown += PAGE; render(); });
  table.querySelectorAll("th[data-key]").forEach((th) => th.addEventListener("click", () => {
    const key = th.dataset.key;
    state.dir = state.key === key ? -state.dir : 1;
    state.key = key;
    table.querySelectorAll("th").forEach((h) => h.classList.remove("sorted-asc", "sorted-desc"));
    th.classList.add(state.dir > 0 ? "sorted-asc" : "sorted-desc");
    render();
  }));
  document.querySelectorAll("[data-filter-error]").forEach((a) => a.addEventListener("click", (ev) => {
    ev.preventDefault();
    state.outcome = "";
    state.text = DATA.errors[Number(a.dataset.filterError)].slice(0, 60);
    document.getElementById("f-outcome").value = "";
    document.getElementById("f-text").value = state.text;
    render();
    table.scrollIntoView();
  }));
  render();
})();
