// The dashboard, kept current from /ws/activity/: deployment summaries (state, version,
// progress) and workload summaries from the cluster watcher, which also catch changes made
// behind the portal's back (drift). Workloads carry the Kubernetes name, not the service.
// Freezes and locks re-read the board; the "waiting for your approval" line follows the badge.
(function () {
  if (!document.getElementById("matrix")) return;
  var el = Pampam.el;
  function matrix() { return document.getElementById("matrix"); }
  function busy(state) { return Pampam.isActive(state) && state !== "pending_approval"; }
  function find(attr, value, env) {
    return matrix().querySelector("td[" + attr + '="' + CSS.escape(value) + '"][data-environment="' + CSS.escape(env) + '"]');
  }
  function role(td, name) { return td.querySelector('[data-role="' + name + '"]'); }

  function onDeployment(td, u) {
    var state = role(td, "state");
    state.textContent = "";
    var a = el("a");
    a.href = u.url;
    var words = Pampam.state("deploy", u.state);
    var badge = el("span", "badge tone-" + (u.tone || words.tone), u.state_label || words.label);
    badge.dataset.state = u.state;
    a.appendChild(badge);
    state.appendChild(a);
    if (u.state !== "succeeded") state.appendChild(el("span", "mono muted", " " + u.version));
    if (u.state === "succeeded") {
      role(td, "version").textContent = u.version;
      role(td, "drift").hidden = true;
    }
    var progress = role(td, "progress");
    progress.textContent = "";
    var p = u.progress || {};
    if (p.desired && busy(u.state)) {
      var bar = el("progress", "bar tone-" + (u.tone || words.tone));
      bar.max = p.desired;
      bar.value = p.updated || 0;
      bar.title = (p.updated || 0) + " of " + p.desired + " updated, " + (p.available || 0) + " available";
      progress.appendChild(bar);
    }
    role(td, "when").textContent = "just now";
  }
  function rollingOut(td) {
    var badge = td.querySelector("[data-state]");
    return badge && busy(badge.dataset.state);
  }
  function onWorkload(td, u) {
    // A portal rollout changes the image on purpose: only call it drift once none is under way.
    role(td, "drift").hidden = !u.drifted || rollingOut(td);
    role(td, "image").textContent = u.image || "";
    td.dataset.available = u.available + "/" + u.desired;
  }
  Pampam.showActivityOn(document.getElementById("live-indicator"));
  Pampam.onActivity(function (u) {
    if (u.kind === "deployment") {
      var td = find("data-service", u.service, u.environment);
      if (td) onDeployment(td, u);
    } else if (u.kind === "workload") {
      matrix().querySelectorAll('td[data-workload="' + CSS.escape(u.workload) + '"][data-environment="' +
        CSS.escape(u.environment) + '"]').forEach(function (td) { onWorkload(td, u); });
    } else if (u.kind === "guard") {
      Pampam.refresh();
    }
  });
  Pampam.onConnected(Pampam.refresh);
  Pampam.onWaiting(function (count) {
    var line = document.getElementById("waiting-line");
    line.textContent = "";
    if (!count) { line.textContent = "Nothing waits for your approval."; return; }
    var a = el("a");
    a.href = "/approvals/";
    a.appendChild(el("span", "badge tone-wait", count + " waiting for your approval"));
    line.appendChild(a);
  });
})();
