(function () {
  var matrix = document.getElementById("matrix");
  if (!matrix) return;
  function cell(service, env) {
    return matrix.querySelector('td[data-service="' + service + '"][data-environment="' + env + '"]');
  }
  function role(td, name) { return td.querySelector('[data-role="' + name + '"]'); }
  function onMessage(u) {
    if (u.type !== "update") return;
    var td = cell(u.service, u.environment);
    if (!td) return;
    if (u.kind === "deployment") {
      var state = role(td, "state");
      state.textContent = "";
      var a = document.createElement("a"); a.href = u.url;
      var badge = document.createElement("span");
      badge.className = "badge tone-" + u.tone; badge.dataset.state = u.state; badge.textContent = u.state_label;
      a.appendChild(badge); state.appendChild(a);
      var v = document.createElement("span"); v.className = "mono muted"; v.textContent = " " + u.version; state.appendChild(v);
      if (u.state === "succeeded") role(td, "version").textContent = u.version;
      var progress = role(td, "progress");
      progress.textContent = "";
      var p = u.progress || {};
      if (p.desired && ["rolling_out", "rolling_back", "building"].indexOf(u.state) >= 0) {
        var bar = document.createElement("progress"); bar.className = "bar tone-" + u.tone; bar.max = p.desired; bar.value = p.updated || 0;
        progress.appendChild(bar);
      }
      role(td, "when").textContent = "just now";
    } else if (u.kind === "workload") {
      var drift = role(td, "drift");
      drift.hidden = !u.drifted;
      role(td, "image").textContent = u.image;
    }
  }
  window.pampamLive = Live(function () { return "/ws/activity/"; }, onMessage, document.getElementById("live-indicator"));
})();
