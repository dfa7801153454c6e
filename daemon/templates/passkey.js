// Haven console: passkeys (WebAuthn). The only script the console serves. It finds the forms
// marked data-passkey, shows them, and on submit asks the daemon for options (POST
// data-options with the form's CSRF token), asks the browser for a passkey, puts the answer
// in the form's "credential" field and submits the form. Without it, the code form is unchanged.
"use strict";

function fromBase64Url(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function toBase64Url(buffer) {
  let s = "";
  for (const b of new Uint8Array(buffer)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function options(form) {
  const body = new URLSearchParams({ csrf: form.elements.csrf.value });
  const r = await fetch(form.dataset.options, { method: "POST", body, credentials: "same-origin" });
  if (!r.ok) throw new Error("Haven could not start (" + r.status + "). Reload the page and try again.");
  return (await r.json()).publicKey;
}

async function register(form) {
  const o = await options(form);
  o.challenge = fromBase64Url(o.challenge);
  o.user.id = fromBase64Url(o.user.id);
  for (const c of o.excludeCredentials || []) c.id = fromBase64Url(c.id);
  const cred = await navigator.credentials.create({ publicKey: o });
  return {
    id: cred.id,
    rawId: toBase64Url(cred.rawId),
    type: cred.type,
    response: {
      attestationObject: toBase64Url(cred.response.attestationObject),
      clientDataJSON: toBase64Url(cred.response.clientDataJSON),
    },
    extensions: cred.getClientExtensionResults(),
  };
}

async function authenticate(form) {
  const o = await options(form);
  o.challenge = fromBase64Url(o.challenge);
  for (const c of o.allowCredentials || []) c.id = fromBase64Url(c.id);
  const cred = await navigator.credentials.get({ publicKey: o });
  const r = cred.response;
  return {
    id: cred.id,
    rawId: toBase64Url(cred.rawId),
    type: cred.type,
    response: {
      authenticatorData: toBase64Url(r.authenticatorData),
      clientDataJSON: toBase64Url(r.clientDataJSON),
      signature: toBase64Url(r.signature),
      userHandle: r.userHandle ? toBase64Url(r.userHandle) : null,
    },
    extensions: cred.getClientExtensionResults(),
  };
}

if (window.PublicKeyCredential) {
  for (const form of document.querySelectorAll("form[data-passkey]")) {
    form.closest("section").hidden = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const status = form.querySelector(".passkey-status");
      status.textContent = "Waiting for your passkey…";
      try {
        const answer = form.dataset.passkey === "register" ? await register(form) : await authenticate(form);
        form.elements.credential.value = JSON.stringify(answer);
        form.submit();
      } catch (e) {
        status.textContent = "The passkey was not used: " + e.message;
      }
    });
  }
}
