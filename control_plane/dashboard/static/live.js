// The live-calls panel: rows from the server-sent "calls" events of /dashboard/calls/live.
// Built with textContent only (never innerHTML), so nothing a caller's number holds is markup.
"use strict";
(function () {
  const panel = document.getElementById("live");
  if (!panel || !window.EventSource) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const state = document.getElementById("live-state");
  const liveBody = document.getElementById("live-rows");
  const endedBody = document.getElementById("ended-rows");
  let received = performance.now();

  function clock(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.floor(seconds);
    const mm = String(Math.floor(s / 60) % 60).padStart(2, "0"), ss = String(s % 60).padStart(2, "0");
    return s >= 3600 ? Math.floor(s / 3600) + ":" + mm + ":" + ss : Math.floor(s / 60) + ":" + ss;
  }

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function render(body, calls, live, emptyText) {
    body.replaceChildren();
    if (calls.length === 0) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      cell(tr, emptyText).colSpan = 6;
      body.appendChild(tr);
      return;
    }
    for (const call of calls) {
      const tr = document.createElement("tr");
      tr.dataset.callId = call.id;
      const link = document.createElement("a");
      link.href = "/dashboard/calls/" + encodeURIComponent(call.id);
      link.textContent = call.number;
      cell(tr, "").appendChild(link);
      cell(tr, call.direction);
      const status = document.createElement("span");
      status.className = "status status-" + call.status;
      status.textContent = call.status + (live && call.hangup_requested ? " (hanging up)" : "");
      cell(tr, "").appendChild(status);
      const duration = cell(tr, clock(call.duration_s), "duration");
      if (live && call.ticking) duration.dataset.base = call.duration_s;
      cell(tr, call.last_turn_ms === null ? "–" : call.last_turn_ms + " ms", "last-turn");
      const actions = cell(tr, "");
      if (live) {
        const form = document.createElement("form");
        form.method = "post";
        form.action = "/dashboard/calls/" + encodeURIComponent(call.id) + "/hangup";
        const token = document.createElement("input");
        token.type = "hidden"; token.name = "csrf_token"; token.value = csrf;
        const button = document.createElement("button");
        button.type = "submit"; button.className = "danger"; button.textContent = "Hang up";
        form.append(token, button);
        actions.appendChild(form);
      }
      body.appendChild(tr);
    }
  }

  const source = new EventSource(panel.dataset.stream);
  source.addEventListener("open", function () { state.textContent = "live"; state.className = "stream-state on"; });
  source.addEventListener("error", function () {
    // CONNECTING: the browser retries by itself (a restart, a drained instance). CLOSED: the
    // answer was not a stream (signed out, say): the page itself knows what to show.
    const closed = source.readyState === EventSource.CLOSED;
    state.textContent = closed ? "stopped: reload the page" : "reconnecting…";
    state.className = "stream-state";
  });
  source.addEventListener("signed_out", function () { source.close(); window.location.reload(); });
  source.addEventListener("calls", function (event) {
    const data = JSON.parse(event.data);
    received = performance.now();
    render(liveBody, data.live, true, "No live calls.");
    render(endedBody, data.ended, false, "None in the last ten minutes.");
  });
  // Durations tick here between events; the server sends an event only when something else changed.
  setInterval(function () {
    const elapsed = (performance.now() - received) / 1000;
    for (const td of liveBody.querySelectorAll("td.duration[data-base]")) {
      td.textContent = clock(Number(td.dataset.base) + elapsed);
    }
  }, 1000);
})();
