// The dashboard, kept current from /ws/activity/: deployment summaries (state, version,
// progress) and workload summaries from the cluster watcher, which also catch changes made
// behind the portal's back (drift). Workloads carry the Kubernetes name, not the service.
(function () {
  var matrix = document.getElementById("matrix");
  if (!matrix) return;
  var busy = ["approved", "building", "rolling_out", "rolling_back"];
  function find(attr, value, env) {
    return matrix.querySelector("td[" + attr + '="' + CSS.escape(value) + '"][data-environment="' + CSS.escape(env) + '"]');
  }
  function role(td, name) { return td.querySelector('[data-role="' + name + '"]'); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function onDeployment(td, u) {
    var state = role(td, "state");
    state.textContent = "";
    var a = el("a"); a.href = u.url;
    var badge = el("span", "badge tone-" + u.tone, u.state_label);
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
    if (p.desired && busy.indexOf(u.state) >= 0) {
      var bar = el("progress", "bar tone-" + u.tone);
      bar.max = p.desired; bar.value = p.updated || 0;
      bar.title = (p.updated || 0) + " of " + p.desired + " updated, " + (p.available || 0) + " available";
      progress.appendChild(bar);
    }
    role(td, "when").textContent = "just now";
  }
  function rollingOut(td) {
    var badge = td.querySelector("[data-state]");
    return badge && busy.indexOf(badge.dataset.state) >= 0;
  }
  function onWorkload(td, u) {
    // A portal rollout changes the image on purpose: only call it drift once none is under way.
    role(td, "drift").hidden = !u.drifted || rollingOut(td);
    role(td, "image").textContent = u.image || "";
    td.dataset.available = u.available + "/" + u.desired;
  }
  function onMessage(u) {
    if (u.type !== "update") return;
    if (u.kind === "deployment") {
      var td = find("data-service", u.service, u.environment);
      if (td) onDeployment(td, u);
    } else if (u.kind === "workload") {
      matrix.querySelectorAll('td[data-workload="' + CSS.escape(u.workload) + '"][data-environment="' +
        CSS.escape(u.environment) + '"]').forEach(function (td) { onWorkload(td, u); });
    }
  }
  window.pampamLive = Live(function () { return "/ws/activity/"; }, onMessage, document.getElementById("live-indicator"));
})();
