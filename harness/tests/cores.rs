//! Core-dump tests: each program in `tests/core-programs/` runs in the
//! official Node.js of each architecture (ARM64 under qemu-aarch64 on an
//! x86 host, the host's own architecture natively, where the kernel writes
//! the core), records V8's own stack (`new Error().stack`) and aborts. The
//! core it leaves is unwound and checked against that stack, against
//! gdb-multiarch for the native frames gdb can see, and for reaching every
//! thread's entry.
//!
//! One libtest-mimic trial per (program, Node.js version, architecture),
//! plus bad-input trials. Architectures: `CROSSWIND_CORE_ARCH` (`arm64`,
//! `x64` or both, comma-separated), by default arm64 and, where its backend
//! can run here, x64. Listing starts no QEMU.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crosswind_harness::capture::verify;
use crosswind_harness::capture::{self, OracleFrame};
use crosswind_harness::provision::{NodePackage, AARCH64_SYSROOT, DEFAULT_NODE};
use crosswind_unwinder::{self as cw, FrameKind, ThreadStack};
use libtest_mimic::{Arguments, Failed, Trial};

fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/core-programs")
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    let mut programs: Vec<PathBuf> = std::fs::read_dir(programs_dir())
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    programs.retain(|p| p.extension().is_some_and(|e| e == "js"));
    programs.sort();
    let arches = core_arches();
    for &arch in &arches {
        for version in crosswind_harness::provision::versions_under_test() {
            for p in &programs {
                let name = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let (p, v) = (p.clone(), version.clone());
                trials.push(Trial::test(
                    format!("core::{name}::node-{version}::{arch}"),
                    move || check_program(&p, &v, arch),
                ));
            }
        }
    }
    // The bad-input trials use an arm64 core.
    if arches.contains(&"arm64") {
        trials.extend(bad_input_trials());
    }
    libtest_mimic::run(&args, trials).exit();
}

/// The architectures to test: `CROSSWIND_CORE_ARCH`, or arm64 and (where
/// its backend can run here: natively on an x86-64 host whose
/// `kernel.core_pattern` is a file name) x64. A default architecture left
/// out is said once, with why.
fn core_arches() -> Vec<&'static str> {
    const ARCHES: [&str; 2] = ["arm64", "x64"];
    if let Ok(list) = std::env::var("CROSSWIND_CORE_ARCH") {
        let wanted: Vec<&str> = list.split(',').map(str::trim).collect();
        return ARCHES.into_iter().filter(|a| wanted.contains(a)).collect();
    }
    ARCHES
        .into_iter()
        .filter(|&arch| {
            if arch == "arm64" {
                return true;
            }
            match crosswind_harness::backend::default_for(arch).unavailable(arch) {
                None => true,
                Some(why) => {
                    eprintln!("note: no {arch} core trials here: {why}");
                    false
                }
            }
        })
        .collect()
}

fn node(version: &str, arch: &str) -> Result<NodePackage, Failed> {
    NodePackage::ensure(version, arch).map_err(|e| format!("{e:#} (run `just setup`)").into())
}

fn workdir(name: &str) -> Result<PathBuf, Failed> {
    let dir = std::env::temp_dir()
        .join("crosswind-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Runs a program to its abort and returns (core, oracle, workdir).
fn capture(
    program: &Path,
    node: &NodePackage,
) -> Result<(capture::CapturedCore, Vec<OracleFrame>), Failed> {
    let version = &node.version;
    let name = program
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = workdir(&format!("{name}-{version}-{}", node.arch))?;
    let dest = dir.join(program.file_name().ok_or("bad program path")?);
    std::fs::copy(program, &dest).map_err(|e| format!("{}: {e}", program.display()))?;
    std::fs::write(dir.join("oracle.js"), capture::ORACLE_JS).map_err(|e| e.to_string())?;
    let script = program
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("bad program name")?;
    let source = std::fs::read_to_string(program).map_err(|e| e.to_string())?;
    let flags = capture::program_flags(&source);
    let captured = capture::run_to_core(node, &dir, script, &flags, Duration::from_secs(180))
        .map_err(|e| format!("{e:#}"))?;
    let oracle = capture::parse_oracle(&captured.stderr)
        .ok_or_else(|| format!("no oracle in stderr:\n{}", captured.stderr))?;
    Ok((captured, oracle))
}

/// Where the libraries of a core of `node` are: the aarch64 sysroot under
/// QEMU, `/` natively.
fn sysroot(node: &NodePackage) -> Option<PathBuf> {
    crosswind_harness::backend::default_for(&node.arch).sysroot(&node.arch)
}

fn resolver(node: &NodePackage) -> cw::ModuleResolver {
    cw::ModuleResolver {
        exe: Some(node.node()),
        sysroot: sysroot(node),
        search_dirs: Vec::new(),
    }
}

fn check_program(program: &Path, version: &str, arch: &str) -> Result<(), Failed> {
    let node = node(version, arch)?;
    let (captured, oracle) = capture(program, &node)?;
    let process = cw::open_core(&captured.core, &resolver(&node)).map_err(|e| e.to_string())?;
    let report = cw::unwind_core(&process, None);
    let crashed = report
        .threads
        .iter()
        .find(|t| t.crashed)
        .ok_or("no crashed thread")?;
    let mut problems = Vec::new();

    verify::compare_with_oracle(crashed, &oracle, &mut problems);
    compare_with_gdb(&node, &captured.core, crashed, &mut problems)?;
    for t in &report.threads {
        verify::check_entry(t, &mut problems);
    }
    check_cli_json(&node, &captured.core, &report, &mut problems);

    if problems.is_empty() {
        let _ = std::fs::remove_dir_all(&captured.workdir);
        Ok(())
    } else {
        Err(format!(
            "{} problem(s); core kept in {}\n{}\n--- crosswind ---\n{}",
            problems.len(),
            captured.workdir.display(),
            problems.join("\n"),
            crosswind_harness::report::output::render_text(std::slice::from_ref(crashed))
        )
        .into())
    }
}

/// The native frames gdb can see (it stops at the first V8 frame) must be
/// crosswind's first frames, same pc and same name.
fn compare_with_gdb(
    node: &NodePackage,
    core: &Path,
    thread: &ThreadStack,
    problems: &mut Vec<String>,
) -> Result<(), Failed> {
    let root = sysroot(node).unwrap_or_else(|| PathBuf::from("/"));
    let gdb = capture::gdb_backtrace(&node.node(), core, &root.display().to_string())
        .map_err(|e| format!("{e:#}"))?;
    // gdb cannot unwind V8 frames: trust it up to the first one.
    let first_v8 = thread
        .frames
        .iter()
        .position(|f| f.kind != FrameKind::Native)
        .unwrap_or(thread.frames.len());
    if gdb.is_empty() {
        problems.push("gdb-multiarch showed no frames; cannot cross-check".into());
    } else if gdb.len() < 3.min(first_v8 + 1) {
        // Node 18's v8::base::OS::Abort (noreturn, reached from
        // Runtime_AbortJS) is as far as gdb gets; what it shows is still
        // checked below.
        eprintln!(
            "note: gdb-multiarch showed only {} frame(s) before the first V8 frame (#{first_v8})",
            gdb.len()
        );
    }
    for (i, g) in gdb.iter().enumerate().take(first_v8 + 1) {
        let Some(f) = thread.frames.get(i) else {
            problems.push(format!("gdb frame {i} has no crosswind frame"));
            continue;
        };
        if f.pc != g.pc {
            problems.push(format!("frame {i}: pc {:#x}, gdb says {:#x}", f.pc, g.pc));
        }
        let ours = f.symbol.as_deref();
        // gdb prints a function template's return type before its name
        // (`MaybeHandle<Object> ns::HandleApiCallHelper<false>`).
        let same = match (ours, g.name.as_deref()) {
            (Some(o), Some(n)) => n == o || n.ends_with(&format!(" {o}")),
            (o, n) => o == n,
        };
        if i < first_v8 && !same {
            problems.push(format!("frame {i}: symbol {ours:?}, gdb says {:?}", g.name));
        }
    }
    Ok(())
}

/// `crosswind unwind --format json` prints the same frames the library gave.
fn check_cli_json(
    node: &NodePackage,
    core: &Path,
    report: &cw::StackReport,
    problems: &mut Vec<String>,
) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_crosswind"));
    cmd.arg("unwind").arg(core).arg("--exe").arg(node.node());
    if let Some(root) = sysroot(node) {
        cmd.arg("--sysroot").arg(root);
    }
    let out = cmd.args(["--format", "json"]).output();
    let Ok(out) = out else {
        problems.push("could not run crosswind".into());
        return;
    };
    if !out.status.success() {
        problems.push(format!(
            "crosswind unwind exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
        return;
    }
    let doc: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("crosswind unwind printed invalid JSON: {e}"));
            return;
        }
    };
    let want = serde_json::to_value(&report.threads).unwrap_or_default();
    let arch = if node.arch == "x64" {
        "x86_64"
    } else {
        "aarch64"
    };
    if doc["threads"] != want || doc["arch"] != arch {
        problems.push("CLI JSON differs from the library's result".into());
    }
}

/// Makes one bad input in a scratch directory: the core path and the
/// `--exe` to pass, if any.
type MakeBadInput = fn(&Path) -> Result<(PathBuf, Option<PathBuf>), Failed>;

/// (trial name, text the one-line error must contain, input maker).
const BAD_INPUTS: &[(&str, &str, MakeBadInput)] = &[
    ("not-elf", "not an ELF file", not_elf),
    ("truncated-core", "truncated", truncated_core),
    ("arch-mismatch", "is for x86_64", arch_mismatch),
    ("missing-module-file", "/nonexistent/node", missing_exe),
    ("missing-core", "absent.core", missing_core),
];

fn bad_input_trials() -> Vec<Trial> {
    let mut trials: Vec<Trial> = BAD_INPUTS
        .iter()
        .map(|&(name, needle, make)| {
            Trial::test(format!("bad-input::{name}"), move || {
                expect_cli_error(name, make, needle)
            })
        })
        .collect();
    trials.push(Trial::test("bad-input::looping-stack", looping_stack));
    trials.push(Trial::test(
        "unsupported-v8-line::node-16.20.2::arm64",
        unsupported_v8_line,
    ));
    trials
}

/// Node.js 16 (V8 9.4, end of life) is not a supported line: its core
/// still unwinds, with a warning naming the V8 version found and the
/// versions supported, and no JavaScript frame (none guessed from another
/// line's layouts).
fn unsupported_v8_line() -> Result<(), Failed> {
    const UNSUPPORTED_NODE: &str = "16.20.2";
    let node = NodePackage::ensure(UNSUPPORTED_NODE, "arm64").map_err(|e| format!("{e:#}"))?;
    let dir = workdir("unsupported-v8")?;
    std::fs::copy(
        programs_dir().join("07-deep-recursion.js"),
        dir.join("main.js"),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("oracle.js"), capture::ORACLE_JS).map_err(|e| e.to_string())?;
    let captured = capture::run_to_core(&node, &dir, "main.js", &[], Duration::from_secs(120))
        .map_err(|e| format!("{e:#}"))?;
    let process = cw::open_core(&captured.core, &resolver(&node)).map_err(|e| e.to_string())?;
    let report = cw::unwind_core(&process, None);
    let warning = report.warnings.join("\n");
    if !(warning.contains("V8 9.4.") && warning.contains("supported: 10.2 (Node.js 18), ")) {
        return Err(format!(
            "want a warning naming V8 9.4 and the supported lines, got: {warning:?}"
        )
        .into());
    }
    let crashed = report.threads.first().ok_or("no threads")?;
    if crashed.frames.iter().any(|f| f.kind == FrameKind::Js) {
        return Err("JavaScript frames were guessed for an unsupported V8 line".into());
    }
    if !crashed
        .frames
        .iter()
        .any(|f| f.symbol.as_deref() == Some("node::Abort"))
    {
        return Err("the native frames are missing".into());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn not_elf(dir: &Path) -> Result<(PathBuf, Option<PathBuf>), Failed> {
    let p = dir.join("notes.txt");
    std::fs::write(&p, b"hello").map_err(|e| e.to_string())?;
    Ok((p, None))
}

fn truncated_core(dir: &Path) -> Result<(PathBuf, Option<PathBuf>), Failed> {
    let bytes = std::fs::read(small_core()?).map_err(|e| e.to_string())?;
    let p = dir.join("truncated.core");
    std::fs::write(&p, &bytes[..bytes.len() / 3]).map_err(|e| e.to_string())?;
    Ok((p, None))
}

fn arch_mismatch(_dir: &Path) -> Result<(PathBuf, Option<PathBuf>), Failed> {
    let x64 = NodePackage::ensure(DEFAULT_NODE, "x64").map_err(|e| format!("{e:#}"))?;
    Ok((small_core()?, Some(x64.node())))
}

fn missing_exe(_dir: &Path) -> Result<(PathBuf, Option<PathBuf>), Failed> {
    Ok((small_core()?, Some(PathBuf::from("/nonexistent/node"))))
}

fn missing_core(dir: &Path) -> Result<(PathBuf, Option<PathBuf>), Failed> {
    Ok((dir.join("absent.core"), None))
}

/// One small core shared by the bad-input trials (made once per run).
fn small_core() -> Result<PathBuf, Failed> {
    static CELL: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        node(DEFAULT_NODE, "arm64")
            .and_then(|n| capture(&programs_dir().join("07-deep-recursion.js"), &n))
            .map(|(c, _)| c.core)
            .map_err(|e| format!("{e:?}"))
    })
    .clone()
    .map_err(Failed::from)
}

/// Runs `crosswind unwind` on bad input: exit code 2, one line naming the
/// problem, no panic.
fn expect_cli_error(name: &str, make: MakeBadInput, needle: &str) -> Result<(), Failed> {
    // One directory per trial: they run in parallel, and `workdir` empties
    // the directory it returns.
    let dir = workdir(&format!("bad-input-{name}"))?;
    let (core, exe) = make(&dir)?;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_crosswind"));
    cmd.arg("unwind")
        .arg(&core)
        .args(["--sysroot", AARCH64_SYSROOT]);
    if let Some(e) = exe {
        cmd.arg("--exe").arg(e);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(2) {
        return Err(format!(
            "exit status {:?}, want 2; stderr: {stderr}",
            out.status.code()
        )
        .into());
    }
    // An OS error quoted twice means a cause was printed after a message
    // that already names it.
    if stderr.contains("panicked")
        || stderr.trim().lines().count() != 1
        || !stderr.contains(needle)
        || stderr.matches("(os error").count() > 1
    {
        return Err(format!("want one line mentioning `{needle}`, got: {stderr}").into());
    }
    Ok(())
}

/// A stack whose frame records point back at themselves must end with an
/// error, not loop: rewrite the crashed thread's saved frame pointer in a
/// copy of a real core so the chain cycles.
fn looping_stack() -> Result<(), Failed> {
    let node = node(DEFAULT_NODE, "arm64")?;
    let core = small_core()?;
    let process = cw::open_core(&core, &resolver(&node)).map_err(|e| e.to_string())?;
    let report = cw::unwind_core(&process, None);
    let crashed = report
        .threads
        .iter()
        .find(|t| t.crashed)
        .ok_or("no crashed thread")?;
    // Patch the frame record of the first JS frame into a cycle; its frame
    // pointer comes from a traced re-walk.
    let js_index = crashed
        .frames
        .iter()
        .position(|f| f.kind == FrameKind::Js)
        .ok_or("no js frame")?;
    let mut bytes = std::fs::read(&core).map_err(|e| e.to_string())?;
    let fps = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let v8 = process
            .executable()
            .and_then(|e| cw::v8::V8Runtime::new(e, &process).ok());
        let mut u = cw::Unwinder::new(&process, v8);
        let sink = fps.clone();
        u.trace = Some(Box::new(move |line: &str| {
            if let Some(fp) = line.split(" 29: ").nth(1).and_then(|r| r.split(',').next()) {
                if let Ok(mut g) = sink.lock() {
                    g.push(fp.trim_start_matches("0x").to_string());
                }
            }
        }));
        let t = &process.core.threads[process.core.crashed_thread()];
        u.unwind(t.tid, true, t.regs);
    }
    let fps = fps.lock().map_err(|_| "lock")?.clone();
    let fp = fps
        .get(js_index)
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or("no fp for js frame")?;
    // Find the file offset of `fp` in the core and store fp there: the
    // saved caller fp then equals fp itself.
    let seg = process
        .core
        .segments
        .iter()
        .find(|s| fp >= s.vaddr && fp + 8 <= s.vaddr + s.filesz)
        .ok_or("fp not in a dumped segment")?;
    let off = (seg.offset + (fp - seg.vaddr)) as usize;
    let saved_pc = u64::from_le_bytes(bytes[off + 8..off + 16].try_into().map_err(|_| "slice")?);
    bytes[off..off + 8].copy_from_slice(&(fp - 16).to_le_bytes());
    bytes[off - 16..off - 8].copy_from_slice(&fp.to_le_bytes());
    bytes[off - 8..off].copy_from_slice(&saved_pc.to_le_bytes());
    drop(process);
    let dir = workdir("looping")?;
    let patched = dir.join("looping.core");
    std::fs::write(&patched, &bytes).map_err(|e| e.to_string())?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crosswind"))
        .arg("unwind")
        .arg(&patched)
        .arg("--exe")
        .arg(node.node())
        .args(["--sysroot", AARCH64_SYSROOT, "--format", "json"])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !(stdout.contains("loops") || stdout.contains("below the callee")) {
        return Err(format!(
            "looping stack not reported: status {:?}\n{}",
            out.status,
            &stdout[..stdout.len().min(2000)]
        )
        .into());
    }
    Ok(())
}
