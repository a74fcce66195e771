// The deployment page: the rollout picture (bars, pods, availability) drawn from progress
// snapshots, the timeline kept current by timeline.js, and a replay of a finished rollout that
// draws the recorded events again through the very same functions.
(function () {
  var root = document.getElementById("deployment");
  if (!root) return;
  var el = Pampam.el;
  var family = root.dataset.kind === "rollback" ? "rollback" : "deploy";
  var list = document.getElementById("timeline");
  var image = root.dataset.image || "";
  var previous = null;  // the last snapshot drawn, to describe what changed
  var desired = 0;

  function snapshotFrom(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // -- the rollout picture --------------------------------------------------------------------

  function bar(dl, key, title, value, max, text, tone) {
    var dt = el("dt", null, title + " ");
    var count = el("span", null, text);
    count.dataset.count = key;
    dt.appendChild(count);
    var dd = el("dd");
    var progress = el("progress", "bar" + (tone ? " tone-" + tone : ""));
    progress.dataset.bar = key;
    progress.max = Math.max(max, 1);
    progress.value = value;
    dd.appendChild(progress);
    dl.appendChild(dt);
    dl.appendChild(dd);
  }
  // Updated and Ready count the new version only, against what is wanted: they never read 5/4.
  // Available counts old and new pods that serve, against the minimum the rollout must keep.
  function drawBars(p) {
    var dl = document.getElementById("bars");
    dl.textContent = "";
    if (!p || p.desired === undefined) return;
    var wanted = p.desired, updated = p.updated || 0, available = p.available || 0, floor = p.min_required || 0;
    var ready = p.new_ready !== undefined ? p.new_ready : Math.min(p.ready || 0, updated);
    bar(dl, "updated", "Updated", updated, wanted, updated + "/" + wanted, "");
    bar(dl, "ready", "Ready (new version)", ready, wanted, ready + "/" + wanted, ready >= wanted ? "ok" : "");
    bar(dl, "available", "Available (old and new)", available, Math.max(wanted, available),
      available + " available · needs " + floor + " of " + wanted, available < floor ? "bad" : "ok");
    var summary = (p.total || 0) + " pod" + (p.total === 1 ? "" : "s") + " running (" + wanted + " wanted";
    if (p.max_total > wanted && p.status !== "complete") summary += ", at most " + p.max_total + " during the rollout";
    summary += ")";
    if (p.old_pending) summary += " · " + p.old_pending + " old pending termination";
    document.getElementById("pod-summary").textContent = summary;
    document.getElementById("progress-message").textContent = p.message || "";
  }
  function drawPods(p) {
    var body = document.querySelector("#pods tbody");
    body.textContent = "";
    ((p && p.pods) || []).forEach(function (pod) {
      var waitingToStart = !pod.ready && !pod.terminating;
      var tr = el("tr", pod.terminating ? "pod-terminating" : (pod.ready ? "pod-ready" : "pod-waiting"));
      if (image) tr.classList.add(pod.image === image ? "pod-new" : "pod-old");
      tr.appendChild(el("td", "mono", pod.name));
      var version = el("td", "mono", (pod.image || "").split("/").pop());
      version.title = pod.image || "";
      tr.appendChild(version);
      tr.appendChild(el("td", "", pod.status));
      tr.appendChild(el("td", "", pod.ready ? "yes" : (waitingToStart ? "no" : "—")));
      tr.appendChild(el("td", "", String(pod.restarts || 0)));
      body.appendChild(tr);
    });
  }
  function drawDowntime(d) {
    var box = document.getElementById("downtime");
    box.textContent = "";
    if (!d || !d.checked) {
      var none = el("span", "muted", "—");
      none.dataset.downtime = "unknown";
      box.appendChild(none);
      return;
    }
    var of = desired ? " of " + desired : "";
    var floor = " available (minimum " + d.min_required + ")";
    var text = d.dropped
      ? "availability dropped " + Math.round(d.seconds || 0) + "s: down to " + d.min_available + of + floor
      : "no downtime: never below " + d.min_available + of + floor;
    var span = el("span", "badge tone-" + (d.dropped ? "bad" : "ok"), text);
    span.dataset.downtime = d.dropped ? "dropped" : "none";
    box.appendChild(span);
  }
  function drawProgress(p) {
    if (!p || p.desired === undefined) return;
    desired = p.desired;
    document.getElementById("rollout-view").hidden = false;
    var before = document.getElementById("runs-now");
    if (before) before.hidden = true;  // the rollout is the picture now
    if (p.revision) setRevision("", p.revision);
    drawBars(p);
    drawPods(p);
  }

  // What changed between two snapshots: the new ReplicaSet, old pods, each pod, conditions.
  function changes(before, now) {
    var out = [];
    if (!before) return out;
    if (before.updated !== now.updated) out.push("new pods " + before.updated + " → " + now.updated);
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

  // -- state, approvals, revision --------------------------------------------------------------

  function setState(data, at) {
    var state = data.to;
    var words = Pampam.state(family, state);
    root.dataset.state = state;
    timeline.banner(data.label || words.label, data.tone || words.tone, data.reason || "");
    var target = document.getElementById("state-target");
    if (target) target.hidden = state === "pending_approval" || state === "rejected" || state === "cancelled";
    if (Pampam.isActive(state) && state !== "approved" && state !== "pending_approval" && !root.dataset.started) {
      root.dataset.started = at;
    }
    if (Pampam.isFinal(state)) root.dataset.finished = at;
    var form = document.getElementById("decision-form");
    if (form && state !== "pending_approval") form.hidden = true;
    var cancel = document.getElementById("cancel-form");
    if (cancel && Pampam.isFinal(state)) cancel.hidden = true;  // too late to cancel
  }
  function addDecision(m) {
    var box = document.getElementById("approvals");
    if (!box || !m.actor) return;
    var none = document.getElementById("no-decisions");
    if (none) none.remove();
    var li = el("li");
    li.appendChild(el("strong", "", m.actor));
    li.appendChild(document.createTextNode(" "));
    var ok = m.kind === "approval";
    li.appendChild(el("span", "badge tone-" + (ok ? "ok" : "bad"), ok ? "approved" : "rejected"));
    box.appendChild(li);
    var count = document.getElementById("approved-count");
    if (ok && count && m.data && m.data.count !== undefined) count.textContent = m.data.count;
  }
  function setRevision(before, after) {
    var dd = document.getElementById("revision");
    if (!dd) return;
    if (before) dd.dataset.before = before;
    if (after) dd.dataset.after = after;
    dd.textContent = (dd.dataset.before || "?") + " → " + (dd.dataset.after || "?");
  }

  // -- events ----------------------------------------------------------------------------------

  // Events that change what the side panels offer (buttons, approvals, the Jenkins job, reports).
  var QUIET = {progress: true, log: true, note: true};
  function apply(m, replaying) {
    var detail = "";
    if (m.data && m.data.progress) detail = changes(previous, m.data.progress).join(" · ");
    timeline.entry(m, detail);
    if (!replaying && (m.kind === "approval" || m.kind === "rejection")) addDecision(m);
    if (m.data && m.data.to) setState(m.data, m.at);
    if (m.data && m.data.revision_before) setRevision(m.data.revision_before, "");
    if (m.data && m.data.progress) { drawProgress(m.data.progress); previous = m.data.progress; }
    if (m.data && m.data.downtime) drawDowntime(m.data.downtime);
    if (!replaying && !QUIET[m.kind]) Pampam.refresh();
  }

  var timeline = Timeline({
    root: root,
    list: list,
    path: function (after) { return "/ws/deployments/" + root.dataset.id + "/?after=" + after; },
    onEvent: function (m) { apply(m, false); },
  });
  // GitHub, Grafana and Slack answer after the deployment's last event: the Reports panel follows.
  Pampam.onActivity(function (u) {
    if (u.kind === "report" && String(u.deployment) === root.dataset.id) Pampam.refresh();
  });
  Pampam.onConnected(Pampam.refresh);  // a report written before the activity socket opened

  // The picture the page was rendered with: the latest snapshot, as the last event carried it.
  var first = snapshotFrom("rollout-snapshot");
  if (first && first.desired !== undefined) { drawProgress(first); previous = first; }
  drawDowntime(snapshotFrom("rollout-downtime"));

  function tick() {
    if (!root.dataset.started) return;
    // A replay shows its own clock; "took 0m 6s" beside a replayed "Pending approval" misleads.
    if (root.dataset.replay) { document.getElementById("elapsed").textContent = ""; return; }
    var end = root.dataset.finished ? new Date(root.dataset.finished) : new Date();
    var s = Math.max(0, Math.round((end - new Date(root.dataset.started)) / 1000));
    var text = Math.floor(s / 60) + "m " + (s % 60) + "s";
    document.getElementById("elapsed").textContent = root.dataset.finished ? " · took " + text : " · " + text;
  }
  setInterval(tick, 1000);
  tick();

  // -- replay ----------------------------------------------------------------------------------
  // The recorded events drawn again on an emptied picture, on a clock that runs 1×–16× the real
  // one (idle stretches longer than IDLE seconds are shortened to IDLE, and said so).

  var panel = document.getElementById("replay");
  if (!panel) return;
  var IDLE = 5000;
  var play = document.getElementById("replay-play"), exit = document.getElementById("replay-exit");
  var scrubber = document.getElementById("replay-scrubber"), speed = document.getElementById("replay-speed");
  var clockText = document.getElementById("replay-clock"), low = document.getElementById("replay-low");
  var note = document.getElementById("replay-note");
  var events = null, times = [], duration = 0, position = 0, applied = 0, running = false, lastFrame = 0;

  function schedule(all) {
    var t = 0, shortened = 0;
    times = all.map(function (m, i) {
      if (i > 0) {
        var gap = new Date(m.at) - new Date(all[i - 1].at);
        if (gap > IDLE) { shortened += gap - IDLE; gap = IDLE; }
        t += Math.max(gap, 0);
      }
      return t;
    });
    duration = Math.max(t, 1);
    if (shortened > 1000) note.textContent = "Idle stretches (waiting for approvals, say) are shortened to " + IDLE / 1000 + " s; " + Math.round(shortened / 1000) + " s skipped.";
    markLowest(all);
  }
  function markLowest(all) {
    var best = -1, at = -1, seenStart = false;
    all.forEach(function (m, i) {
      if (m.data && m.data.to && m.data.to !== "pending_approval" && m.data.to !== "approved") seenStart = true;
      var p = m.data && m.data.progress;
      if (!seenStart || !p || p.available === undefined) return;
      if (best < 0 || p.available < best) { best = p.available; at = i; }
    });
    if (at < 0) return;
    var p = all[at].data.progress;
    low.hidden = false;
    low.style.left = (times[at] / duration * 100) + "%";
    low.title = "Lowest availability: " + best + " of " + p.desired + " (minimum " + p.min_required + ") at " + mmss(times[at]);
    low.dataset.at = times[at];
    low.dataset.available = best;
  }
  function mmss(ms) {
    var s = Math.floor(ms / 1000);
    return Math.floor(s / 60) + ":" + ("0" + (s % 60)).slice(-2);
  }
  function empty() {
    list.textContent = "";
    document.getElementById("bars").textContent = "";
    document.querySelector("#pods tbody").textContent = "";
    document.getElementById("pod-summary").textContent = "";
    document.getElementById("progress-message").textContent = "Nothing changed in the cluster yet: the rollout starts once the deployment is approved.";
    drawDowntime(null);
    var words = Pampam.state(family, "pending_approval");
    timeline.banner(words.label, words.tone, "");
    var dd = document.getElementById("revision");
    if (dd) { dd.dataset.before = ""; dd.dataset.after = ""; dd.textContent = "? → ?"; }
    previous = null;
    applied = 0;
  }
  function advanceTo(ms) {
    while (applied < events.length && times[applied] <= ms) apply(events[applied++], true);
    position = ms;
    scrubber.value = Math.round(ms / duration * 1000);
    clockText.textContent = mmss(ms) + " / " + mmss(duration);
  }
  function seek(ms) {
    empty();
    advanceTo(ms);
  }
  function frame(now) {
    if (!running) return;
    position = Math.min(duration, position + (now - lastFrame) * Number(speed.value));
    lastFrame = now;
    advanceTo(position);
    if (position >= duration) return finish();
    requestAnimationFrame(frame);
  }
  function start() {
    running = true;
    root.dataset.replay = "playing";
    play.textContent = "❚❚ Pause";
    lastFrame = performance.now();
    requestAnimationFrame(frame);
  }
  function pause() {
    running = false;
    root.dataset.replay = "paused";
    play.textContent = "▶ Play";
  }
  function finish() {
    running = false;
    root.dataset.replay = "done";
    play.textContent = "▶ Replay again";
  }
  function load(then) {
    fetch("/deployments/" + root.dataset.id + "/events/", {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        events = data.events;
        schedule(events);
        scrubber.disabled = false;
        exit.hidden = false;
        timeline.hold();
        then();
      });
  }
  play.addEventListener("click", function () {
    if (!events) return load(function () { seek(0); start(); });
    if (running) return pause();
    if (position >= duration) seek(0);
    start();
  });
  scrubber.addEventListener("input", function () {
    if (!events) return;
    pause();
    seek(Number(scrubber.value) / 1000 * duration);
  });
  low.addEventListener("click", function () {
    if (!events) return;
    pause();
    seek(Number(low.dataset.at));
  });
  exit.addEventListener("click", function () {
    pause();
    seek(duration);
    timeline.resume(function (m) { apply(m, false); });
    events = null;
    exit.hidden = true;
    scrubber.disabled = true;
    root.dataset.replay = "";
    play.textContent = "▶ Replay";
  });
})();
