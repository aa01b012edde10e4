// Lab web console: sign in with a token, open a session through the controller's /ws, stream the
// relay events, answer permission prompts. Plain JS, no build step, no external resources.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { ws: null, token: null, user: null, turn: false };

// A token in the URL (the single-mode link) is taken once and removed from the address bar.
(function takeTokenFromURL() {
  const params = new URLSearchParams(location.search);
  const t = params.get("token");
  if (t) {
    sessionStorage.setItem("lab_token", t);
    history.replaceState(null, "", location.pathname);
  }
})();

async function signIn(token) {
  const r = await fetch("/v1/me", { headers: { Authorization: "Bearer " + token } });
  if (!r.ok) throw new Error(r.status === 401 ? "That token was not accepted." : "Sign-in failed (" + r.status + ").");
  const me = await r.json();
  state.token = token;
  state.user = me.user;
  sessionStorage.setItem("lab_token", token);
  $("user").textContent = me.user;
  $("signin").hidden = true;
  $("setup").hidden = false;
}

function signOut() {
  if (state.ws) state.ws.close(1000, "signed out");
  sessionStorage.removeItem("lab_token");
  state.token = null;
  $("user").textContent = "";
  $("setup").hidden = true;
  $("session").hidden = true;
  $("signin").hidden = false;
}

function setConnected(on, text) {
  const el = $("conn");
  el.textContent = text || (on ? "connected" : "disconnected");
  el.className = "pill " + (on ? "on" : "off");
}

function add(kind, title, body, extraClass) {
  const li = document.createElement("li");
  li.className = (extraClass || kind).replace(/[^a-z_ ]/g, "");
  const k = document.createElement("span");
  k.className = "kind";
  k.textContent = title;
  li.appendChild(k);
  if (body instanceof Node) li.appendChild(body);
  else li.appendChild(document.createTextNode(body == null ? "" : String(body)));
  $("stream").appendChild(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

function pretty(v) {
  if (v == null) return "";
  if (typeof v === "string") return v;
  try { return JSON.stringify(v, null, 2); } catch { return String(v); }
}

function diffNode(text) {
  const pre = document.createElement("pre");
  for (const line of String(text).split("\n")) {
    const span = document.createElement("span");
    if (line.startsWith("+")) span.className = "add";
    else if (line.startsWith("-")) span.className = "del";
    span.textContent = line + "\n";
    pre.appendChild(span);
  }
  return pre;
}

function permission(ev) {
  const box = document.createElement("div");
  box.appendChild(document.createTextNode((ev.text ? ev.text + "\n" : "") + (ev.tool || "") + " " + pretty(ev.args)));
  const buttons = document.createElement("div");
  buttons.className = "buttons";
  const answer = (behavior) => {
    send({ type: "permission_response", request_id: ev.request_id, behavior, updatedInput: ev.args || {},
           tool_use_id: ev.tool_use_id, message: behavior === "deny" ? "Denied by user" : undefined });
    buttons.querySelectorAll("button").forEach((b) => (b.disabled = true));
    li.querySelector(".kind").textContent = "permission — " + (behavior === "allow" ? "allowed" : "denied");
  };
  const allow = document.createElement("button");
  allow.textContent = "Allow";
  allow.className = "allow";
  allow.onclick = () => answer("allow");
  const deny = document.createElement("button");
  deny.textContent = "Deny";
  deny.className = "deny";
  deny.onclick = () => answer("deny");
  buttons.append(allow, deny);
  box.appendChild(buttons);
  const li = add("permission", "permission request", box, "permission");
  li.dataset.requestId = ev.request_id;
}

function render(ev) {
  switch (ev.type) {
    case "status":
      if (typeof ev.status === "string" && ev.status.startsWith("lab.")) {
        if (ev.status === "lab.idle_warning") {
          $("warning").hidden = false;
          $("warning").textContent = ev.text || "This session is idle and will be stopped soon. Send anything to keep it.";
        } else {
          $("progress").hidden = ev.status === "lab.ready";
          $("progress").textContent = ev.text || ev.status.replace("lab.", "") + "…";
        }
      }
      return;
    case "session_start": setConnected(true, "session " + (ev.metadata && ev.metadata.tool)); return;
    case "input_ack": case "session_attach": case "stream_event": case "control_response": case "user_message": return;
    case "assistant_message": {
      const blocks = Array.isArray(ev.content) ? ev.content : [];
      const text = blocks.filter((b) => b.type === "text").map((b) => b.text).join("\n");
      const thinking = blocks.filter((b) => b.type === "thinking").map((b) => b.thinking).join("\n");
      if (thinking) add("reasoning", "reasoning", thinking);
      if (text) add("assistant", "assistant", text);
      else if (typeof ev.text === "string" && ev.text) add("assistant", "assistant", ev.text);
      return;
    }
    case "reasoning": add("reasoning", "reasoning", ev.text || pretty(ev.content)); return;
    case "tool_call": add("tool_call", "tool call · " + (ev.tool || ""), ev.text || pretty(ev.args)); return;
    case "tool_result": add("tool_result", "tool result", typeof ev.content === "string" ? ev.content : ev.text || pretty(ev.content)); return;
    case "file_diff": add("file_diff", "file change", diffNode(ev.diff || ev.text || pretty(ev.content))); return;
    case "permission_request": permission(ev); return;
    case "permission_cancelled": {
      const li = document.querySelector(`li.permission[data-request-id="${CSS.escape(String(ev.request_id))}"]`);
      if (li) { li.querySelectorAll("button").forEach((b) => (b.disabled = true)); li.querySelector(".kind").textContent = "permission — withdrawn"; }
      return;
    }
    case "response": add("response", "response", ev.text); state.turn = false; return;
    case "artifact": add("response", "artifact · " + (ev.title || ""), ev.text); return;
    case "error": add("error", "error", ev.text); state.turn = false; return;
    case "quota_warning": case "context_warning": add("error", ev.type.replace("_", " "), ev.text); return;
    case "stdout": case "stderr": if (ev.text) add("stdout", ev.type, ev.text); return;
    case "session_end": add("status", "session ended", "exit code " + (ev.exit_code ?? "–")); return;
    default: if (ev.text) add("status", ev.type, ev.text);
  }
}

function send(obj) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
  $("warning").hidden = true;
  state.ws.send(typeof obj === "string" ? obj : JSON.stringify(obj));
  return true;
}

function startSession(handshake) {
  $("stream").innerHTML = "";
  $("session").hidden = false;
  $("progress").hidden = false;
  $("progress").textContent = "connecting…";
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws?token=${encodeURIComponent(state.token)}`);
  state.ws = ws;
  ws.onopen = () => { setConnected(true, "starting"); ws.send(JSON.stringify(handshake)); };
  ws.onmessage = (m) => { try { render(JSON.parse(m.data)); } catch (e) { add("error", "bad frame", String(m.data)); } };
  ws.onclose = (e) => {
    setConnected(false, "closed" + (e.code ? " " + e.code : ""));
    if (e.reason) add("error", "connection closed", e.reason);
    $("progress").hidden = true;
    if (state.ws === ws) state.ws = null;
  };
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("signin-error").hidden = true;
  try { await signIn($("token").value.trim()); }
  catch (err) { $("signin-error").textContent = err.message; $("signin-error").hidden = false; }
});
$("signout").addEventListener("click", signOut);
$("session-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const handshake = { tool: $("tool").value, folder: $("folder").value || "." };
  if ($("model").value.trim()) handshake.model = $("model").value.trim();
  if (state.ws) state.ws.close(1000, "new session");
  startSession(handshake);
});
$("prompt-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("prompt").value;
  if (!text.trim()) return;
  if (send(text)) { add("user", "you", text); $("prompt").value = ""; state.turn = true; }
});
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $("prompt-form").requestSubmit(); }
});
$("interrupt").addEventListener("click", () => send({ type: "interrupt" }));
$("end").addEventListener("click", () => { if (state.ws) state.ws.close(1000, "ended by user"); });

const saved = sessionStorage.getItem("lab_token");
if (saved) signIn(saved).catch(() => signOut());
