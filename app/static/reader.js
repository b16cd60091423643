// The hosted page's reading beacon: reading time, likes and shares, by the view's signed token.
(function () {
  var endpoint = document.currentScript.dataset.beacon;
  var view = document.currentScript.dataset.view;
  function send(fields, leaving) {
    var body = new URLSearchParams(Object.assign({v: view}, fields));
    if (leaving && navigator.sendBeacon) { navigator.sendBeacon(endpoint, body); return; }
    fetch(endpoint, {method: "POST", body: body, keepalive: true});
  }
  // Reading time: seconds the page is visible with the reader active in the last minute.
  var seconds = 0, lastActive = Date.now(), reported = 0;
  ["scroll", "touchstart", "mousemove", "keydown", "click"].forEach(function (name) {
    window.addEventListener(name, function () { lastActive = Date.now(); }, {passive: true});
  });
  setInterval(function () {
    if (document.visibilityState === "visible" && Date.now() - lastActive < 60000) seconds += 1;
  }, 1000);
  function report(leaving) {
    if (seconds > reported || leaving) { reported = seconds; send({e: "read", s: seconds, f: leaving ? "1" : "0"}, leaving); }
  }
  setInterval(function () { report(false); }, 30000);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") report(true);
  });
  window.addEventListener("pagehide", function () { report(true); });
  var like = document.getElementById("like");
  if (like) like.addEventListener("click", function () {
    if (like.getAttribute("aria-pressed") === "true") return;
    like.setAttribute("aria-pressed", "true");
    send({e: "like"});
  });
  var share = document.getElementById("share");
  if (share) share.addEventListener("click", function () {
    var url = document.getElementById("share-url");
    url.style.display = "block";
    if (navigator.clipboard) navigator.clipboard.writeText(url.textContent.trim()).catch(function () {});
    send({e: "share"});
  });
})();
