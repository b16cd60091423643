/* The chat sidebar's shell (app/wecom_app.py describes the panel contract it implements):
 * registers @wecom/jssdk with this page's signatures, asks which chat it was opened from,
 * loads that chat's panel into #panel, and runs the panel's cards, forms and links. */
(function () {
  "use strict";
  var root = document.getElementById("sidebar");
  var cfg = root.dataset;
  var status = document.getElementById("status");
  var notice = document.getElementById("notice");
  var panel = document.getElementById("panel");
  var csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  var panelUrl = null;
  var refused = false;

  function refuse(message) {
    refused = true;
    panel.hidden = true;
    panel.textContent = "";
    notice.hidden = true;
    status.textContent = message;
    status.className = "status refusal";
    status.hidden = false;
  }

  function showNotice(message) {
    notice.textContent = message;
    notice.hidden = false;
  }

  function errorText(error) {
    return (error && (error.errMsg || error.err_msg || error.message)) || String(error);
  }

  function show(response) {
    return response.text().then(function (html) {
      if (response.ok || response.status === 422) {
        panel.innerHTML = html;
        panel.hidden = false;
        status.hidden = true;
        return;
      }
      refuse(response.status === 403 ? cfg.msgForbidden
        : response.status === 404 ? cfg.msgNotFound : cfg.msgFailed);
    });
  }

  function load(url) {
    panelUrl = url;
    notice.hidden = true;
    return fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(show)
      .catch(function () { refuse(cfg.msgFailed); });
  }

  // --- JS-SDK registration: one signature request per signed URL -------------------
  var signatures = {};
  function signaturesFor(url) {
    if (!signatures[url]) {
      signatures[url] = fetch(cfg.signatureUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
        body: JSON.stringify({ url: url })
      }).then(function (response) {
        if (!response.ok) {
          delete signatures[url];
          throw new Error("signature " + response.status);
        }
        return response.json();
      });
    }
    return signatures[url];
  }

  if (typeof ww === "undefined" || !ww.env.isWeCom) {
    refuse(cfg.msgOutside);
    return;
  }
  ww.register({
    corpId: cfg.corpId,
    agentId: cfg.agentId,
    jsApiList: cfg.jsApiList.split(","),
    getConfigSignature: function (url) {
      return signaturesFor(url).then(function (s) { return s.config; });
    },
    getAgentConfigSignature: function (url) {
      return signaturesFor(url).then(function (s) { return s.agentConfig; });
    }
  });

  ww.getContext().then(function (context) {
    if (context.entry === "single_chat_tools" || context.entry === "contact_profile") {
      return ww.getCurExternalContact().then(function (result) {
        return load(cfg.panelBase + "/contact/" + encodeURIComponent(result.userId));
      });
    }
    if (context.entry === "group_chat_tools") {
      return ww.getCurExternalChat().then(function (result) {
        return load(cfg.panelBase + "/group/" + encodeURIComponent(result.chatId));
      });
    }
    refuse(cfg.msgNotChat);
  }).catch(function (error) {
    var text = errorText(error);
    refuse(/without context/.test(text) ? cfg.msgNotChat : cfg.msgRefused);
  });

  // --- the panel contract -------------------------------------------------------------
  function formBody(extra) {
    var body = new URLSearchParams(extra || {});
    body.set("csrf_token", csrfToken);
    return body;
  }

  panel.addEventListener("click", function (event) {
    if (refused) { return; }
    var card = event.target.closest("[data-send-card]");
    if (card) {
      event.preventDefault();
      var news;
      try {
        news = JSON.parse(card.dataset.sendCard);
      } catch (error) {
        showNotice(cfg.msgSendFailed + " " + errorText(error));
        return;
      }
      card.disabled = true;
      ww.sendChatMessage({
        msgtype: "news",
        news: { link: news.link, title: news.title, desc: news.desc || "", imgUrl: news.imgUrl || "" }
      }).then(function () {
        if (!card.dataset.sentUrl) { return load(panelUrl); }
        return fetch(card.dataset.sentUrl, {
          method: "POST",
          credentials: "same-origin",
          body: formBody()
        }).then(function () { return load(panelUrl); });
      }).catch(function (error) {
        card.disabled = false;
        showNotice(cfg.msgSendFailed + " " + errorText(error));
      });
      return;
    }
    var link = event.target.closest("a[data-panel-link]");
    if (link) {
      event.preventDefault();
      load(link.href);
    }
  });

  panel.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-panel-form]");
    if (!form || refused) { return; }
    event.preventDefault();
    var data = new FormData(form);
    if (event.submitter && event.submitter.name) {
      data.append(event.submitter.name, event.submitter.value);
    }
    data.set("csrf_token", csrfToken);
    fetch(form.action, {
      method: (form.getAttribute("method") || "POST").toUpperCase(),
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" },
      body: data
    }).then(show).catch(function () { refuse(cfg.msgFailed); });
  });
})();
