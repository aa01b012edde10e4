"""Identity and isolation.

- no token, bad signature, expired, `alg: none`, wrong algorithm/issuer/audience, unsafe `sub` → HTTP 401
  on the upgrade, and no worker was started;
- RS256 / ES256 public keys work, a token from another key (or HS256 "signed" with the public key) does not;
- user A's token never reaches user B's worker or workspace: folder escapes (`..`, absolute paths, symlinks,
  absolute symlinks) are refused with an `error` event, forged user fields in the handshake change nothing,
  and in multi mode the agent itself cannot see B's files;
- forbidden tools / env / extra_args / mcp_config / Cortex credentials → `error` event and close, no worker.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

import harness
from fakes.fake_anthropic import Text, ToolUse

from labsupport import (ADMIN_TOKEN, JWT_SECRET, TOKENS, b64url, claims, jwt_hs256, jwt_openssl, multi_env, single_env,
                        wait_until)
from test_labctrl_e2e import run_turn

ISSUER = "lab-tests"
AUDIENCE = "lab-ws"


def jwt(sub: str, **kw) -> str:
    return jwt_hs256(claims(sub, iss=ISSUER, aud=AUDIENCE, **kw))


@pytest.fixture(scope="module")
def lab(labs, lab_dir, tokens_file, fake_api):
    return labs.start(single_env(lab_dir, tokens_file, fake_api, LAB_JWT_ISSUER=ISSUER, LAB_JWT_AUDIENCE=AUDIENCE,
                                 LAB_ALLOWED_TOOLS="claude,claude-code,codex,gemini,kimi,cortex"), name="sec")


def upgrade_status(url: str, headers: dict | None = None) -> int:
    """The HTTP status of a WebSocket upgrade attempt (101 when it succeeded)."""
    try:
        with ws_connect(url, open_timeout=10, proxy=None, additional_headers=headers or {}):
            return 101
    except InvalidStatus as e:
        return e.response.status_code


def relay_workers_under(root: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"relay-worker") and any(root.encode() in c for c in cmd):
                pids.append(int(d.name))
    return pids


def test_bad_credentials_are_refused_before_any_worker(lab):
    now = int(time.time())
    alg_none = f"{b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64url(json.dumps(claims('mallory', iss=ISSUER, aud=AUDIENCE)).encode())}."
    hs512 = jwt_hs256(claims("mallory", iss=ISSUER, aud=AUDIENCE), header={"alg": "HS512", "typ": "JWT"})
    cases = {
        "no token": lab.ws_url(),
        "garbage": lab.ws_url("not-a-token"),
        "unknown operator token": lab.ws_url("x" * 30),
        "bad signature": lab.ws_url(jwt_hs256(claims("mallory", iss=ISSUER, aud=AUDIENCE), secret="another-secret-0123456789abcdef-xyz")),
        "expired": lab.ws_url(jwt("mallory", ttl=-120)),
        "no exp": lab.ws_url(jwt_hs256({"sub": "mallory", "iss": ISSUER, "aud": AUDIENCE})),
        "not yet valid": lab.ws_url(jwt("mallory", nbf=now + 3600)),
        "alg none": lab.ws_url(alg_none),
        "alg HS512 with our secret": lab.ws_url(hs512),
        "wrong issuer": lab.ws_url(jwt_hs256(claims("mallory", iss="someone-else", aud=AUDIENCE))),
        "wrong audience": lab.ws_url(jwt_hs256(claims("mallory", iss=ISSUER, aud="other"))),
        "unsafe sub": lab.ws_url(jwt("../bob")),
        "tampered payload": lab.ws_url(".".join([jwt("mallory").split(".")[0], b64url(json.dumps(claims("bob", iss=ISSUER, aud=AUDIENCE)).encode()), jwt("mallory").split(".")[2]])),
    }
    for what, url in cases.items():
        assert upgrade_status(url) == 401, what
    assert upgrade_status(lab.ws_url(), {"Authorization": "Bearer nonsense"}) == 401
    assert upgrade_status(lab.ws_url(), {"Cookie": "lab_token=nonsense"}) == 401
    # Nothing was started for anyone.
    assert lab.workers() == []
    assert relay_workers_under(lab.env["LAB_WORKSPACE_ROOT"]) == []
    assert not (Path(lab.env["LAB_WORKSPACE_ROOT"]) / "mallory").exists()
    # Plain HTTP on /ws says 401 as well; the admin API refuses user tokens.
    assert lab.http("GET", "/ws")[0] == 401
    assert lab.http("GET", "/v1/workers", TOKENS["alice"])[0] == 401
    assert lab.http("GET", "/v1/workers")[0] == 401
    assert 'lab_auth_failures_total{reason="expired"} 1' in lab.metrics()


def test_valid_jwt_and_token_file_users(lab):
    assert upgrade_status(lab.ws_url(jwt("carol"))) == 101
    assert upgrade_status(lab.ws_url(TOKENS["alice"])) == 101
    # An upgrade alone (no handshake) starts nothing.
    assert lab.workers() == []


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_public_key_algorithms(labs, lab_dir, tokens_file, fake_api, alg):
    keys = lab_dir / f"keys-{alg}"
    keys.mkdir(exist_ok=True)
    def keypair(name: str) -> tuple[Path, Path]:
        priv, pub = keys / f"{name}.pem", keys / f"{name}.pub.pem"
        if alg == "RS256":
            subprocess.run(["openssl", "genrsa", "-out", str(priv), "2048"], check=True, capture_output=True, timeout=60)
            subprocess.run(["openssl", "rsa", "-in", str(priv), "-pubout", "-out", str(pub)], check=True, capture_output=True, timeout=60)
        else:
            subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(priv)], check=True, capture_output=True, timeout=60)
            subprocess.run(["openssl", "ec", "-in", str(priv), "-pubout", "-out", str(pub)], check=True, capture_output=True, timeout=60)
        return priv, pub
    priv, pub = keypair("good")
    other, _ = keypair("other")
    env = single_env(lab_dir, tokens_file, fake_api, LAB_JWT_PUBLIC_KEY_FILE=str(pub))
    env.pop("LAB_JWT_SECRET")
    lab = labs.start(env, name=f"pk-{alg}")
    try:
        assert upgrade_status(lab.ws_url(jwt_openssl(claims("erin"), priv, alg))) == 101
        assert upgrade_status(lab.ws_url(jwt_openssl(claims("erin"), other, alg))) == 401
        assert upgrade_status(lab.ws_url(jwt_openssl(claims("erin", ttl=-60), priv, alg))) == 401
        # Algorithm confusion: HS256 keyed with the public PEM.
        assert upgrade_status(lab.ws_url(jwt_hs256(claims("erin"), secret=pub.read_text()))) == 401
        assert upgrade_status(lab.ws_url(jwt_hs256(claims("erin")))) == 401
    finally:
        lab.stop()


# ---- isolation between users --------------------------------------------------------------------


def open_session(lab, token: str, hs: dict, timeout: float = 60.0) -> harness.WSClient:
    c = harness.WSClient(lab.ws_url(token))
    c.send_json(hs)
    return c


def refused(c: harness.WSClient, needle: str) -> dict:
    ev = c.wait_type("error", "session_start", timeout=60)
    assert ev["type"] == "error", ev
    assert needle in ev["text"], ev
    c.wait_closed(timeout=15)
    assert not c.of_type("session_start")
    return ev


def test_user_cannot_reach_another_users_workspace(lab, lab_dir):
    root = Path(lab.env["LAB_WORKSPACE_ROOT"])
    # Bob's worker and workspace exist.
    with harness.WSClient(lab.ws_url(TOKENS["bob"])) as b:
        b.send_json({"tool": "claude"})
        b.wait_type("session_start", timeout=60)
    (root / "bob" / "secret.txt").write_text("bob's secret")
    alice_tok = TOKENS["alice"]
    with harness.WSClient(lab.ws_url(alice_tok)) as a:   # creates alice's workspace
        a.send_json({"tool": "claude"})
        a.wait_type("session_start", timeout=60)
    alice_home = root / "alice"
    (alice_home / "to-bob").symlink_to(root / "bob")                 # absolute symlink out
    (alice_home / "up").symlink_to("..")                               # relative symlink out
    (alice_home / "sub").mkdir(exist_ok=True)
    (alice_home / "sub" / "deeper").symlink_to("../../bob")            # nested relative escape
    escapes = ["../bob", str(root / "bob"), "/etc", "/", "sub/../../bob", "to-bob", "up/bob", "sub/deeper", str(alice_home) + "/../bob"]
    for folder in escapes:
        c = open_session(lab, alice_tok, {"tool": "claude", "folder": folder})
        ev = refused(c, "outside the permitted workspace root")
        assert folder in ev["text"]
        c.close()
    # Allowed: inside, including a symlink that stays inside.
    (alice_home / "proj").mkdir(exist_ok=True)
    (alice_home / "p2").symlink_to("proj")
    for folder, expected in [("proj", alice_home / "proj"), ("p2", alice_home / "proj"), (str(alice_home / "proj"), alice_home / "proj"), (".", alice_home)]:
        with open_session(lab, alice_tok, {"tool": "claude", "folder": folder}) as c:
            assert c.wait_type("session_start", timeout=60)["metadata"]["folder"] == str(expected)
    # Forged identity fields change nothing: still alice's worker and home.
    with open_session(lab, alice_tok, {"tool": "claude", "user_id": "bob", "user": "bob", "workspace_id": "bob", "sub": "bob"}) as c:
        start = c.wait_type("session_start", timeout=60)
        assert start["metadata"]["folder"] == str(alice_home)
        ws = {w["user"]: w for w in lab.workers()}
        assert ws["alice"]["connections"] == 1 and ws["bob"]["connections"] == 0
        assert ws["alice"]["id"] != ws["bob"]["id"] and ws["alice"]["address"] != ws["bob"]["address"]


def test_firewall_refusals_start_no_worker(lab):
    tok = jwt("dave")
    cases = [
        ({"tool": "bash"}, "tool 'bash' is not allowed"),
        ({"tool": "generic"}, "tool 'generic' is not allowed"),
        ({"tool": 5}, "'tool' must be a string"),
        ({"tool": "claude", "env": {"LD_PRELOAD": "/tmp/x.so"}}, "env key 'LD_PRELOAD'"),
        ({"tool": "claude", "env": {"ANTHROPIC_BASE_URL": "http://evil.example"}}, "ANTHROPIC_BASE_URL"),
        ({"tool": "claude", "env": {"AI_RELAY_CLAUDE_PREFER_OAUTH": "1"}}, "reserved for the operator"),
        ({"tool": "claude", "env": {"FOO": "1"}}, "not on the allow-list"),
        ({"tool": "claude", "extra_args": ["--dangerously-skip-permissions"]}, "not allowed for claude"),
        ({"tool": "claude", "extra_args": ["--max-turns", "2;rm"]}, "disallowed characters"),
        ({"tool": "codex", "extra_args": ["--max-turns=2"]}, "not allowed for codex"),
        ({"tool": "claude", "mcp_config": {"mcpServers": {"x": {"command": "sh"}}}}, "mcp_config is not allowed"),
        ({"tool": "cortex", "snowflake": {"token": "pat"}}, "Cortex 'token'"),
        ({"tool": "cortex", "token_env": "SNOWFLAKE_PAT"}, "Cortex 'token_env'"),
        ({"tool": "cortex", "account_url": "https://x.snowflakecomputing.com"}, "Cortex 'account_url'"),
    ]
    for hs, needle in cases:
        c = open_session(lab, tok, hs)
        refused(c, needle)
        assert c.close_code == 1000
        c.close()
    # Not JSON / not an object / binary first frame: refused the same way.
    for raw in ["not json", "[1, 2]"]:
        c = harness.WSClient(lab.ws_url(tok))
        c.send_text(raw)
        refused(c, "Invalid handshake")
        c.close()
    c = harness.WSClient(lab.ws_url(tok))
    c.send_bytes(b"\x00\x01")
    refused(c, "first message must be a JSON text frame")
    c.close()
    assert lab.worker("dave") is None
    assert 'lab_handshake_refusals_total{field="env"}' in lab.metrics()


def test_multi_mode_agent_cannot_see_other_workspaces(labs, lab_dir, tokens_file, fake_api, dockerd):
    lab = labs.start(multi_env(lab_dir, tokens_file, fake_api, dockerd, LAB_WORKSPACE_ROOT=str(lab_dir / "ws-iso")), name="multi-iso")
    try:
        root = lab_dir / "ws-iso"
        with lab.client("bob") as b:
            b.send_json({"tool": "claude"})
            b.wait_type("session_start", timeout=120)
        (root / "bob" / "secret.txt").write_text("bob's secret")
        t = uuid.uuid4().hex[:8]
        probe = f"ls -a /home; cat {root}/bob/secret.txt /home/bob/secret.txt 2>&1; echo done-{t}"
        fake_api.script(f"peek-{t}", [ToolUse("Bash", {"command": probe, "description": "look around"}), Text(f"looked {t}")])
        with lab.client("alice") as a:
            a.send_json({"tool": "claude"})
            a.wait_type("session_start", timeout=120)
            a.send_text(f"peek-{t}")
            while True:
                ev = a.wait_type("permission_request", "tool_result", "response", "error", timeout=120)
                if ev["type"] == "permission_request":
                    a.send_json({"type": "permission_response", "request_id": ev["request_id"], "allow": True, "behavior": "allow"})
                    continue
                if ev["type"] in ("response", "error"):
                    break
            outputs = json.dumps([e for e in a.events if e.get("type") == "tool_result"])
            assert f"done-{t}" in outputs, outputs
            assert "bob's secret" not in outputs
            assert "No such file" in outputs
        cs = dockerd.containers()
        assert sorted(c["Names"] for c in cs) == ["lab-alice", "lab-bob"]
        mounts = {c: dockerd.inspect(c)["Mounts"] for c in ("lab-alice", "lab-bob")}
        assert [m["Source"] for m in mounts["lab-alice"]] == [str(root / "alice")]
        assert [m["Source"] for m in mounts["lab-bob"]] == [str(root / "bob")]
    finally:
        lab.stop()
        dockerd.remove_managed()


# ---- origins, caps, slowloris, revocation -------------------------------------------------------


RELOAD = 1.0  # LAB_TOKENS_RELOAD_SECS of the revocation lab


@pytest.fixture(scope="module")
def rlab(labs, lab_dir, fake_api):
    """A lab with its own tokens file (the tests edit it), a 1 s reload period, small caps and idle bound."""
    tf = lab_dir / "tokens-revoke"
    tf.write_text("".join(f"{u} {t}\n" for u, t in TOKENS.items()))
    return labs.start(single_env(lab_dir, tf, fake_api, LAB_TOKENS_RELOAD_SECS=str(RELOAD), LAB_MAX_CONNECTIONS_PER_USER="2",
                                 LAB_HTTP_IDLE_TIMEOUT_SECS="1", LAB_ALLOWED_ORIGINS="https://console.example",
                                 LAB_WORKSPACE_ROOT=str(lab_dir / "ws-revoke")), name="revoke")


def replace_file(path: Path, text: str) -> None:
    """Atomic replace (write, rename), as operators should: a reload never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def metric(lab, prefix: str) -> float:
    for line in lab.metrics().splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_ws_refuses_foreign_origins(rlab):
    url = rlab.ws_url(TOKENS["alice"])
    own = f"http://127.0.0.1:{rlab.port}"
    assert upgrade_status(url, {"Origin": "http://evil.example"}) == 403
    assert upgrade_status(url, {"Origin": f"http://127.0.0.1:{rlab.port + 1}"}) == 403
    assert upgrade_status(url, {"Origin": "null"}) == 403
    # Accepted ones (each its own user, so the per-user cap of 2 plays no part).
    assert upgrade_status(rlab.ws_url(jwt_hs256(claims("olga"))), {"Origin": own}) == 101
    assert upgrade_status(rlab.ws_url(jwt_hs256(claims("oscar"))), {"Origin": "https://console.example"}) == 101
    assert upgrade_status(rlab.ws_url(jwt_hs256(claims("otto")))) == 101  # no Origin: not a browser
    # Cookie auth from a foreign page is exactly what the check stops.
    assert upgrade_status(rlab.ws_url(), {"Origin": "http://evil.example", "Cookie": f"lab_token={TOKENS['alice']}"}) == 403
    assert metric(rlab, 'lab_connections_refused_total{reason="origin"}') >= 4


def test_connection_cap_per_user(rlab):
    a1, a2 = rlab.client("alice"), rlab.client("alice")
    try:
        try:
            ws_connect(rlab.ws_url(TOKENS["alice"]), open_timeout=10, proxy=None).close()
            pytest.fail("third connection of alice was accepted")
        except InvalidStatus as e:
            assert e.response.status_code == 429
            assert b"too many open connections" in e.response.body
        with rlab.client("bob"):  # another user is not affected
            pass
        assert metric(rlab, 'lab_connections_refused_total{reason="per_user"}') >= 1
        a1.close()
        # The slot comes back once the TCP connection is gone.
        deadline = time.monotonic() + 5
        while upgrade_status(rlab.ws_url(TOKENS["alice"])) != 101:
            assert time.monotonic() < deadline, "slot not released"
            time.sleep(0.05)
    finally:
        a1.close()
        a2.close()


def test_slowloris_connections_are_closed(rlab):
    import socket
    for partial in (b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"):
        s = socket.create_connection(("127.0.0.1", rlab.port), timeout=10)
        t0 = time.monotonic()
        if partial:
            s.sendall(partial)
        assert s.recv(100) == b""  # closed by the server, nothing answered
        took = time.monotonic() - t0
        assert 0.5 < took < 5, took
        s.close()
    # A complete request still works on a fresh connection.
    assert rlab.http("GET", "/healthz")[0] == 200


def test_vanished_client_frees_its_slot_at_once(labs, lab_dir, fake_api, tokens_file):
    """A client whose TCP connection goes (FIN, no close frame) frees its connection slot right away, not
    at the next missed ping: with a cap of 1, a reconnect is served within a second or two."""
    import base64
    import socket
    lab = labs.start(single_env(lab_dir, tokens_file, fake_api, LAB_MAX_CONNECTIONS_PER_USER="1",
                                LAB_WORKSPACE_ROOT=str(lab_dir / "ws-slot")), name="slot")

    def upgrade() -> tuple[socket.socket, bytes]:
        s = socket.create_connection(("127.0.0.1", lab.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /ws?token={TOKENS['alice']} HTTP/1.1\r\nHost: 127.0.0.1:{lab.port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        return s, s.recv(200).split(b"\r\n")[0]

    # Each upgrade must get through within 3 s of the previous client's vanishing (else its slot leaked).
    for _ in range(4):
        t0 = time.monotonic()
        while True:
            conn, status = upgrade()
            if b" 101 " in status:
                break
            conn.close()
            assert b" 429 " in status, status
            assert time.monotonic() - t0 < 3, "the slot of the vanished client was not freed"
            time.sleep(0.05)
        conn.close()  # vanishes: FIN, no close frame


def test_silent_connection_flood_is_capped(labs, lab_dir, fake_api, tokens_file):
    """Connections that never send a request head are capped (LAB_MAX_PENDING_CONNECTIONS): past the cap
    a new one is closed at once, so a flood cannot take every descriptor; a session that already runs
    keeps working, and once the flood goes new connections are served again."""
    import socket
    lab = labs.start(single_env(lab_dir, tokens_file, fake_api, LAB_MAX_PENDING_CONNECTIONS="5",
                                LAB_HTTP_IDLE_TIMEOUT_SECS="30", LAB_WORKSPACE_ROOT=str(lab_dir / "ws-flood")), name="flood")
    with lab.client("alice") as alice:
        run_turn(alice, fake_api)
        # Twice the cap at once. Which five the server keeps depends on how its event loops interleave
        # the accepts, so the test counts: exactly five are closed without an answer, five stay open.
        flood = [socket.create_connection(("127.0.0.1", lab.port), timeout=10) for _ in range(10)]
        try:
            def closed_by_server(s: socket.socket) -> bool:
                s.setblocking(False)
                try:
                    return s.recv(1) == b""
                except BlockingIOError:
                    return False
                except ConnectionResetError:
                    return True
            wait_until(lambda: sum(map(closed_by_server, flood)) >= 5, 10, "the connections past the pending cap to be closed")
            assert sum(map(closed_by_server, flood)) == 5
            # The five kept are the ones counted: one more is refused at once.
            extra = socket.create_connection(("127.0.0.1", lab.port), timeout=10)
            try:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert extra.recv(100) == b""
            except (ConnectionResetError, BrokenPipeError):
                pass
            finally:
                extra.close()
            # The running session is not affected.
            alice.send_text("/cost")
            alice.wait_type("response", "error", timeout=30)
        finally:
            for s in flood:
                s.close()
        wait_until(lambda: lab.http("GET", "/healthz")[0] == 200, 10, "new connections served again")
        assert metric(lab, 'lab_connections_refused_total{reason="pending"}') >= 6


def open_started(lab, token: str) -> harness.WSClient:
    c = harness.WSClient(lab.ws_url(token))
    c.send_json({"tool": "claude"})
    c.wait_type("session_start", timeout=60)
    return c


def closed_for(c: harness.WSClient, needle: str, within: float) -> None:
    t0 = time.monotonic()
    c.wait_closed(timeout=within + 10)
    took = time.monotonic() - t0
    errs = [e for e in c.events if e.get("type") == "error"]
    assert errs and needle in errs[-1]["text"], c.events[-5:]
    assert c.close_code == 1008, (c.close_code, c.close_reason)
    assert took <= within, f"closed after {took:.1f}s, expected within {within}s"


def test_revoked_token_socket_closes_within_reload_period(rlab):
    tf = Path(rlab.env["LAB_TOKENS_FILE"])
    carol_tok = "carol-token-0123456789abcdef"
    replace_file(tf, tf.read_text() + f"carol {carol_tok}\n")
    c = open_started(rlab, carol_tok)
    with rlab.client("bob") as b:
        b.send_json({"tool": "claude"})
        b.wait_type("session_start", timeout=60)
        replace_file(tf, "".join(f"{u} {t}\n" for u, t in TOKENS.items()))  # carol removed
        closed_for(c, "revoked", within=RELOAD + 1.5)
        assert upgrade_status(rlab.ws_url(carol_tok)) == 401
        # Bob, still listed, keeps his session.
        b.send_json({"type": "ping"})
        assert not b.closed
        assert metric(rlab, 'lab_connections_revoked_total{reason="revoked"}') >= 1


def test_tokens_reload_errors_are_counted_and_missing_file_fails_closed(rlab):
    tf = Path(rlab.env["LAB_TOKENS_FILE"])
    good = tf.read_text()
    assert 'lab_tokens_reload_errors_total{kind="missing"} 0' in rlab.metrics()  # the series exists from the start
    try:
        replace_file(tf, good + "not a valid line\n")
        wait_metric(rlab, 'lab_tokens_reload_errors_total{kind="malformed"}', 1, RELOAD + 2)
        assert upgrade_status(rlab.ws_url(TOKENS["bob"])) == 101  # last good tokens kept
        b = open_started(rlab, TOKENS["bob"])
        tf.unlink()
        closed_for(b, "revoked", within=RELOAD + 1.5)
        wait_metric(rlab, 'lab_tokens_reload_errors_total{kind="missing"}', 1, RELOAD + 2)
        assert upgrade_status(rlab.ws_url(TOKENS["bob"])) == 401
        assert "tokens file reload failed" in rlab.log_text()
    finally:
        replace_file(tf, good)
    deadline = time.monotonic() + RELOAD + 3
    while upgrade_status(rlab.ws_url(TOKENS["bob"])) != 101:
        assert time.monotonic() < deadline, "tokens not accepted again after the file came back"
        time.sleep(0.1)


def wait_metric(lab, prefix: str, at_least: float, within: float) -> None:
    deadline = time.monotonic() + within
    while metric(lab, prefix) < at_least:
        assert time.monotonic() < deadline, f"{prefix} < {at_least}:\n{lab.metrics()}"
        time.sleep(0.1)


def test_expired_jwt_socket_closes(rlab):
    ttl = 8  # room for the worker to start before it expires
    tok = jwt_hs256(claims("frank", ttl=ttl))
    t0 = time.monotonic()
    c = open_started(rlab, tok)
    # exp + the verifier's 5 s leeway + one reload period, measured from the token's creation.
    left = ttl + 5 + RELOAD + 1.5 - (time.monotonic() - t0)
    closed_for(c, "expired", within=max(left, 0.5))
    assert metric(rlab, 'lab_connections_revoked_total{reason="expired"}') >= 1
