/* The sandbox WeCom client's bridge, as @wecom/jssdk 2.4.4 calls it: window.WeixinJSBridge
 * with invoke(name, params, callback) and on(name, callback), then WeixinJSBridgeReady.
 * Each call goes to the client page that frames this one (postMessage, origins checked
 * both ways) and its answer comes back as the client's: {err_msg: "name:ok" | "name:fail
 * ...", ...}. The client's browser says "wxwork/<version>" in its user agent; so does this
 * page once the bridge runs, which is how the SDK knows it is inside WeCom. */
(function () {
  "use strict";
  if (window.WeixinJSBridge) {
    return;
  }
  var script = document.currentScript;
  var clientOrigin = new URL(script.src).origin;
  if (!/wxwork\//i.test(navigator.userAgent)) {
    var userAgent = navigator.userAgent + " wxwork/4.1.22 MicroMessenger/7.0.1";
    Object.defineProperty(navigator, "userAgent", {
      get: function () { return userAgent; },
      configurable: true
    });
  }
  var pending = {};
  var listeners = {};
  var lastId = 0;

  function failure(name, reason) {
    return { err_msg: name + ":fail " + reason };
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== clientOrigin || event.source !== window.parent) {
      return;
    }
    var data = event.data || {};
    if (data.type === "wecom-bridge-result" && pending[data.id]) {
      var callback = pending[data.id];
      delete pending[data.id];
      callback(data.result);
    } else if (data.type === "wecom-bridge-event") {
      (listeners[data.name] || []).forEach(function (listener) { listener(data.result); });
    }
  });

  window.WeixinJSBridge = {
    invoke: function (name, params, callback) {
      var done = typeof callback === "function" ? callback : function () {};
      if (window.parent === window) {
        done(failure(name, "not opened in the WeCom client"));
        return;
      }
      lastId += 1;
      pending[lastId] = done;
      window.parent.postMessage({
        type: "wecom-bridge-invoke",
        id: lastId,
        name: name,
        // Functions (success/fail callbacks) stay here: only data crosses to the client.
        params: JSON.parse(JSON.stringify(params || {})),
        href: location.href
      }, clientOrigin);
    },
    on: function (name, callback) {
      (listeners[name] = listeners[name] || []).push(callback);
    }
  };

  function ready() {
    document.dispatchEvent(new Event("WeixinJSBridgeReady"));
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
