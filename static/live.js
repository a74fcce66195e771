// A websocket that reconnects with capped exponential backoff and shows when it is down.
// `path()` is called on every (re)connect so callers can resume from the last seq they saw.
// Close codes 4400/4401/4403/4404 are refusals: retrying would not help, so it stops.
// {"type": "resync"} (the page fell too far behind the server) reconnects at once.
// `onOpen(first)`, when given, runs on every open: what was missed before it cannot be replayed
// by every stream, so callers re-read what they show.
window.Live = function (path, onMessage, indicator, onOpen) {
  var opened = false, resyncing = false;
  var delay = 500, socket = null, stopped = false, timer = null, pinger = null;
  var refusals = {4400: "not live (bad request)", 4401: "log in again to follow live", 4403: "not live (not allowed)",
    4404: "not live (not found)"};
  function show(down, text) {
    if (!indicator) return;
    indicator.hidden = false;
    indicator.textContent = text;
    indicator.classList.toggle("down", down);
    indicator.dataset.live = down ? "down" : "up";
  }
  function connect() {
    timer = null;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = socket = new WebSocket(scheme + location.host + path());
    ws.onopen = function () {
      delay = 500;
      show(false, "● live");
      if (onOpen) onOpen(!opened);
      opened = true;
    };
    // A frame is one message, or (when this page fell behind) a JSON array of them in order.
    ws.onmessage = function (m) {
      var data = JSON.parse(m.data);
      var messages = Array.isArray(data) ? data : [data];
      for (var i = 0; i < messages.length && ws === socket; i++) {
        if (messages[i].type === "resync") { resyncing = true; ws.close(); return; }
        onMessage(messages[i]);
      }
    };
    ws.onclose = function (e) {
      if (ws !== socket) return;
      if (refusals[e.code]) { stopped = true; show(true, refusals[e.code]); return; }
      if (stopped) return;
      show(true, "reconnecting…");
      timer = setTimeout(connect, resyncing ? 0 : delay);
      resyncing = false;
      delay = Math.min(delay * 2, 10000);
    };
  }
  // A ping now and then keeps proxies from closing an idle socket.
  pinger = setInterval(function () {
    if (socket && socket.readyState === 1) socket.send(JSON.stringify({type: "ping"}));
  }, 25000);
  connect();
  return {
    close: function () { stopped = true; clearInterval(pinger); if (socket) socket.close(); },
    // Cut the connection as a network failure would: the page reconnects and resumes.
    drop: function () { if (socket) socket.close(); },
    reconnect: function () { if (socket && socket.readyState <= 1) socket.close(); },
  };
};
