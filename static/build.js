// Follows /ws/builds/<id>/?after=<seq>: console lines go to the log, other events to the timeline.
(function () {
  var root = document.getElementById("build");
  if (!root) return;
  var id = root.dataset.id;
  var lastSeq = parseInt(root.dataset.lastSeq, 10) || 0;
  var log = document.getElementById("log");
  var timeline = document.getElementById("timeline");
  var labels = {queued: "Queued", running: "Running", succeeded: "Succeeded", failed: "Failed",
    aborted: "Aborted", cancelled: "Cancelled"};
  var tones = {queued: "wait", running: "info", succeeded: "ok", failed: "bad", aborted: "warn", cancelled: "muted"};

  function addLine(text) {
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(document.createTextNode(text + "\n"));
    if (atBottom) log.scrollTop = log.scrollHeight;
  }
  function addEvent(e) {
    var li = document.createElement("li");
    li.className = "kind-" + e.kind;
    li.dataset.seq = e.seq;
    [["seq", String(e.seq)], ["when", new Date(e.at).toLocaleTimeString([], {hour12: false})], ["msg", e.message]]
      .forEach(function (p) { var s = document.createElement("span"); s.className = p[0]; s.textContent = p[1]; li.appendChild(s); });
    timeline.appendChild(li);
  }
  function setState(state, reason, result) {
    root.dataset.state = state;
    document.getElementById("banner").className = "banner tone-" + (tones[state] || "muted");
    document.getElementById("state-badge").textContent = labels[state] || state;
    document.getElementById("state-reason").textContent = reason ? ": " + reason : "";
    if (result) document.getElementById("result").textContent = result;
    var form = document.getElementById("abort-form");
    if (form && state !== "queued" && state !== "running") form.hidden = true;
  }
  function onMessage(m) {
    if (m.type !== "event" || m.seq <= lastSeq) return;
    lastSeq = m.seq;
    root.dataset.lastSeq = lastSeq;
    if (m.kind === "log") { addLine(m.message); return; }
    addEvent(m);
    if (m.kind === "state" && m.data) setState(m.data.state, m.data.reason || "", m.data.result);
  }
  window.pampamLive = Live(function () { return "/ws/builds/" + id + "/?after=" + lastSeq; },
    onMessage, document.getElementById("live-indicator"));
})();
