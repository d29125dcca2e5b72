//! `scripts/test`, the README's test command, run against stand-in tools: a failing test binary
//! must not hide the others or the closing summary line.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn executable(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn a_failing_test_binary_still_runs_the_rest_and_prints_the_summary() {
    let repo = tempfile::tempdir().expect("tempdir");
    let root = repo.path();
    std::fs::create_dir_all(root.join("scripts")).expect("mkdir");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/test"), root.join("scripts/test")).expect("copy");
    // The peers are "installed" and the ISP table "built": only cargo's part is exercised.
    executable(&root.join(".tools/py/bin/python"), "#!/bin/sh\nexit 0\n");
    executable(&root.join("scripts/geo"), "#!/bin/sh\nexit 0\n");
    // The browser suite reports like a test binary, and its checks count in the closing line.
    executable(&root.join("scripts/browser"), "#!/bin/sh\necho 'test result: ok. 4 passed; 0 failed; 0 ignored'\n");
    let bin = root.join("bin");
    executable(
        &bin.join("cargo"),
        "#!/bin/sh\necho \"$*\" >> \"$CARGO_CALLS\"\ncase \"$1\" in\n  test)\n    echo 'test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out'\n    echo 'test result: ok. 5 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out'\n    exit 101 ;;\n  *) exit 0 ;;\nesac\n",
    );
    let calls = root.join("calls");
    let output = Command::new("bash")
        .arg(root.join("scripts/test"))
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env("CARGO_CALLS", &calls)
        .output()
        .expect("run scripts/test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "a failed test fails the script: {stdout}");
    assert!(stdout.trim_end().ends_with("12 passed, 1 failed, 2 skipped"), "the closing line sums every binary: {stdout}");
    assert!(stdout.contains("FAILED: cargo test"), "the failed step is named: {stdout}");
    let calls = std::fs::read_to_string(&calls).expect("cargo was called");
    assert!(calls.lines().any(|l| l.starts_with("test ") && l.contains("--no-fail-fast")), "every test binary runs: {calls}");
    assert!(calls.lines().any(|l| l.contains("policy promises")), "later steps still run after a failure: {calls}");
}

/// `scripts/serve`, the README's run command, with stand-in tools: on a fresh clone it says that
/// it builds, lets cargo show the build's progress (no `--quiet`), and then runs the binary it
/// built (not `cargo run`, which would check the build a second time).
#[test]
fn the_run_command_shows_its_build_and_then_serves() {
    let repo = tempfile::tempdir().expect("tempdir");
    let root = repo.path();
    std::fs::create_dir_all(root.join("scripts")).expect("mkdir");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/serve"), root.join("scripts/serve")).expect("copy");
    executable(&root.join("scripts/geo"), "#!/bin/sh\necho \"geo $*\" >> \"$CARGO_CALLS\"\n");
    let bin = root.join("bin");
    // The stand-in cargo "builds" a passme that records how it was started.
    executable(
        &bin.join("cargo"),
        "#!/bin/sh\necho \"cargo $*\" >> \"$CARGO_CALLS\"\nmkdir -p target/release\nprintf '#!/bin/sh\\necho \"passme $*\" >> \"$CARGO_CALLS\"\\n' > target/release/passme\nchmod +x target/release/passme\n",
    );
    let calls = root.join("calls");
    let output = Command::new("bash")
        .arg(root.join("scripts/serve"))
        .arg("--listen")
        .arg("127.0.0.1:9000")
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env("CARGO_CALLS", &calls)
        .output()
        .expect("run scripts/serve");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("building passme (release)") && stdout.contains("minutes"), "a fresh clone is told: {stdout}");
    let calls = std::fs::read_to_string(&calls).expect("calls");
    let lines: Vec<&str> = calls.lines().collect();
    assert!(lines[0].starts_with("cargo build --release") && !lines[0].contains("--quiet"), "the build shows its progress: {calls}");
    assert!(lines.iter().any(|l| l.starts_with("geo ")), "the ISP table: {calls}");
    assert_eq!(lines.last(), Some(&"passme serve --listen 127.0.0.1:9000"), "the built binary serves: {calls}");
}
