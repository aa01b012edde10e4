import json, os, sys, tempfile
from pathlib import Path
import harness
from harness import RelayProcess, install_script, FAKES_DIR
import test_differential_codex_gemini as t
impl = sys.argv[1]
base = Path(tempfile.mkdtemp(prefix="dbg-", dir="/tmp/relay-integration"))
binp = base / "fbin"; install_script(FAKES_DIR / "fake_codex.py", binp, "codex"); install_script(FAKES_DIR / "fake_gemini.py", binp, "gemini")
bind = harness.make_bin_dir(base / "bin", claude="fake")
r = RelayProcess(impl=impl, workdir=base / "relay", path_dirs=[bind, binp], env_extra={"FAKE_CODEX_LOG": "cwd", "FAKE_GEMINI_LOG": "cwd"}, worker_args=["--allow-codex-config"]).start()
folder = base / "proj"; folder.mkdir()
try:
    events, err = getattr(t, sys.argv[2] + "_script")(r, folder)
    print("ERR", err)
    for e in events:
        if e.get("_step") in sys.argv[3:]:
            print(harness.brief(e, 600) if "-raw" not in sys.argv else json.dumps({k:v for k,v in e.items() if k!="ts"})[:600])
finally:
    r.stop()
