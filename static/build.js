// A build's page: console lines go to the log, other events to the (shared) timeline; the header
// and the side panel (number, result, release, abort button) are re-read when the build moves.
(function () {
  var root = document.getElementById("build");
  if (!root) return;
  var log = document.getElementById("log");

  function addLine(text) {
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(document.createTextNode(text + "\n"));
    if (atBottom) log.scrollTop = log.scrollHeight;
  }
  var timeline = Timeline({
    root: root,
    list: document.getElementById("timeline"),
    path: function (after) { return "/ws/builds/" + root.dataset.id + "/?after=" + after; },
    onEvent: function (m) {
      if (m.kind === "log") { addLine(m.message); return; }
      timeline.entry(m);
      if (m.kind === "state" && m.data) {
        var words = Pampam.state("build", m.data.state);
        root.dataset.state = m.data.state;
        timeline.banner(m.data.label || words.label, m.data.tone || words.tone, m.data.reason || "");
        if (m.data.result) document.getElementById("result").textContent = m.data.result;
      }
      Pampam.refresh();  // started (number), finished (result), release made: the panels show them
    },
  });
})();
