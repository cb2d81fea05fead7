// Stamp admin: progressive enhancement only. Every form also works without this file.
(function () {
  "use strict";
  var embedded = document.body.hasAttribute("data-embedded");

  function appBridge() {
    return embedded && window.shopify && typeof window.shopify.idToken === "function" ? window.shopify : null;
  }

  // Inside Shopify's frame, writes go as fetches with the App Bridge session token
  // (CSRF-safe bearer auth); the answer replaces the page, streamed as it arrives.
  async function authorised(url, init) {
    var bridge = appBridge();
    init = init || {};
    if (bridge) {
      init.headers = Object.assign({}, init.headers, { Authorization: "Bearer " + (await bridge.idToken()) });
    } else {
      init.credentials = "same-origin";
    }
    return fetch(url, init);
  }

  async function replaceDocument(response) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    document.open();
    for (;;) {
      var chunk = await reader.read();
      if (chunk.done) break;
      document.write(decoder.decode(chunk.value, { stream: true }));
    }
    document.close();
    if (response.url) history.replaceState(null, "", response.url);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!appBridge() || (form.getAttribute("method") || "").toLowerCase() !== "post") return;
    event.preventDefault();
    var body = new FormData(form);
    if (event.submitter && event.submitter.name) body.append(event.submitter.name, event.submitter.value);
    var submitter = event.submitter;
    // getAttribute: a control named "action" (our Save button) shadows form.action.
    var action = submitter && submitter.hasAttribute("formaction")
      ? submitter.getAttribute("formaction")
      : form.getAttribute("action") || location.href;
    authorised(action, { method: "POST", body: body }).then(replaceDocument);
  });

  // Live preview of what a sample order earns, from the form as it is being typed.
  var program = document.querySelector("form[data-preview-url]");
  if (program) {
    var timer = null;
    var refresh = function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        authorised(program.getAttribute("data-preview-url"), { method: "POST", body: new FormData(program) })
          .then(function (response) { return response.json(); })
          .then(function (data) {
            var target = document.getElementById("preview-result");
            if (!target) return;
            target.textContent = data.error ? data.error.message : data.summary;
            target.setAttribute("data-points", data.error ? "" : String(data.points));
          });
      }, 200);
    };
    program.addEventListener("input", refresh);
    program.addEventListener("change", refresh);
  }

  // App Bridge toasts for the success banners, when App Bridge is there.
  var bridge = appBridge();
  if (bridge && bridge.toast) {
    document.querySelectorAll("[data-toast]").forEach(function (node) {
      bridge.toast.show(node.getAttribute("data-toast"));
    });
  }
})();
