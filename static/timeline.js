// One timeline for deployments and builds: entries in seq order, the state banner, and the socket
// (/ws/<kind>s/<id>/?after=<last seq seen>) that delivers every event once. A gap (which the
// server fills before it forwards a later event) makes the page ask again rather than show a hole.
//
//   var timeline = Timeline({root, list, path: function (afterSeq) {…}, onEvent: function (m) {…}});
//   timeline.entry(m)   append m to the list (the page decides which events belong there)
//   timeline.banner(label, tone, reason)
//   timeline.hold() / timeline.resume()   park live events (a replay is showing), then apply them
window.Timeline = function (options) {
  var root = options.root, list = options.list;
  var lastSeq = parseInt(root.dataset.lastSeq, 10) || 0;
  // The page reads the parent row, then its events: one written in between is already listed.
  list.querySelectorAll("li[data-seq]").forEach(function (li) {
    lastSeq = Math.max(lastSeq, parseInt(li.dataset.seq, 10) || 0);
  });
  var held = null;

  function entry(m, detail) {
    var el = Pampam.el;
    var li = el("li", "kind-" + m.kind);
    // The same status again (a pod moved, the rollout did not): drawn quietly, its change in front.
    var last = list.lastElementChild && list.lastElementChild.querySelector(".msg");
    if (m.kind === "progress" && last && last.textContent === m.message) li.classList.add("repeat");
    li.dataset.seq = m.seq;
    // A numbered list counts its own entries (a build's steps, its log lines being elsewhere).
    var number = list.classList.contains("numbered") ? list.children.length + 1 : m.seq;
    li.appendChild(el("span", "seq", String(number)));
    li.appendChild(el("span", "when", Pampam.clock(m.at)));
    var msg = el("span", "msg", m.message);
    if (m.actor && m.kind !== "log") msg.title = "by " + m.actor;
    li.appendChild(msg);
    if (detail) li.appendChild(el("span", "detail", detail));
    list.appendChild(li);
    return li;
  }
  function banner(label, tone, reason) {
    document.getElementById("banner").className = "banner tone-" + (tone || "muted");
    document.getElementById("state-badge").textContent = label;
    document.getElementById("state-reason").textContent = reason ? ": " + reason : "";
  }
  function receive(m) {
    if (m.type === "ready") { root.dataset.synced = m.seq; return; }
    if (m.type !== "event" || m.seq <= lastSeq) return;
    if (m.seq > lastSeq + 1) { live.reconnect(); return; }  // never show a hole: ask again
    lastSeq = m.seq;
    root.dataset.lastSeq = lastSeq;
    if (held) { held.push(m); return; }
    options.onEvent(m);
  }
  var live = Live(function () { return options.path(lastSeq); }, receive, document.getElementById("live-indicator"));
  window.pampamLive = live;
  return {
    entry: entry,
    banner: banner,
    hold: function () { held = held || []; },
    resume: function (apply) {
      var parked = held || [];
      held = null;
      parked.forEach(apply || options.onEvent);
    },
    live: live,
  };
};
