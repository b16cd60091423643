/* The sandbox WeCom client page: hosts the app's chat-toolbar page in an iframe and answers
 * its bridge calls (bridge.js) as the WeCom client would. agentConfig (and config) are
 * checked against the tickets the sandbox issued, for the URL the iframe is on; until one
 * passes, the chat APIs answer "no permission". */
(function () {
  "use strict";
  var root = document.getElementById("client");
  var cfg = root.dataset;
  var frame = document.getElementById("toolbar");
  var messages = document.getElementById("messages");
  var verified = null; // {url, signature} of the agentConfig that passed

  root.querySelectorAll(".switch").forEach(function (button) {
    button.addEventListener("click", function () {
      root.className = "client show-" + button.dataset.show;
    });
  });

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text) { node.textContent = text; }
    return node;
  }

  function render(list) {
    messages.textContent = "";
    if (!list.length) {
      messages.appendChild(el("li", "empty", "还没有消息。工具栏放进聊天的消息会出现在这里。"));
      return;
    }
    list.forEach(function (message) {
      var item = el("li", message.msgtype === "news" ? "card" : "");
      item.dataset.msgtype = message.msgtype;
      if (message.msgtype === "news") {
        var link = el("a");
        link.href = message.content.link;
        link.target = "_blank";
        link.rel = "noopener";
        if (message.content.imgUrl) {
          var img = el("img");
          img.src = message.content.imgUrl;
          img.alt = "";
          link.appendChild(img);
        }
        link.appendChild(el("strong", "", message.content.title));
        link.appendChild(el("span", "", message.content.desc || ""));
        item.appendChild(link);
      } else if (message.msgtype === "text") {
        item.textContent = message.content.content;
      } else {
        item.textContent = "[" + message.msgtype + "]";
      }
      messages.appendChild(item);
    });
    messages.scrollTop = messages.scrollHeight;
  }

  function loadChat() {
    return fetch(cfg.chatUrl).then(function (r) { return r.json(); }).then(render);
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (r) { return r.json(); });
  }

  function signedUrl(href) { return href.split("#")[0]; }

  function configCheck(kind, params, href) {
    return post(cfg.verifyUrl, {
      corp_id: cfg.corpId,
      kind: kind,
      agentid: params.agentid,
      url: signedUrl(href),
      timestamp: params.timestamp || params.verifyTimestamp,
      nonceStr: params.nonceStr || params.verifyNonceStr,
      signature: params.signature || params.verifySignature
    });
  }

  function allowed(params, href) {
    return verified !== null && verified.url === signedUrl(href) &&
      params.verifySignature === verified.signature;
  }

  var handlers = {
    preVerifyJSAPI: function (params, href) {
      if (params.verifyAppId !== cfg.corpId) {
        return Promise.resolve({ err_msg: "config:fail invalid corpid" });
      }
      return configCheck("corp", params, href).then(function (answer) {
        return { err_msg: answer.ok ? "config:ok" : "config:fail " + answer.reason };
      });
    },
    agentConfig: function (params, href) {
      if (params.corpid !== cfg.corpId) {
        verified = null;
        return Promise.resolve({ err_msg: "agentConfig:fail invalid corpid" });
      }
      return configCheck("agent", params, href).then(function (answer) {
        verified = answer.ok ? { url: signedUrl(href), signature: params.signature } : null;
        return { err_msg: answer.ok ? "agentConfig:ok" : "agentConfig:fail " + answer.reason };
      });
    },
    getContext: function () {
      return { err_msg: "getContext:ok", entry: cfg.entry, shareTicket: "" };
    },
    getCurExternalContact: function () {
      if (!cfg.externalUserid) {
        return { err_msg: "getCurExternalContact:fail without context of external contact" };
      }
      return { err_msg: "getCurExternalContact:ok", userId: cfg.externalUserid };
    },
    getCurExternalChat: function () {
      if (!cfg.chatId) {
        return { err_msg: "getCurExternalChat:fail without context of external contact" };
      }
      return { err_msg: "getCurExternalChat:ok", chatId: cfg.chatId };
    },
    sendChatMessage: function (params) {
      var body = {
        corp_id: cfg.corpId,
        userid: cfg.userid,
        external_userid: cfg.externalUserid,
        chat_id: cfg.chatId,
        msgtype: params.msgtype
      };
      body[params.msgtype] = params[params.msgtype];
      return post(cfg.sendUrl, body).then(function (answer) {
        loadChat();
        return { err_msg: answer.ok ? "sendChatMessage:ok" : "sendChatMessage:fail " + answer.reason };
      });
    }
  };
  var needsAgentConfig = ["getContext", "getCurExternalContact", "getCurExternalChat", "sendChatMessage"];

  function answer(name, params, href) {
    var handler = handlers[name];
    if (!handler) {
      return Promise.resolve({ err_msg: name + ":fail function not exist" });
    }
    if (needsAgentConfig.indexOf(name) >= 0 && !allowed(params, href)) {
      return Promise.resolve({ err_msg: name + ":fail no permission" });
    }
    return Promise.resolve(handler(params, href)).catch(function (error) {
      return { err_msg: name + ":fail " + error };
    });
  }

  window.addEventListener("message", function (event) {
    var data = event.data || {};
    if (!frame || event.source !== frame.contentWindow || event.origin !== cfg.toolbarOrigin ||
        data.type !== "wecom-bridge-invoke") {
      return;
    }
    answer(data.name, data.params || {}, String(data.href || "")).then(function (result) {
      frame.contentWindow.postMessage(
        { type: "wecom-bridge-result", id: data.id, result: result }, cfg.toolbarOrigin);
    });
  });

  loadChat();
  setInterval(loadChat, 3000);
})();
