// Passkeys (WebAuthn) in the browser, for three pages:
//   /settings/passkeys  form#passkey-add: register a passkey with a name
//                       (and the current password, when the form asks);
//   /login              button#passkey-sign-in: sign in, no email typed;
//   /cli/login, /oauth/authorize
//                       form[data-step-up=passkey]: Approve asks for a
//                       passkey first and carries the proof it earns.
// Served from this origin: the pages' Content-Security-Policy allows no
// inline script. Each ceremony is a `start` (options from the server) and
// a `finish` (the browser's answer), JSON posted with the session cookie.
(function () {
  "use strict";

  function encode(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decode(value) {
    var text = value.replace(/-/g, "+").replace(/_/g, "/");
    while (text.length % 4) text += "=";
    var binary = atob(text);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body || {}),
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (!response.ok) {
          throw new Error((data && data.message) || "The server refused this (" + response.status + "). Reload the page and try again.");
        }
        return data;
      });
    });
  }

  function creationOptions(options) {
    var pk = options.publicKey;
    pk.challenge = decode(pk.challenge);
    pk.user.id = decode(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = decode(c.id); });
    return { publicKey: pk };
  }

  function requestOptions(options) {
    var pk = options.publicKey;
    pk.challenge = decode(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = decode(c.id); });
    return { publicKey: pk };
  }

  function registration(credential) {
    var r = credential.response;
    return {
      id: credential.id,
      rawId: encode(credential.rawId),
      type: credential.type,
      response: {
        attestationObject: encode(r.attestationObject),
        clientDataJSON: encode(r.clientDataJSON),
        transports: r.getTransports ? r.getTransports() : undefined,
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  function assertion(credential) {
    var r = credential.response;
    return {
      id: credential.id,
      rawId: encode(credential.rawId),
      type: credential.type,
      response: {
        authenticatorData: encode(r.authenticatorData),
        clientDataJSON: encode(r.clientDataJSON),
        signature: encode(r.signature),
        userHandle: r.userHandle ? encode(r.userHandle) : null,
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  // What went wrong, in words: the browser's own errors named.
  function explain(error) {
    if (error && error.name === "NotAllowedError") {
      return "No passkey was used: the request was cancelled or timed out. Try again.";
    }
    if (error && error.name === "InvalidStateError") {
      return "This passkey is already registered to your account.";
    }
    if (error && error.name === "SecurityError") {
      return "This browser refused passkeys for this address. Open the site at its usual address (APP_URL).";
    }
    return (error && error.message) || "Something went wrong. Try again.";
  }

  function show(box, message) {
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    box.focus && box.focus();
  }

  function supported(box) {
    if (window.PublicKeyCredential && navigator.credentials) return true;
    show(box, "This browser cannot use passkeys.");
    return false;
  }

  // Settings: register a passkey.
  var add = document.getElementById("passkey-add");
  if (add) {
    // Hidden until this script runs: without it the form would submit the
    // password somewhere nobody reads it.
    add.hidden = false;
    add.addEventListener("submit", function (event) {
      event.preventDefault();
      var box = document.getElementById("passkey-error");
      if (!supported(box)) return;
      var button = add.querySelector("button[type=submit]");
      button.disabled = true;
      var start = { name: add.elements.name.value };
      // The current password, when the form asks for it.
      if (add.elements.password) start.password = add.elements.password.value;
      post("/settings/passkeys/register/start", start)
        .then(function (options) { return navigator.credentials.create(creationOptions(options)); })
        .then(function (credential) {
          return post("/settings/passkeys/register/finish", { credential: registration(credential) });
        })
        .then(function () { window.location.assign("/settings/passkeys?done=added"); })
        .catch(function (error) {
          button.disabled = false;
          show(box, explain(error));
        });
    });
  }

  // Sign-in page: sign in with a passkey, no email typed.
  var signIn = document.getElementById("passkey-sign-in");
  if (signIn) {
    signIn.hidden = false;
    signIn.addEventListener("click", function () {
      var box = document.getElementById("passkey-error");
      if (!supported(box)) return;
      signIn.disabled = true;
      post("/login/passkey/start")
        .then(function (options) { return navigator.credentials.get(requestOptions(options)); })
        .then(function (credential) {
          return post("/login/passkey/finish", {
            credential: assertion(credential),
            redirect: signIn.getAttribute("data-redirect") || null,
          });
        })
        .then(function (answer) { window.location.assign(answer.redirect || "/"); })
        .catch(function (error) {
          signIn.disabled = false;
          show(box, explain(error));
        });
    });
  }

  // Approval page: Approve asks for a passkey first, when the server does.
  var approval = document.querySelector("form[data-step-up=passkey]");
  if (approval) {
    var proven = false;
    approval.addEventListener("submit", function (event) {
      var submitter = event.submitter;
      if (proven || !submitter || submitter.value !== "approve") return;
      event.preventDefault();
      var box = document.getElementById("passkey-error");
      if (!supported(box)) return;
      submitter.disabled = true;
      // The device flow names its request by the code; the consent page
      // by the authorization request's parameters, carried in the form.
      var base = approval.getAttribute("action") + "/step-up/";
      var start = { code: approval.elements.code ? approval.elements.code.value : null };
      if (approval.hasAttribute("data-carried")) {
        var params = {};
        approval.getAttribute("data-carried").split(" ").forEach(function (name) {
          if (approval.elements[name]) params[name] = approval.elements[name].value;
        });
        start = { params: params };
      }
      post(base + "start", start)
        .then(function (options) { return navigator.credentials.get(requestOptions(options)); })
        .then(function (credential) {
          return post(base + "finish", { credential: assertion(credential) });
        })
        .then(function (answer) {
          approval.querySelector("[data-step-up-proof]").value = answer.stepUpProof;
          proven = true;
          submitter.disabled = false;
          approval.requestSubmit(submitter);
        })
        .catch(function (error) {
          submitter.disabled = false;
          show(box, explain(error));
        });
    });
  }
})();
