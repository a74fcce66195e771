// Shared by every page of a logged-in user: the state vocabulary (from base.html's json_script,
// written from releases.states), small DOM helpers, one /ws/activity/ socket for whoever needs it,
// the approvals badge in the header, and live regions: parts of a page marked data-live-region
// that are re-read from the server when something they show changed, so buttons, permissions
// and counts always come from the same view code as a reload would.
window.Pampam = (function () {
  var vocabulary = {};
  var node = document.getElementById("pampam-vocabulary");
  if (node) vocabulary = JSON.parse(node.textContent);

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function clock(at) { return new Date(at).toLocaleTimeString([], {hour12: false}); }
  // {label, tone} of a state: family is "deploy", "rollback" or "build".
  function state(family, name) {
    var words = (vocabulary[family] || {})[name];
    return words || {label: name, tone: "muted"};
  }
  function isFinal(name) { return (vocabulary.final || []).indexOf(name) >= 0; }
  function isActive(name) { return (vocabulary.active || []).indexOf(name) >= 0; }

  // Live regions ------------------------------------------------------------------------------
  var timer = null, busy = false, again = false, listeners = [];
  function refresh() {
    if (timer) return;
    timer = setTimeout(reread, 150);
  }
  function reread() {
    timer = null;
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.pathname + location.search, {credentials: "same-origin", headers: {"X-Pampam-Refresh": "1"}})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html) swap(html); })
      .catch(function () { /* the next change tries again */ })
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var changed = [];
    document.querySelectorAll("[data-live-region]").forEach(function (old) {
      var next = fresh.getElementById(old.id);
      if (!next) { old.remove(); return; }  // the page no longer shows it (what ran before a rollout)
      keepTyping(old, next);
      if (settled(next) === settled(old)) return;
      var until = inUse(old);
      if (until) { hold(old, until); return; }
      var adopted = document.adoptNode(next);
      old.replaceWith(adopted);
      changed.push(adopted);
    });
    if (changed.length) listeners.forEach(function (fn) { fn(changed); });
  }
  // A region's HTML as it stands, with what its fields now hold (typed, chosen, ticked) written
  // into it, and without what differs between two renders of the same state: the CSRF token
  // (masked anew on every render) and relative times (retold here from the clock). So a region
  // someone has typed into equals the next render once keepTyping has carried the typing over,
  // and is not replaced on every re-read.
  function settled(region) {
    var copy = region.cloneNode(true);
    var fields = region.querySelectorAll("input, select, textarea");
    copy.querySelectorAll("input, select, textarea").forEach(function (twin, i) {
      var field = fields[i];
      if (field.tagName === "TEXTAREA") twin.textContent = field.value;
      else if (field.tagName === "SELECT") {
        Array.prototype.forEach.call(twin.options, function (o, j) { o.toggleAttribute("selected", field.options[j].selected); });
      } else if (field.type === "checkbox" || field.type === "radio") twin.toggleAttribute("checked", field.checked);
      else if (field.type !== "hidden") twin.setAttribute("value", field.value);
    });
    copy.querySelectorAll("input[name=csrfmiddlewaretoken]").forEach(function (i) { i.removeAttribute("value"); });
    copy.querySelectorAll("time[data-relative]").forEach(function (t) { t.textContent = ""; });
    return copy.innerHTML;
  }
  // Someone is in one of its fields, or pressing something in it (a button between its
  // pointerdown and click): replacing it now would pull the field or the button from under them.
  // Says what to wait for: focus leaving the region, or the press ending.
  var pressed = null, lifted = [];
  function press(event) { pressed = event.target; }
  function lift() {
    setTimeout(function () {  // after the click the press makes
      pressed = null;
      var waiting = lifted;
      lifted = [];
      waiting.forEach(function (fn) { fn(); });
    }, 0);
  }
  ["pointerdown", "keydown"].forEach(function (type) { document.addEventListener(type, press, true); });
  ["pointerup", "pointercancel", "keyup"].forEach(function (type) { document.addEventListener(type, lift, true); });
  function inUse(region) {
    var focused = document.activeElement;
    if (focused && region.contains(focused) && focused.matches("input, select, textarea")) return "focusout";
    return pressed && region.contains(pressed) ? "lift" : null;
  }
  // Then it is read again (and held again if still in use).
  function hold(region, until) {
    if (region.dataset.held) return;
    region.dataset.held = "1";
    function again() { delete region.dataset.held; refresh(); }
    if (until === "lift") { lifted.push(again); return; }
    region.addEventListener("focusout", function left(event) {
      if (event.relatedTarget && region.contains(event.relatedTarget)) return;  // still inside
      region.removeEventListener("focusout", left);
      again();
    });
  }
  // What someone has typed, chosen, ticked or opened in a region survives its refresh. It is
  // carried as the fields' state, not their markup, so the next render's own defaults stay what
  // the server said: a field is carried while it differs from what the server last rendered.
  function keepTyping(old, next) {
    old.querySelectorAll("textarea[name], input[name]:not([type=hidden])").forEach(function (field) {
      var named = '[name="' + CSS.escape(field.name) + '"]';
      if (field.type === "checkbox" || field.type === "radio") {
        if (field.checked === field.defaultChecked) return;
        var box = next.querySelector("input" + named + '[value="' + CSS.escape(field.value) + '"]');
        if (box) box.checked = field.checked;
        return;
      }
      if (field.value === field.defaultValue) return;
      var twin = next.querySelector(named);
      if (twin && twin.tagName === field.tagName) twin.value = field.value;
    });
    old.querySelectorAll("select[name]").forEach(function (field) {
      var chosen = field.options[field.selectedIndex];
      if (!chosen || chosen.defaultSelected) return;
      var twin = next.querySelector('select[name="' + CSS.escape(field.name) + '"]');
      var same = twin && Array.prototype.find.call(twin.options, function (o) { return o.value === chosen.value; });
      if (same) same.selected = true;  // a choice the new render no longer offers is dropped
    });
    var opened = next.querySelectorAll("details");
    old.querySelectorAll("details").forEach(function (d, i) {
      if (opened[i]) opened[i].open = d.open;
    });
  }
  function onRefreshed(fn) { listeners.push(fn); }

  // The activity stream ------------------------------------------------------------------------
  // The stream has no replay: what changed between the page's render and the socket's open (or
  // while it was down) is re-read by whoever registered with onConnected.
  var subscribers = [], connected = [], activity = null, indicator = null;
  function onActivity(fn) {
    subscribers.push(fn);
    if (!activity) {
      activity = Live(function () { return "/ws/activity/"; }, function (u) {
        if (u.type !== "update") return;
        subscribers.forEach(function (s) { s(u); });
      }, indicator, function () { connected.forEach(function (fn) { fn(); }); });
    }
  }
  function onConnected(fn) { connected.push(fn); }
  function showActivityOn(element) { indicator = element; }

  // The approvals badge: recounted when a deployment enters or leaves "pending approval", and when
  // one that waits for me is decided on (by me elsewhere: it leaves my list; by others: its count moves).
  var badge = document.getElementById("nav-waiting");
  var waiting = {}, known = {}, waitingListeners = [];
  if (badge) (badge.dataset.ids || "").split(" ").forEach(function (id) { if (id) { waiting[id] = true; known[id] = "pending_approval"; } });
  function recount() {
    fetch("/approvals/waiting/", {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        waiting = {};
        data.ids.forEach(function (id) { waiting[id] = true; known[id] = "pending_approval"; });
        badge.textContent = String(data.count);
        badge.hidden = !data.count;
        badge.dataset.ids = data.ids.join(" ");
        waitingListeners.forEach(function (fn) { fn(data.count); });
      })
      .catch(function () {});
  }
  var recountTimer = null;
  function recountSoon() { if (!recountTimer) recountTimer = setTimeout(function () { recountTimer = null; recount(); }, 150); }
  function watchWaiting(u) {
    if (u.kind !== "deployment") return;
    var id = String(u.deployment), was = known[id];
    known[id] = u.state;
    var pending = u.state === "pending_approval";
    if (pending ? (was !== "pending_approval" || waiting[id]) : (was === "pending_approval" || waiting[id])) recountSoon();
  }
  function onWaiting(fn) { waitingListeners.push(fn); }

  // Relative times ----------------------------------------------------------------------------
  // `<time data-relative>` ("3 minutes ago", widgets.when) may come from a fragment the server
  // kept for up to a minute: under a day old, say it again from the clock, in naturaltime's words.
  function ago(n, one, many) { return n === 1 ? one : n + " " + many; }
  function relative(seconds) {
    if (seconds < 1) return "now";
    if (seconds < 60) return ago(Math.floor(seconds), "a second ago", "seconds ago");
    if (seconds < 3600) return ago(Math.floor(seconds / 60), "a minute ago", "minutes ago");
    return ago(Math.floor(seconds / 3600), "an hour ago", "hours ago");
  }
  function retell() {
    var now = Date.now();
    document.querySelectorAll("time[data-relative][datetime]").forEach(function (t) {
      var seconds = (now - Date.parse(t.getAttribute("datetime"))) / 1000;
      if (seconds >= 0 && seconds < 86400) t.textContent = relative(seconds);
    });
  }
  onRefreshed(retell);
  setInterval(retell, 30000);

  function start() {
    retell();
    if (badge) { onActivity(watchWaiting); onConnected(recountSoon); }
    var body = document.body.dataset;
    if (body.liveService !== undefined || body.liveEnvironment !== undefined || body.liveGuards !== undefined) {
      onConnected(refresh);
    }
    // Pages that show what the activity stream changes re-read their live regions.
    if (body.liveService !== undefined) onActivity(function (u) {
      if (u.kind === "guard" || u.service === body.liveService) {
        if (u.kind !== "deployment" || known["s" + u.deployment] !== u.state) refresh();
        if (u.kind === "deployment") known["s" + u.deployment] = u.state;
      }
    });
    if (body.liveEnvironment !== undefined) onActivity(function (u) {
      if (u.environment !== body.liveEnvironment) return;
      if (u.kind === "guard" || (u.kind === "deployment" && known["e" + u.deployment] !== u.state)) refresh();
      if (u.kind === "deployment") known["e" + u.deployment] = u.state;
    });
    if (body.liveGuards !== undefined) onActivity(function (u) { if (u.kind === "guard") refresh(); });
    if (body.liveWaiting !== undefined) onWaiting(refresh);
  }
  document.addEventListener("DOMContentLoaded", start);

  return {
    el: el, clock: clock, state: state, isFinal: isFinal, isActive: isActive,
    refresh: refresh, onRefreshed: onRefreshed,
    onActivity: onActivity, onConnected: onConnected, showActivityOn: showActivityOn, onWaiting: onWaiting,
  };
})();
