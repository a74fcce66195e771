(function () {
  var root = document.getElementById("deployment");
  if (!root) return;
  var id = root.dataset.id;
  var lastSeq = parseInt(root.dataset.lastSeq, 10) || 0;
  var timeline = document.getElementById("timeline");
  var finals = ["succeeded", "failed", "rolled_back", "rejected", "cancelled"];
  var labels = {pending_approval: "Pending approval", approved: "Approved", building: "Building",
    rolling_out: "Rolling out", rolling_back: "Rolling back", succeeded: "Succeeded", failed: "Failed",
    rolled_back: "Rolled back", rejected: "Rejected", cancelled: "Cancelled"};
  var tones = {pending_approval: "wait", approved: "info", building: "info", rolling_out: "info",
    rolling_back: "warn", succeeded: "ok", failed: "bad", rolled_back: "warn", rejected: "bad", cancelled: "muted"};

  function addEvent(e) {
    var li = document.createElement("li");
    li.className = "kind-" + e.kind;
    li.dataset.seq = e.seq;
    [["seq", String(e.seq)], ["when", new Date(e.at).toLocaleTimeString([], {hour12: false})], ["msg", e.message]]
      .forEach(function (p) { var s = document.createElement("span"); s.className = p[0]; s.textContent = p[1]; li.appendChild(s); });
    timeline.appendChild(li);
  }
  function setState(state, reason) {
    root.dataset.state = state;
    var banner = document.getElementById("banner");
    banner.className = "banner tone-" + tones[state];
    document.getElementById("state-badge").textContent = labels[state] || state;
    document.getElementById("state-reason").textContent = reason ? ": " + reason : "";
    if (finals.indexOf(state) >= 0) root.dataset.finished = new Date().toISOString();
    var form = document.getElementById("decision-form");
    if (form && state !== "pending_approval") form.hidden = true;
  }
  function setProgress(p) {
    if (!p || !p.desired) return;
    ["updated", "ready", "available", "total"].forEach(function (k) {
      var bar = document.querySelector('[data-bar="' + k + '"]');
      var count = document.querySelector('[data-count="' + k + '"]');
      if (bar) { bar.max = k === "total" ? (p.max_total || p.desired) : p.desired; bar.value = p[k] || 0; }
      if (count) count.textContent = (p[k] || 0) + "/" + p.desired;
    });
    document.getElementById("progress-message").textContent = p.message || "";
    if (p.pods) {
      var body = document.querySelector("#pods tbody");
      body.textContent = "";
      p.pods.forEach(function (pod) {
        var tr = document.createElement("tr");
        [pod.name, pod.status, pod.ready ? "yes" : "no", String(pod.restarts), pod.image].forEach(function (v, i) {
          var td = document.createElement("td"); td.textContent = v; if (i === 0 || i === 4) td.className = "mono"; tr.appendChild(td);
        });
        body.appendChild(tr);
      });
    }
  }
  function setDowntime(d) {
    if (!d || !d.checked) return;
    var el = document.getElementById("downtime");
    el.textContent = "";
    var span = document.createElement("span");
    span.className = "badge tone-" + (d.dropped ? "bad" : "ok");
    span.textContent = d.dropped ? "availability dropped " + Math.round(d.seconds) + "s (lowest " + d.min_available + ")" : "no downtime (lowest available " + d.min_available + ")";
    el.appendChild(span);
  }
  function onMessage(m) {
    if (m.type !== "event") return;
    if (m.seq <= lastSeq) return;  // the server already dedups; this guards a reconnect race
    lastSeq = m.seq;
    root.dataset.lastSeq = lastSeq;
    addEvent(m);
    if (m.data && m.data.to) setState(m.data.to, m.data.reason || "");
    if (m.data && m.data.progress) setProgress(m.data.progress);
    if (m.data && m.data.downtime) setDowntime(m.data.downtime);
  }
  function tick() {
    var start = root.dataset.started ? new Date(root.dataset.started) : null;
    if (!start) return;
    var end = root.dataset.finished ? new Date(root.dataset.finished) : new Date();
    var s = Math.max(0, Math.round((end - start) / 1000));
    document.getElementById("elapsed").textContent = " · " + Math.floor(s / 60) + "m " + (s % 60) + "s";
  }
  setInterval(tick, 1000); tick();
  window.pampamLive = Live(function () { return "/ws/deployments/" + id + "/?after=" + lastSeq; },
    onMessage, document.getElementById("live-indicator"));
})();
