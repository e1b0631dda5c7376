//! `crosswind unwind --pid` and `snapshot --pid` on a running Node.js of
//! this host's architecture (natively, with ptrace): the main thread's
//! JavaScript callers must be the ones V8 printed, with V8's positions,
//! and the program must go on running. Then the error cases: a process
//! that is gone, one that is not Node.js, an emulated one, and one that
//! may not be traced.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crosswind_harness::capture::{parse_oracle, verify::compare_with_oracle};
use crosswind_harness::provision::{NodePackage, AARCH64_SYSROOT, DEFAULT_NODE, QEMU_CPU_ARGS};
use crosswind_harness::target::TargetArch;
use crosswind_unwinder::ThreadStack;

const CROSSWIND: &str = env!("CARGO_BIN_EXE_crosswind");
/// Attempts at `unwind --pid`, of which `MIN_RIGHT` must give V8's callers.
const ATTEMPTS: usize = 5;
const MIN_RIGHT: usize = 4;

/// A child process killed when the test ends, however it ends.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The busy program running under `node`, once it has printed V8's
/// stack; its stdout lines arrive on the receiver.
struct Busy {
    child: Reap,
    stderr: String,
    ticks: mpsc::Receiver<String>,
}

impl Busy {
    fn start(node: &Path) -> Busy {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ptrace-programs/busy.js");
        let mut child = Command::new(node)
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting node");
        let stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let child = Reap(child);
        let (tx, ticks) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The oracle block is the program's first output on stderr.
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(60);
        while !text.contains("CROSSWIND-ORACLE-END") {
            assert!(
                Instant::now() < deadline,
                "no V8 stack from busy.js: {text}"
            );
            let n = stderr.read(&mut buf).expect("reading stderr");
            assert!(n > 0, "busy.js ended early: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        // Let the loop warm up (tier up) before it is read.
        std::thread::sleep(Duration::from_millis(500));
        Busy {
            child,
            stderr: text,
            ticks,
        }
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Whether a new tick arrives within a few seconds.
    fn still_ticks(&self) -> bool {
        while self.ticks.try_recv().is_ok() {}
        self.ticks.recv_timeout(Duration::from_secs(5)).is_ok()
    }
}

fn host() -> &'static str {
    TargetArch::host().expect("x86-64 or arm64 host").name()
}

fn node() -> PathBuf {
    NodePackage::ensure(DEFAULT_NODE, host())
        .expect("Node.js package (run `just setup`)")
        .node()
}

/// Runs crosswind; (exit code, stdout, stderr).
fn crosswind(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(CROSSWIND)
        .args(args)
        .output()
        .expect("running crosswind");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The main thread of an `unwind --format json` document.
fn main_thread(json: &str, pid: u32) -> ThreadStack {
    let doc: serde_json::Value = serde_json::from_str(json).expect("JSON from crosswind");
    let threads: Vec<ThreadStack> =
        serde_json::from_value(doc["threads"].clone()).expect("threads in the document");
    threads
        .into_iter()
        .find(|t| t.tid == pid)
        .expect("the main thread in the document")
}

/// Problems of the main thread's stack against V8's: empty when the
/// callers match with V8's positions.
fn check_against_v8(thread: &ThreadStack, stderr: &str) -> Vec<String> {
    let oracle = parse_oracle(stderr).expect("V8's stack in stderr");
    let mut problems = Vec::new();
    compare_with_oracle(thread, &oracle, &mut problems);
    problems
}

/// The process's state letter in /proc/PID/stat (`t` when traced-stopped).
fn state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .unwrap_or('?')
}

#[test]
fn unwind_pid_shows_v8s_callers_and_the_program_goes_on() {
    let busy = Busy::start(&node());
    let pid = busy.pid().to_string();
    let mut right = 0;
    let mut failures = Vec::new();
    for attempt in 0..ATTEMPTS {
        let (code, out, err) = crosswind(&["unwind", "--pid", &pid, "--format", "json"]);
        assert_eq!(code, 0, "attempt {attempt}: crosswind failed: {err}");
        let doc: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        let stopped = doc["stopped_us"].as_array().expect("stopped_us");
        assert_eq!(stopped.len(), doc["threads"].as_array().map_or(0, Vec::len));
        let problems = check_against_v8(&main_thread(&out, busy.pid()), &busy.stderr);
        if problems.is_empty() {
            right += 1;
        } else {
            failures.push(format!("attempt {attempt}: {}", problems.join("; ")));
        }
        assert_ne!(state(busy.pid()), 't', "the process was left stopped");
    }
    assert!(
        right >= MIN_RIGHT,
        "{right} of {ATTEMPTS} attempts gave V8's callers:\n{}",
        failures.join("\n")
    );
    assert!(
        busy.still_ticks(),
        "the program stopped running after --pid"
    );
    // The text form names the functions and how long each thread stopped.
    let (code, out, err) = crosswind(&["unwind", "--pid", &pid]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("middle (") && out.contains("ms):"), "{out}");
}

#[test]
fn snapshot_pid_replays_without_the_node_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node_copy = dir.path().join("node");
    std::fs::copy(node(), &node_copy).expect("copying node");
    let busy = Busy::start(&node_copy);
    let snap = dir.path().join("busy.cwsnap");
    let snap_arg = snap.display().to_string();
    let (code, out, err) = crosswind(&[
        "snapshot",
        "--pid",
        &busy.pid().to_string(),
        "-o",
        &snap_arg,
    ]);
    assert_eq!(code, 0, "snapshot --pid failed: {err}");
    assert!(out.contains("replay gives the same"), "{out}");
    assert!(
        busy.still_ticks(),
        "the program stopped running after snapshot --pid"
    );
    drop(busy.child);
    std::fs::rename(&node_copy, dir.path().join("moved-away")).expect("moving node away");
    let size = std::fs::metadata(&snap).expect("snapshot written").len();
    assert!(size <= 2 << 20, "the snapshot is {size} bytes, over 2 MiB");
    let (code, out, err) = crosswind(&["unwind", &snap_arg, "--format", "json"]);
    assert_eq!(code, 0, "replaying the snapshot failed: {err}");
    let problems = check_against_v8(&main_thread(&out, busy_pid(&out)), &busy.stderr);
    assert!(
        problems.is_empty(),
        "the replay differs from V8: {}",
        problems.join("; ")
    );
}

/// The main thread's id in a document: the first thread's.
fn busy_pid(json: &str) -> u32 {
    let doc: serde_json::Value = serde_json::from_str(json).expect("JSON");
    doc["threads"][0]["tid"].as_u64().expect("a thread") as u32
}

#[test]
fn errors_say_what_is_wrong_and_leave_processes_running() {
    // Gone: a process that has exited.
    let mut done = Command::new("true").spawn().expect("true");
    let gone_pid = done.id();
    done.wait().expect("waiting for true");
    let (code, _, err) = crosswind(&["unwind", "--pid", &gone_pid.to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no such process"), "{err}");

    // Not Node.js: sleep(1), which must run on untouched.
    let sleeper = Reap(Command::new("sleep").arg("60").spawn().expect("sleep"));
    let (code, _, err) = crosswind(&["unwind", "--pid", &sleeper.0.id().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a Node.js"), "{err}");
    assert_ne!(state(sleeper.0.id()), 't');

    // Emulated: ARM64 Node.js under qemu-user on an x86-64 host.
    if host() == "x64" {
        let arm = NodePackage::ensure(DEFAULT_NODE, "arm64").expect("arm64 Node.js");
        let qemu = Reap(
            Command::new("qemu-aarch64")
                .args(QEMU_CPU_ARGS)
                .args(["-L", AARCH64_SYSROOT])
                .arg(arm.node())
                .args(["-e", "setInterval(() => {}, 1000)"])
                .stdin(Stdio::null())
                .spawn()
                .expect("qemu-aarch64"),
        );
        std::thread::sleep(Duration::from_millis(500));
        let (code, _, err) = crosswind(&["unwind", "--pid", &qemu.0.id().to_string()]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("is QEMU") && err.contains("crosswind sample"),
            "{err}"
        );
    }

    // No core and no --pid.
    let (code, _, err) = crosswind(&["unwind"]);
    assert_eq!(code, 2, "{err}");
}

/// As root, a user without rights to the process is refused with a hint.
#[test]
fn tracing_another_users_process_is_refused_with_a_hint() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run crosswind as another user");
        return;
    }
    let sleeper = Reap(Command::new("sleep").arg("60").spawn().expect("sleep"));
    // A copy of crosswind that user `nobody` may run.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let bin = dir.path().join("crosswind");
    std::fs::copy(CROSSWIND, &bin).expect("copying crosswind");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["unwind", "--pid", &sleeper.0.id().to_string()])
        .output()
        .expect("setpriv (util-linux)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("run as its user or as root"), "{err}");
    assert_ne!(state(sleeper.0.id()), 't');
}
