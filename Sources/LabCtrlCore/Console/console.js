// Lab web console: sign in with a token, open a session through the controller's /ws, stream the
// relay events, answer permission prompts. Plain JS, no build step, no external resources.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { ws: null, token: null, user: null, lastAssistant: null, warningTimer: null, interrupting: false };

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
  const r = await fetch("/v1/me", { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  if (!r.ok) throw new Error(r.status === 401 ? "That token was not accepted." : "Sign-in failed (" + r.status + ").");
  const me = await r.json();
  state.token = token;
  state.user = me.user;
  sessionStorage.setItem("lab_token", token);
  $("user").textContent = me.user;
  $("token").value = "";
  $("signin").hidden = true;
  $("setup").hidden = false;
  $("start").focus();
}

function signOut() {
  closeSession(1000, "signed out");
  sessionStorage.removeItem("lab_token");
  state.token = null;
  state.user = null;
  $("user").textContent = "";
  $("setup").hidden = true;
  $("session").hidden = true;
  $("signin").hidden = false;
  setConnected(false);
}

function setConnected(on, text) {
  const el = $("conn");
  el.textContent = text || (on ? "connected" : "disconnected");
  el.className = "pill " + (on ? "on" : "off");
}

function add(kind, title, body) {
  const li = document.createElement("li");
  li.className = kind.replace(/[^a-z_]/g, "");
  const k = document.createElement("span");
  k.className = "kind";
  k.textContent = title;
  li.appendChild(k);
  const content = document.createElement("div");
  content.className = "body";
  if (body instanceof Node) content.appendChild(body);
  else content.textContent = body == null ? "" : String(body);
  li.appendChild(content);
  $("stream").appendChild(li);
  li.scrollIntoView({ block: "end" });
  if (kind !== "assistant") state.lastAssistant = null;
  return li;
}

function pretty(v) {
  if (v == null) return "";
  if (typeof v === "string") return v;
  try { return JSON.stringify(v, null, 2); } catch { return String(v); }
}

// Claude tool results are a string or a list of content blocks; other tools put their text in `text`.
function resultText(ev) {
  if (typeof ev.text === "string" && ev.text) return ev.text;
  const c = ev.content;
  if (typeof c === "string") return c;
  if (Array.isArray(c)) {
    const texts = c.filter((b) => b && typeof b.text === "string").map((b) => b.text);
    if (texts.length) return texts.join("\n");
  }
  return pretty(c);
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
  const what = document.createElement("div");
  what.textContent = (ev.text ? ev.text + "\n" : "") + (ev.tool || "") + " " + pretty(ev.args);
  box.appendChild(what);
  const buttons = document.createElement("div");
  buttons.className = "buttons";
  const allow = document.createElement("button");
  allow.type = "button";
  allow.textContent = "Allow";
  allow.className = "allow";
  const deny = document.createElement("button");
  deny.type = "button";
  deny.textContent = "Deny";
  deny.className = "deny";
  buttons.append(allow, deny);
  box.appendChild(buttons);
  const li = add("permission", "permission request · " + (ev.tool || ""), box);
  li.dataset.requestId = String(ev.request_id);
  const answer = (behavior) => {
    const msg = { type: "permission_response", request_id: ev.request_id, behavior, tool_use_id: ev.tool_use_id };
    if (behavior === "allow") msg.updatedInput = ev.args || {};
    else msg.message = "Denied by the user";
    if (!send(msg)) return;
    buttons.querySelectorAll("button").forEach((b) => (b.disabled = true));
    li.querySelector(".kind").textContent = "permission · " + (ev.tool || "") + " — " + (behavior === "allow" ? "allowed" : "denied");
    li.classList.add(behavior === "allow" ? "allowed" : "denied");
  };
  allow.onclick = () => answer("allow");
  deny.onclick = () => answer("deny");
}

function showWarning(ev) {
  let left = ev.metadata && Number.isFinite(ev.metadata.seconds_left) ? ev.metadata.seconds_left : null;
  const text = $("warning-text");
  const draw = () => {
    text.textContent = left == null
      ? (ev.text || "This session is idle and will be stopped soon.")
      : "Idle: your lab worker will be stopped in " + Math.max(0, left) + " s.";
  };
  clearInterval(state.warningTimer);
  draw();
  if (left != null) state.warningTimer = setInterval(() => { left -= 1; draw(); }, 1000);
  $("warning").hidden = false;
}

function hideWarning() {
  clearInterval(state.warningTimer);
  state.warningTimer = null;
  $("warning").hidden = true;
}

// The controller's own progress and notices: `status` events whose `status` starts with "lab.".
function labStatus(ev) {
  switch (ev.status) {
    case "lab.idle_warning": showWarning(ev); return;
    case "lab.idle_warning_cancelled": hideWarning(); return;
    case "lab.ready": $("progress").hidden = true; return;
    case "lab.creating": case "lab.starting": case "lab.waiting": {
      const secs = ev.metadata && ev.metadata.elapsed_seconds;
      $("progress").textContent = (ev.text || ev.status.slice(4)) + "…" + (secs ? " (" + secs + " s)" : "");
      $("progress").hidden = false;
      return;
    }
    default:  // lab.stopped, lab.shutdown, …
      $("progress").hidden = true;
      add("notice", ev.status.slice(4).replace(/_/g, " "), ev.text || "");
  }
}

function render(ev) {
  switch (ev.type) {
    case "status":
      if (typeof ev.status === "string" && ev.status.startsWith("lab.")) labStatus(ev);
      else if (ev.status === "interrupted") add("notice", "interrupted", ev.text || "");
      return;
    case "session_start":
      setConnected(true, (ev.metadata && ev.metadata.tool) + " · " + ((ev.metadata && ev.metadata.folder) || ""));
      $("progress").hidden = true;
      return;
    case "input_ack": case "session_attach": case "stream_event": case "control_response": case "user_message":
    case "tool_progress":
      return;
    case "assistant_message": {
      const blocks = Array.isArray(ev.content) ? ev.content : [];
      const thinking = blocks.filter((b) => b && b.type === "thinking").map((b) => b.thinking).join("\n");
      let text = blocks.filter((b) => b && b.type === "text").map((b) => b.text).join("\n");
      if (!text && typeof ev.text === "string") text = ev.text;
      if (thinking) add("reasoning", "reasoning", thinking);
      if (text) {
        const li = add("assistant", "assistant", text);
        state.lastAssistant = { li, text };
      }
      return;
    }
    case "reasoning": add("reasoning", "reasoning", ev.text || pretty(ev.content)); return;
    case "tool_call": add("tool_call", "tool call · " + (ev.tool || ""), ev.text || pretty(ev.args)); return;
    case "tool_result": add("tool_result", "tool result" + (ev.tool ? " · " + ev.tool : ""), resultText(ev)); return;
    case "file_diff": add("file_diff", "file change" + (ev.file_path ? " · " + ev.file_path : ""), diffNode(ev.diff || ev.text || pretty(ev.content))); return;
    case "permission_request": permission(ev); return;
    case "permission_cancelled": {
      const li = document.querySelector(`li.permission[data-request-id="${CSS.escape(String(ev.request_id))}"]`);
      if (li) { li.querySelectorAll("button").forEach((b) => (b.disabled = true)); li.querySelector(".kind").textContent = "permission — withdrawn"; }
      return;
    }
    case "response": {
      // Claude's final `response` repeats the last assistant text: mark that item instead of repeating it.
      const last = state.lastAssistant;
      if (last && last.text === ev.text && $("stream").lastElementChild === last.li) {
        last.li.className = "response";
        last.li.querySelector(".kind").textContent = "response";
        state.lastAssistant = null;
      } else {
        add("response", "response", ev.text);
      }
      state.interrupting = false;
      return;
    }
    case "artifact": add("response", "artifact · " + (ev.title || ""), ev.text); return;
    case "error":
      // The end of a turn the user interrupted: Claude reports it as an execution error; say it plainly.
      if (state.interrupting && ev.raw && ev.raw.subtype === "error_during_execution") add("notice", "interrupted", "The turn was interrupted.");
      else add("error", "error", ev.text);
      state.interrupting = false;
      return;
    case "quota_warning": case "context_warning": add("error", ev.type.replace("_", " "), ev.text); return;
    case "stdout": case "stderr": if (ev.text) add("stdout", ev.type, ev.text); return;
    case "session_end": add("notice", "session ended", "exit code " + (ev.exit_code ?? "–")); return;
    default: if (ev.text) add("notice", ev.type, ev.text);
  }
}

function send(obj) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
    add("error", "not connected", "Start a session first.");
    return false;
  }
  hideWarning();  // any user frame cancels the idle warning
  state.ws.send(typeof obj === "string" || obj instanceof Uint8Array ? obj : JSON.stringify(obj));
  return true;
}

function closeSession(code, reason) {
  const ws = state.ws;
  state.ws = null;  // its close event must not touch the next session's view
  if (ws) ws.close(code, reason);
  hideWarning();
}

function startSession(handshake) {
  closeSession(1000, "new session");
  $("stream").replaceChildren();
  state.lastAssistant = null;
  $("session").hidden = false;
  $("progress").hidden = false;
  $("progress").textContent = "connecting…";
  setConnected(false, "connecting");
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws?token=${encodeURIComponent(state.token)}`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onopen = () => { if (state.ws === ws) { setConnected(true, "starting"); ws.send(JSON.stringify(handshake)); } };
  ws.onmessage = (m) => {
    if (state.ws !== ws || typeof m.data !== "string") return;  // binary frames carry no events
    let ev;
    try { ev = JSON.parse(m.data); } catch { add("stdout", "frame", m.data); return; }
    if (ev && typeof ev === "object") render(ev);
  };
  ws.onclose = (e) => {
    if (state.ws !== ws) return;
    state.ws = null;
    setConnected(false, "closed" + (e.code ? " " + e.code : ""));
    if (e.reason) add("error", "connection closed", e.reason);
    else if (e.code !== 1000) add("error", "connection closed", "code " + e.code);
    $("progress").hidden = true;
    hideWarning();
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
  const handshake = { tool: $("tool").value, folder: $("folder").value.trim() || "." };
  if ($("model").value.trim()) handshake.model = $("model").value.trim();
  startSession(handshake);
});
$("prompt-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("prompt").value;
  if (!text.trim()) return;
  if (send(text)) { add("user", "you", text); $("prompt").value = ""; }
});
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $("prompt-form").requestSubmit(); }
});
$("interrupt").addEventListener("click", () => { if (send({ type: "interrupt" })) state.interrupting = true; });
// An empty binary frame: user activity for the controller, ignored by the worker.
$("keep").addEventListener("click", () => send(new Uint8Array(0)));
$("end").addEventListener("click", () => {
  if (!state.ws) return;
  closeSession(1000, "ended by user");
  setConnected(false, "ended");
  $("progress").hidden = true;
});

const saved = sessionStorage.getItem("lab_token");
if (saved) signIn(saved).catch(() => signOut());
