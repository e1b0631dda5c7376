//! `crosswind sweep`: stops a live guest (arm64 or x64, under QEMU's
//! user mode) at the entry of one function (a breakpoint through QEMU's
//! gdbstub), then single-steps it to its return, unwinding at every
//! instruction. Every step must reach the
//! thread's entry and show the same callers; when the script printed V8's
//! stack with `record()`, the callers must also equal V8's frames.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crosswind_unwinder::arch::{Arch, InsnKind, Regs};
use crosswind_unwinder::Memory;
use crosswind_unwinder::{Frame, FrameKind, ThreadStack};

use crate::capture::{self, verify, OracleFrame};
use crate::live::gdb_remote::Stop;
use crate::live::{read_log, Launch, LiveGuest};
use crate::provision::NodePackage;
use crate::target::TargetArch;

/// How long to wait for the target to be found or entered.
const FIND_TIMEOUT: Duration = Duration::from_secs(180);

/// Interval between stops while looking for a JavaScript function or a
/// library that is not loaded yet.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Builtins whose calls enter the bytecode handlers of the function being
/// interpreted: the sweep steps into those calls rather than over them.
const INTERPRETER_TRAMPOLINES: &[&str] = &[
    "Builtins_InterpreterEntryTrampoline",
    "Builtins_InterpreterEntryTrampolineForProfiling",
];

/// What to sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepTarget {
    /// A JavaScript function by name, in whatever tier it runs.
    Js(String),
    /// An embedded builtin, `Builtins_<name>`.
    Builtin(String),
    /// A native symbol, optionally in one module (file name).
    Native {
        symbol: String,
        module: Option<String>,
    },
}

impl FromStr for SweepTarget {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (kind, name) = s.split_once(':').ok_or_else(|| {
            anyhow!("--function '{s}': expected js:NAME, builtin:NAME or native:SYMBOL[@MODULE]")
        })?;
        if name.is_empty() {
            bail!("--function '{s}': the name is empty");
        }
        match kind {
            "js" => Ok(SweepTarget::Js(name.to_string())),
            "builtin" => Ok(SweepTarget::Builtin(
                name.trim_start_matches("Builtins_").to_string(),
            )),
            "native" => Ok(match name.split_once('@') {
                Some((symbol, module)) => SweepTarget::Native {
                    symbol: symbol.to_string(),
                    module: Some(module.to_string()),
                },
                None => SweepTarget::Native {
                    symbol: name.to_string(),
                    module: None,
                },
            }),
            other => bail!("--function '{s}': unknown kind '{other}' (js, builtin or native)"),
        }
    }
}

impl std::fmt::Display for SweepTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SweepTarget::Js(n) => write!(f, "js:{n}"),
            SweepTarget::Builtin(n) => write!(f, "builtin:{n}"),
            SweepTarget::Native {
                symbol,
                module: Some(m),
            } => write!(f, "native:{symbol}@{m}"),
            SweepTarget::Native { symbol, .. } => write!(f, "native:{symbol}"),
        }
    }
}

/// Options of a sweep.
pub struct SweepOptions {
    pub node: String,
    /// The guest's architecture (run under `qemu-aarch64` or
    /// `qemu-x86_64`).
    pub arch: TargetArch,
    pub target: SweepTarget,
    /// Sweep the Nth qualifying entry (1-based).
    pub hit: usize,
    /// JavaScript targets: only a frame running in this tier is taken as
    /// the function to sweep.
    pub tier: Option<crosswind_unwinder::v8::Tier>,
    pub max_steps: usize,
    /// Write each step's snapshot here.
    pub out: Option<PathBuf>,
    pub json: bool,
    pub flags: Vec<String>,
    pub script: PathBuf,
    pub args: Vec<String>,
}

/// One instruction whose unwind was wrong.
#[derive(Debug, Clone, Serialize)]
pub struct StepFailure {
    pub step: usize,
    /// Offset of the pc from the function's entry (negative or large when
    /// the pc is in code the function jumped to).
    pub offset: i64,
    pub pc: String,
    pub location: String,
    pub problems: Vec<String>,
    pub frames: Vec<Frame>,
}

/// What a sweep found.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub target: String,
    pub entry: String,
    pub steps: usize,
    pub calls_stepped_over: usize,
    /// Distinct instructions the steps stopped at.
    pub distinct_pcs: usize,
    /// The callers every step must show, as unwound at the entry.
    pub callers: Vec<String>,
    /// Whether V8's own stack (from `record()`) was compared.
    pub oracle_compared: bool,
    /// Tiers the target's own frame showed (JavaScript targets).
    pub target_tiers: std::collections::BTreeSet<crosswind_unwinder::v8::Tier>,
    pub failures: Vec<StepFailure>,
    /// Set when the sweep stopped before the function returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// `crosswind sweep`.
pub fn sweep_command(o: SweepOptions) -> Result<u8> {
    if !o.script.is_file() {
        bail!("{}: no such script", o.script.display());
    }
    let log = std::env::temp_dir().join(format!("crosswind-sweep-{}.log", std::process::id()));
    let cwd = o
        .script
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf);
    let script = match &cwd {
        Some(_) => PathBuf::from(o.script.file_name().unwrap_or_default()),
        None => o.script.clone(),
    };
    let result = sweep(&o, &script, cwd, &log);
    let guest_output = read_log(&log);
    let _ = std::fs::remove_file(&log);
    let report = result.map_err(|e| {
        let tail: Vec<&str> = guest_output.lines().rev().take(10).collect();
        if tail.is_empty() {
            e
        } else {
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            e.context(format!("the script's output ends:\n{}", tail.join("\n")))
        }
    })?;
    if o.json {
        crate::report::output::emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        crate::report::output::emit(&render(&report))?;
    }
    Ok(
        if report.failures.is_empty() && report.incomplete.is_none() {
            0
        } else {
            1
        },
    )
}

/// The text account of a sweep.
pub fn render(r: &SweepReport) -> String {
    let mut out = format!(
        "{}: {} instructions stepped ({} distinct, {} calls stepped over) from entry {}\n",
        r.target, r.steps, r.distinct_pcs, r.calls_stepped_over, r.entry
    );
    if !r.target_tiers.is_empty() {
        out.push_str(&format!(
            "tiers of the target's frame: {:?}\n",
            r.target_tiers
        ));
    }
    out.push_str(&format!(
        "callers ({}):\n",
        if r.oracle_compared {
            "checked against V8's stack"
        } else {
            "no V8 stack printed; checked for consistency only"
        }
    ));
    for c in &r.callers {
        out.push_str(&format!("  {c}\n"));
    }
    if let Some(why) = &r.incomplete {
        out.push_str(&format!("INCOMPLETE: {why}\n"));
    }
    if r.failures.is_empty() {
        out.push_str("every step unwound completely to the same callers\n");
    } else {
        out.push_str(&format!("{} failing steps:\n", r.failures.len()));
        for f in &r.failures {
            out.push_str(&format!(
                "  step {} at {}{:#x} ({}, {}): {}\n",
                f.step,
                if f.offset < 0 { "-" } else { "+" },
                f.offset.unsigned_abs(),
                f.pc,
                f.location,
                f.problems.join("; ")
            ));
        }
    }
    out
}

/// Launches the script and sweeps the target; `log` receives its output.
pub fn sweep(
    o: &SweepOptions,
    script: &Path,
    cwd: Option<PathBuf>,
    log: &Path,
) -> Result<SweepReport> {
    let node = NodePackage::ensure(&o.node, o.arch.name())?;
    let mut guest = LiveGuest::launch(&Launch {
        node,
        flags: o.flags.clone(),
        script: script.to_path_buf(),
        args: o.args.clone(),
        cwd: cwd.clone(),
        every_insn: false,
        log: Some(log.to_path_buf()),
        search_dirs: Vec::new(),
        backend: crate::live::LiveBackend::QemuUser,
    })?;
    let script_name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (entry, function) = find_entry(&mut guest, &o.target, o.tier, &script_name)?;
    let js_name = match &o.target {
        SweepTarget::Js(n) => Some(n.as_str()),
        _ => None,
    };
    let (tid, regs) = enter(
        &mut guest,
        entry,
        js_name.filter(|_| function.is_some()),
        o.hit,
        &script_name,
    )?;
    let oracle = capture::parse_oracle(&read_log(log));
    step_through(&mut guest, o, tid, regs, entry, oracle.as_deref())
}

/// Stops the running guest once.
fn poll_stop(guest: &mut LiveGuest) -> Result<(u64, Regs)> {
    std::thread::sleep(POLL_INTERVAL);
    if let Some(status) = guest.exited() {
        bail!("the script exited ({status}) before the function was found");
    }
    guest.interrupt()?;
    match guest.wait_stop()? {
        Stop::Signal { thread, .. } => Ok((thread.unwrap_or(0), guest.regs()?)),
        Stop::Exited(c) => bail!("the script exited with status {c} before the function was found"),
        Stop::Killed(s) => bail!("the script was killed by signal {s}"),
    }
}

/// How long the sweep samples the guest looking for V8's copy of its
/// builtins.
const COPY_SEARCH: Duration = Duration::from_secs(3);

/// Where the builtin at `in_binary` runs: in V8's copy of the embedded
/// builtins when V8 made one (x64's short builtin calls remap them next
/// to the JIT code), found by unwinding a few samples, else in the binary.
fn builtin_entry(guest: &mut LiveGuest, in_binary: u64) -> Result<u64> {
    let start = Instant::now();
    guest.resume()?;
    while start.elapsed() < COPY_SEARCH {
        let (tid, regs) = poll_stop(guest)?;
        guest.unwind(tid, regs);
        if let Some(Some(copy)) = guest.with_v8(|v8, _| v8.builtin_in_copy(in_binary)) {
            return Ok(copy);
        }
        guest.resume()?;
    }
    guest.interrupt()?;
    guest.wait_stop()?;
    Ok(in_binary)
}

/// The entry address of the target, and for JavaScript functions the
/// JSFunction that must be in V8's JSFunction register there (several functions share the
/// interpreter's entry).
fn find_entry(
    guest: &mut LiveGuest,
    target: &SweepTarget,
    tier: Option<crosswind_unwinder::v8::Tier>,
    script_name: &str,
) -> Result<(u64, Option<u64>)> {
    if let SweepTarget::Builtin(name) = target {
        let symbol = format!("Builtins_{name}");
        let exe = guest
            .modules()
            .first()
            .ok_or_else(|| anyhow!("no executable module"))?;
        let in_binary = exe
            .symbol_address(&symbol)
            .ok_or_else(|| anyhow!("the node binary has no symbol {symbol}"))?;
        return Ok((builtin_entry(guest, in_binary)?, None));
    }
    let start = Instant::now();
    guest.resume()?;
    loop {
        if start.elapsed() > FIND_TIMEOUT {
            bail!(
                "{target}: not found within {} s (the script must keep calling it)",
                FIND_TIMEOUT.as_secs()
            );
        }
        let (tid, regs) = poll_stop(guest)?;
        let found = match target {
            SweepTarget::Native { symbol, module } => {
                guest.refresh_modules();
                guest
                    .modules()
                    .iter()
                    .filter(|m| {
                        module.as_deref().is_none_or(|want| {
                            m.name == want || m.name.ends_with(&format!("/{want}"))
                        })
                    })
                    .find_map(|m| m.symbol_address(symbol))
                    .map(|a| (a, None))
            }
            SweepTarget::Js(name) => {
                let (stack, steps) = guest.unwind_steps(tid, regs);
                find_js_function(guest, &stack, &steps, name, tier, script_name)
            }
            SweepTarget::Builtin(_) => None,
        };
        if let Some(found) = found {
            return Ok(found);
        }
        guest.resume()?;
    }
}

/// The entry of the first (innermost) non-inlined frame of the script's
/// function `name`, and its JSFunction.
fn find_js_function(
    guest: &LiveGuest,
    stack: &ThreadStack,
    steps: &[(usize, Regs)],
    name: &str,
    tier: Option<crosswind_unwinder::v8::Tier>,
    script_name: &str,
) -> Option<(u64, Option<u64>)> {
    let arch = guest.arch().arch();
    for (i, f) in stack.frames.iter().enumerate() {
        if f.kind != FrameKind::Js
            || f.inlined == Some(true)
            || f.function.as_deref() != Some(name)
            || tier.is_some_and(|t| f.tier != Some(t))
            || !verify::shows_script(std::slice::from_ref(f), script_name)
        {
            continue;
        }
        // A leaf in a bytecode handler (`Builtins_*Handler`) is the
        // function's frame, but its pc is the handler's, not the code the
        // function is entered by.
        if f.symbol.as_deref().is_some_and(|s| s.ends_with("Handler")) {
            continue;
        }
        // The registers of the step that produced frame i hold its fp.
        let regs = steps.iter().rev().find(|(first, _)| *first <= i)?.1;
        let fp = regs.fp(arch)?;
        let found = guest.with_v8(|v8, mem| {
            let function = v8.frame_function(fp, mem)?;
            // An interpreted frame runs in the entry trampoline (whose Code
            // object, up to V8 10.x, is an on-heap stub that is never run).
            // Otherwise the function's current code; since V8 13
            // (leaptiering) a JSFunction reaches it through the dispatch
            // table, which crosswind does not read, and the code the frame
            // runs in is taken instead.
            let running = || v8.code_start(f.pc, mem);
            (v8.function_name(function, mem) == name)
                .then(|| {
                    let entry = if f.tier == Some(crosswind_unwinder::v8::Tier::Interpreted) {
                        running()
                    } else {
                        v8.function_entry(function, mem).or_else(running)
                    };
                    entry.map(|e| (e, Some(function)))
                })
                .flatten()
        });
        if let Some(Some(found)) = found {
            return Some(found);
        }
    }
    None
}

/// Breaks at `entry` until the `hit`th qualifying entry; returns the
/// stopped thread and its registers there.
fn enter(
    guest: &mut LiveGuest,
    entry: u64,
    function: Option<&str>,
    hit: usize,
    script_name: &str,
) -> Result<(u64, Regs)> {
    let arch = guest.arch().arch();
    guest.client().set_breakpoint(entry)?;
    let start = Instant::now();
    let mut hits = 0usize;
    let mut at_breakpoint = false;
    loop {
        if at_breakpoint {
            guest.resume_past_breakpoint(entry)?;
        } else {
            guest.resume()?;
        }
        if start.elapsed() > FIND_TIMEOUT {
            bail!(
                "the function was not entered within {} s",
                FIND_TIMEOUT.as_secs()
            );
        }
        let tid = match guest.client().wait_stop(FIND_TIMEOUT) {
            Ok(Stop::Signal { thread, .. }) => thread.unwrap_or(0),
            Ok(Stop::Exited(c)) => {
                bail!("the script exited with status {c} after {hits} qualifying entries")
            }
            Ok(Stop::Killed(s)) => bail!("the script was killed by signal {s}"),
            Err(e) => bail!("QEMU stopped answering: {e}"),
        };
        let regs = guest.regs()?;
        at_breakpoint = regs.pc(arch) == Some(entry);
        if !at_breakpoint {
            continue;
        }
        let qualifies = match function {
            // V8's calling convention passes the callee in its JSFunction
            // register (x1, rdi). Compared by name: a garbage collection may
            // have moved the JSFunction.
            Some(name) => guest
                .with_v8(|v8, mem| {
                    v8.function_register(&regs)
                        .is_some_and(|f| v8.function_name(f, mem) == name)
                })
                .unwrap_or(false),
            None => {
                let stack = guest.unwind(tid, regs);
                verify::shows_script(&stack.frames, script_name)
            }
        };
        if qualifies {
            hits += 1;
            if hits >= hit.max(1) {
                guest.client().clear_breakpoint(entry)?;
                return Ok((tid, regs));
            }
        }
    }
}

/// What a step's stack is compared by: the frame, not the moment.
fn frame_key(f: &Frame) -> String {
    format!(
        "{:?} {:#x} {} {} {}:{}:{}",
        f.kind,
        f.pc,
        f.symbol.as_deref().unwrap_or(""),
        f.function.as_deref().unwrap_or(""),
        f.file.as_deref().unwrap_or(""),
        f.line.unwrap_or(0),
        f.column.unwrap_or(0)
    )
}

/// A caller as printed in the report.
fn caller_label(f: &Frame) -> String {
    match f.kind {
        FrameKind::Js => format!(
            "js {} @ {}:{}:{}",
            f.function.as_deref().unwrap_or(""),
            f.file.as_deref().unwrap_or(""),
            f.line.unwrap_or(0),
            f.column.unwrap_or(0)
        ),
        _ => format!(
            "{} {}",
            format!("{:?}", f.kind).to_lowercase(),
            f.function
                .as_deref()
                .or(f.symbol.as_deref())
                .unwrap_or("??")
        ),
    }
}

/// Index of the target's own frame in a step's stack.
fn target_frame(target: &SweepTarget, frames: &[Frame]) -> Option<usize> {
    frames.iter().position(|f| match target {
        SweepTarget::Js(n) => f.kind == FrameKind::Js && f.function.as_deref() == Some(n),
        SweepTarget::Builtin(n) => f.symbol.as_deref() == Some(format!("Builtins_{n}").as_str()),
        SweepTarget::Native { symbol, .. } => f.symbol.as_deref() == Some(symbol),
    })
}

/// The oracle's frames below the target: for a JavaScript target, those
/// after its own frame; for a builtin, those after the first builtin (the
/// frame V8 shows for it); for native code, all of them.
fn oracle_callers<'a>(target: &SweepTarget, oracle: &'a [OracleFrame]) -> &'a [OracleFrame] {
    let skip = match target {
        SweepTarget::Js(n) => oracle
            .iter()
            .position(|o| o.bare_name() == *n)
            .map(|i| i + 1),
        SweepTarget::Builtin(_) => oracle.iter().position(|o| o.file.is_none()).map(|i| i + 1),
        SweepTarget::Native { .. } => Some(0),
    };
    oracle.get(skip.unwrap_or(0)..).unwrap_or(&[])
}

/// The checks of one step.
fn check_step(
    target: &SweepTarget,
    stack: &ThreadStack,
    expected_callers: Option<&[String]>,
    oracle: Option<&[OracleFrame]>,
) -> (Vec<String>, Option<Vec<String>>) {
    let mut problems = Vec::new();
    verify::check_entry(stack, &mut problems);
    // Where the callers start: after the target's frame, or, in code the
    // target jumped to after tearing its frame down (an epilogue
    // builtin), where the entry's callers are found again.
    let split = match target_frame(target, &stack.frames) {
        Some(t) => t + 1,
        None => match expected_callers {
            Some(want) if matches!(target, SweepTarget::Js(_)) => {
                stack.frames.len().saturating_sub(want.len())
            }
            _ => {
                problems.push(format!("no frame for {target}"));
                return (problems, None);
            }
        },
    };
    for (i, f) in stack.frames[..split].iter().enumerate() {
        let own = target_frame(target, std::slice::from_ref(f)).is_some();
        let helper = matches!(target, SweepTarget::Js(_))
            && matches!(f.kind, FrameKind::Builtin | FrameKind::Stub);
        if !(own || helper) {
            problems.push(format!(
                "frame {i} ({}) sits above the callers",
                caller_label(f)
            ));
        }
    }
    let callers = &stack.frames[split..];
    let keys: Vec<String> = callers.iter().map(frame_key).collect();
    if let Some(want) = expected_callers {
        if want != keys.as_slice() {
            let first = want
                .iter()
                .zip(&keys)
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(keys.len()));
            problems.push(format!(
                "callers differ from the entry's from caller {first} ({} vs {} callers): {} instead of {}",
                keys.len(),
                want.len(),
                keys.get(first).map_or("nothing", String::as_str),
                want.get(first).map_or("nothing", String::as_str)
            ));
        }
    }
    if let Some(oracle) = oracle {
        let ours = verify::visible(callers);
        if ours.len() != oracle.len() {
            problems.push(format!(
                "V8 shows {} callers, crosswind {}",
                oracle.len(),
                ours.len()
            ));
        }
        for (i, (o, f)) in oracle.iter().zip(&ours).enumerate() {
            let mismatches = verify::oracle_mismatches(o, f, true);
            if !mismatches.is_empty() {
                problems.push(format!(
                    "caller {i} is {} ({}), V8 shows `{}` at {:?}:{:?}:{:?}",
                    caller_label(f),
                    mismatches.join(", "),
                    o.printed_name,
                    o.file,
                    o.line,
                    o.column
                ));
            }
        }
    }
    (problems, Some(keys))
}

/// Single-steps from the entry to the return, unwinding at each stop.
fn step_through(
    guest: &mut LiveGuest,
    o: &SweepOptions,
    tid: u64,
    entry_regs: Regs,
    entry: u64,
    oracle: Option<&[OracleFrame]>,
) -> Result<SweepReport> {
    let arch = guest.arch().arch();
    let return_address = return_address_at_entry(arch, &entry_regs, guest)
        .ok_or_else(|| anyhow!("no return address at the entry"))?;
    let entry_sp = entry_regs
        .sp(arch)
        .ok_or_else(|| anyhow!("no stack pointer at the entry"))?;
    let oracle = oracle.map(|all| oracle_callers(&o.target, all));
    if let Some(dir) = &o.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut report = SweepReport {
        target: o.target.to_string(),
        entry: format!("{entry:#x}"),
        steps: 0,
        calls_stepped_over: 0,
        distinct_pcs: 0,
        callers: Vec::new(),
        oracle_compared: oracle.is_some(),
        target_tiers: Default::default(),
        failures: Vec::new(),
        incomplete: None,
    };
    let mut expected: Option<Vec<String>> = None;
    let mut pcs = std::collections::HashSet::new();
    let mut regs = entry_regs;
    loop {
        let pc = regs.pc(arch).ok_or_else(|| anyhow!("no pc"))?;
        let sp = regs.sp(arch).unwrap_or(0);
        if pc == return_address && sp >= entry_sp {
            break;
        }
        if report.steps >= o.max_steps {
            report.incomplete = Some(format!(
                "stopped after {} steps (--max-steps) before the function returned",
                report.steps
            ));
            break;
        }
        let stack = guest.unwind(tid, regs);
        if let Some(t) = target_frame(&o.target, &stack.frames) {
            if let (SweepTarget::Js(_), Some(tier)) = (&o.target, stack.frames[t].tier) {
                report.target_tiers.insert(tier);
            }
        }
        let (problems, keys) = check_step(&o.target, &stack, expected.as_deref(), oracle);
        if expected.is_none() {
            if let Some(keys) = keys {
                if let Some(t) = target_frame(&o.target, &stack.frames) {
                    report.callers = stack.frames[t + 1..].iter().map(caller_label).collect();
                }
                expected = Some(keys);
            }
        }
        if let Some(dir) = &o.out {
            write_step_snapshot(guest, o, dir, tid, regs, report.steps)?;
        }
        if !problems.is_empty() {
            report.failures.push(StepFailure {
                step: report.steps,
                offset: pc.wrapping_sub(entry) as i64,
                pc: format!("{pc:#x}"),
                location: stack.frames.first().map(caller_label).unwrap_or_default(),
                problems,
                frames: stack.frames.clone(),
            });
        }
        pcs.insert(pc);
        report.steps += 1;
        match next_step(guest, tid, pc, return_address, entry_sp, &mut report)? {
            Some(r) => regs = r,
            None => break,
        }
    }
    report.distinct_pcs = pcs.len();
    Ok(report)
}

/// Writes step `step`'s snapshot into `dir` (`--out`).
fn write_step_snapshot(
    guest: &mut LiveGuest,
    o: &SweepOptions,
    dir: &Path,
    tid: u64,
    regs: Regs,
    step: usize,
) -> Result<()> {
    let meta = crate::live::sample::sample_meta(
        &o.node,
        o.arch.name(),
        step,
        &o.target.to_string(),
        guest.backend(),
    );
    let (snapshot, _) = guest.snapshot(tid, regs, meta);
    let path = dir.join(format!("step-{step:05}.cwsnap"));
    snapshot
        .write(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Longest instruction bytes read to classify one (x86-64 instructions
/// are at most 15 bytes; Intel SDM vol. 2, 2.3.11).
const MAX_INSN_BYTES: usize = 16;

/// The kind of the instruction at `pc`: `Other` when it cannot be read.
fn insn_at(guest: &LiveGuest, arch: &dyn Arch, pc: u64) -> InsnKind {
    let want = arch.fixed_insn_size().unwrap_or(MAX_INSN_BYTES);
    // Near the end of a mapping only the bytes up to the page's end may be
    // readable.
    let to_page_end = (0x1000 - (pc & 0xfff)) as usize;
    for len in [want, want.min(to_page_end)] {
        let mut insn = vec![0u8; len];
        if guest.process().read(pc, &mut insn).is_ok() {
            return arch.classify(&insn);
        }
    }
    InsnKind::Other
}

/// The address a function returns to, read at its entry (the link
/// register on arm64, the word at the stack pointer on x86-64).
fn return_address_at_entry(arch: &dyn Arch, regs: &Regs, guest: &LiveGuest) -> Option<u64> {
    arch.frameless_caller(regs, guest.process()).ok()?.pc(arch)
}

/// Moves the guest on by one instruction of the swept function from `pc`
/// (a call, outside the interpreter's trampolines, is stepped over): the
/// registers there, or `None` when the sweep ends (`report.incomplete`
/// says why).
fn next_step(
    guest: &mut LiveGuest,
    tid: u64,
    pc: u64,
    return_address: u64,
    entry_sp: u64,
    report: &mut SweepReport,
) -> Result<Option<Regs>> {
    let arch = guest.arch().arch();
    let kind = insn_at(guest, arch, pc);
    // By V8's name for the pc, which knows V8's copy of the builtins.
    let in_trampoline = guest
        .with_v8(|v8, _| {
            v8.builtin_at(pc)
                .is_some_and(|b| INTERPRETER_TRAMPOLINES.contains(&b))
        })
        .unwrap_or(false);
    let Some(regs) = single_step(guest, report)? else {
        return Ok(None);
    };
    if kind != InsnKind::Call || in_trampoline {
        return Ok(Some(regs));
    }
    // Stepped into the callee: its return address is the instruction after
    // the call, whatever the call's length.
    let after_call = return_address_at_entry(arch, &regs, guest)
        .filter(|&ra| ra > pc && ra - pc <= MAX_INSN_BYTES as u64)
        .ok_or_else(|| anyhow!("no return address after the call at {pc:#x}"))?;
    report.calls_stepped_over += 1;
    let regs = step_over(guest, tid, after_call, return_address, entry_sp)?;
    if regs.is_none() {
        report.incomplete = Some("the guest went away during a call".into());
    }
    Ok(regs)
}

/// One instruction: the registers after it, or `None` when the guest
/// went away (`report.incomplete` says how).
fn single_step(guest: &mut LiveGuest, report: &mut SweepReport) -> Result<Option<Regs>> {
    Ok(match guest.step()? {
        Stop::Signal { .. } => Some(guest.regs()?),
        Stop::Exited(c) => {
            report.incomplete = Some(format!("the script exited with status {c}"));
            None
        }
        Stop::Killed(s) => {
            report.incomplete = Some(format!("the script was killed by signal {s}"));
            None
        }
    })
}

/// Runs a call to completion: breakpoints at the instruction after the
/// call and at the function's own return address (a call that never comes
/// back, such as a deoptimization, ends up there), matched by thread.
fn step_over(
    guest: &mut LiveGuest,
    tid: u64,
    after_call: u64,
    return_address: u64,
    entry_sp: u64,
) -> Result<Option<Regs>> {
    let arch = guest.arch().arch();
    guest.client().set_breakpoint(after_call)?;
    if return_address != after_call {
        guest.client().set_breakpoint(return_address)?;
    }
    let mut stopped_at: Option<u64> = None;
    let start = Instant::now();
    let result = loop {
        if start.elapsed() > FIND_TIMEOUT {
            bail!(
                "a call from the swept function did not return within {} s",
                FIND_TIMEOUT.as_secs()
            );
        }
        match stopped_at {
            Some(addr) => guest.resume_past_breakpoint(addr)?,
            None => guest.resume()?,
        }
        let thread = match guest.client().wait_stop(FIND_TIMEOUT) {
            Ok(Stop::Signal { thread, .. }) => thread.unwrap_or(0),
            Ok(_) => break None,
            Err(e) => bail!("QEMU stopped answering during a call: {e}"),
        };
        let regs = guest.regs()?;
        let (pc, sp) = (regs.pc(arch), regs.sp(arch).unwrap_or(0));
        // The stack pointer may differ after the call: V8's out-of-line
        // prologues build the caller's frame and return. Recursion into
        // the swept function is not told apart (and fails the checks).
        let back = pc == Some(after_call);
        let returned = pc == Some(return_address) && sp >= entry_sp;
        if thread == tid && (back || returned) {
            break Some(regs);
        }
        stopped_at = pc.filter(|&p| p == after_call || p == return_address);
    };
    if result.is_some() {
        guest.client().clear_breakpoint(after_call)?;
        if return_address != after_call {
            guest.client().clear_breakpoint(return_address)?;
        }
    }
    Ok(result)
}
