// A websocket that reconnects with capped exponential backoff and shows when it is down.
// `path()` is called on every (re)connect so callers can resume from the last seq they saw.
window.Live = function (path, onMessage, indicator) {
  var delay = 500, socket = null, stopped = false;
  function show(down, text) {
    if (!indicator) return;
    indicator.hidden = false;
    indicator.textContent = text;
    indicator.classList.toggle("down", down);
  }
  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + path());
    socket.onopen = function () { delay = 500; show(false, "● live"); };
    socket.onmessage = function (m) { onMessage(JSON.parse(m.data)); };
    socket.onclose = function (e) {
      if (stopped || e.code === 4401 || e.code === 4403 || e.code === 4404) {
        show(true, e.code === 4401 ? "log in again to follow live" : "not live");
        return;
      }
      show(true, "reconnecting…");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
  return {
    close: function () { stopped = true; if (socket) socket.close(); },
    drop: function () { if (socket) socket.close(); },  // used by tests: the page reconnects
  };
};
