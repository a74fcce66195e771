// The deployment page, kept current from /ws/deployments/<id>/?after=<last seq seen>.
// Every timeline event arrives once, in seq order; a gap (which the server already fills)
// makes the page reconnect and ask again rather than show a hole.
(function () {
  var root = document.getElementById("deployment");
  if (!root) return;
  var id = root.dataset.id;
  var lastSeq = parseInt(root.dataset.lastSeq, 10) || 0;
  var timeline = document.getElementById("timeline");
  // The page reads the deployment, then its events: one written in between is already listed.
  timeline.querySelectorAll("li[data-seq]").forEach(function (li) {
    lastSeq = Math.max(lastSeq, parseInt(li.dataset.seq, 10) || 0);
  });
  var previous = null;  // the last progress snapshot seen live, to describe what changed
  var finals = ["succeeded", "failed", "rolled_back", "rejected", "cancelled"];
  var active = ["approved", "building", "rolling_out", "rolling_back"];
  var labels = {pending_approval: "Pending approval", approved: "Approved", building: "Building",
    rolling_out: "Rolling out", rolling_back: "Rolling back", succeeded: "Succeeded", failed: "Failed",
    rolled_back: "Rolled back", rejected: "Rejected", cancelled: "Cancelled"};
  var tones = {pending_approval: "wait", approved: "info", building: "info", rolling_out: "info",
    rolling_back: "warn", succeeded: "ok", failed: "bad", rolled_back: "warn", rejected: "bad", cancelled: "muted"};

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function clock(at) { return new Date(at).toLocaleTimeString([], {hour12: false}); }

  // What changed between two progress snapshots: ReplicaSet scaling, pods, conditions.
  function changes(before, now) {
    var out = [];
    if (!before) return out;
    if (before.updated !== now.updated) out.push("new ReplicaSet " + before.updated + " → " + now.updated);
    if (before.old_pending !== now.old_pending) out.push("old pods " + before.old_pending + " → " + now.old_pending);
    var seen = {};
    (before.pods || []).forEach(function (p) { seen[p.name] = p; });
    (now.pods || []).forEach(function (p) {
      var was = seen[p.name];
      if (!was) out.push("pod " + p.name + " created");
      else {
        if (!was.ready && p.ready) out.push("pod " + p.name + " ready");
        if (was.status !== p.status && !p.ready) out.push("pod " + p.name + " " + p.status);
        if (p.restarts > was.restarts) out.push("pod " + p.name + " restarted (" + p.restarts + ")");
        if (!was.terminating && p.terminating) out.push("pod " + p.name + " terminating");
      }
      delete seen[p.name];
    });
    Object.keys(seen).forEach(function (name) { out.push("pod " + name + " gone"); });
    var reasons = {};
    (before.conditions || []).forEach(function (c) { reasons[c.type] = c.reason; });
    (now.conditions || []).forEach(function (c) {
      if (reasons[c.type] !== c.reason) out.push(c.type + ": " + c.reason);
    });
    return out;
  }

  function addEvent(e) {
    var li = el("li", "kind-" + e.kind);
    li.dataset.seq = e.seq;
    li.appendChild(el("span", "seq", String(e.seq)));
    li.appendChild(el("span", "when", clock(e.at)));
    var msg = el("span", "msg", e.message);
    if (e.actor && e.kind !== "log") msg.title = "by " + e.actor;
    li.appendChild(msg);
    if (e.data && e.data.progress) {
      var details = changes(previous, e.data.progress);
      if (details.length) li.appendChild(el("span", "detail", details.join(" · ")));
      previous = e.data.progress;
    }
    timeline.appendChild(li);
  }
  function setState(state, reason, at) {
    root.dataset.state = state;
    document.getElementById("banner").className = "banner tone-" + (tones[state] || "muted");
    document.getElementById("state-badge").textContent = labels[state] || state;
    document.getElementById("state-reason").textContent = reason ? ": " + reason : "";
    if (active.indexOf(state) >= 0 && state !== "approved" && !root.dataset.started) root.dataset.started = at;
    if (finals.indexOf(state) >= 0) root.dataset.finished = at;
    var form = document.getElementById("decision-form");
    if (form && state !== "pending_approval") form.hidden = true;
    var cancel = document.getElementById("cancel-form");
    if (cancel && finals.indexOf(state) >= 0) cancel.hidden = true;  // too late to cancel
  }
  // Approvals and rejections also show in the Approvals panel.
  function addDecision(e) {
    var list = document.getElementById("approvals");
    if (!list || !e.actor) return;
    var none = document.getElementById("no-decisions");
    if (none) none.remove();
    var li = el("li");
    li.appendChild(el("strong", "", e.actor));
    li.appendChild(document.createTextNode(" "));
    var ok = e.kind === "approval";
    li.appendChild(el("span", "badge tone-" + (ok ? "ok" : "bad"), ok ? "approved" : "rejected"));
    list.appendChild(li);
    if (ok && e.data && e.data.count !== undefined) document.getElementById("approved-count").textContent = e.data.count;
  }
  function setBar(name, value, max, label) {
    var bar = document.querySelector('[data-bar="' + name + '"]');
    var count = document.querySelector('[data-count="' + name + '"]');
    if (bar) { bar.max = Math.max(max, 1); bar.value = value; }
    if (count) count.textContent = label;
  }
  function setRevision(before, after) {
    var dd = document.getElementById("revision");
    if (!dd) return;
    if (before) dd.dataset.before = before;
    if (after) dd.dataset.after = after;
    dd.textContent = (dd.dataset.before || "?") + " → " + (dd.dataset.after || "?");
  }
  function setProgress(p) {
    if (!p || !p.desired) return;
    if (p.revision && p.revision !== document.getElementById("revision").dataset.before) setRevision("", p.revision);
    ["updated", "ready", "available"].forEach(function (k) { setBar(k, p[k] || 0, p.desired, (p[k] || 0) + "/" + p.desired); });
    var surge = Math.max((p.total || 0) - p.desired, 0);
    setBar("total", p.total || 0, p.max_total || p.desired,
      (p.total || 0) + "/" + p.desired + (surge ? " (+" + surge + " surge, at most " + p.max_total + ")" : ""));
    document.getElementById("progress-message").textContent = p.message || "";
    if (!p.pods) return;
    var body = document.querySelector("#pods tbody");
    body.textContent = "";
    p.pods.forEach(function (pod) {
      var tr = el("tr", pod.terminating ? "pod-terminating" : (pod.ready ? "pod-ready" : "pod-waiting"));
      tr.appendChild(el("td", "mono", pod.name));
      tr.appendChild(el("td", "", pod.status));
      tr.appendChild(el("td", "", pod.ready ? "yes" : "no"));
      tr.appendChild(el("td", "", String(pod.restarts)));
      tr.appendChild(el("td", "mono", pod.image));
      body.appendChild(tr);
    });
  }
  function setDowntime(d) {
    if (!d || !d.checked) return;
    var box = document.getElementById("downtime");
    box.textContent = "";
    var floor = " · lowest " + d.min_available + "/" + d.min_required;
    var span = el("span", "badge tone-" + (d.dropped ? "bad" : "ok"),
      d.dropped ? "availability dropped " + Math.round(d.seconds || 0) + "s" + floor : "no downtime" + floor);
    span.dataset.downtime = d.dropped ? "dropped" : "none";
    box.appendChild(span);
  }
  function onMessage(m) {
    if (m.type === "ready") { root.dataset.synced = m.seq; return; }
    if (m.type !== "event" || m.seq <= lastSeq) return;
    if (m.seq > lastSeq + 1) { live.reconnect(); return; }  // never show a hole: ask again
    lastSeq = m.seq;
    root.dataset.lastSeq = lastSeq;
    addEvent(m);
    if (m.kind === "approval" || m.kind === "rejection") addDecision(m);
    if (m.data && m.data.to) setState(m.data.to, m.data.reason || "", m.at);
    if (m.data && m.data.revision_before) setRevision(m.data.revision_before, "");
    if (m.data && m.data.progress) setProgress(m.data.progress);
    if (m.data && m.data.downtime) setDowntime(m.data.downtime);
  }
  function tick() {
    if (!root.dataset.started) return;
    var end = root.dataset.finished ? new Date(root.dataset.finished) : new Date();
    var s = Math.max(0, Math.round((end - new Date(root.dataset.started)) / 1000));
    var text = Math.floor(s / 60) + "m " + (s % 60) + "s";
    document.getElementById("elapsed").textContent = root.dataset.finished ? " · took " + text : " · " + text;
  }
  setInterval(tick, 1000);
  tick();
  var live = Live(function () { return "/ws/deployments/" + id + "/?after=" + lastSeq; },
    onMessage, document.getElementById("live-indicator"));
  window.pampamLive = live;
})();
