//! Replays the committed snapshots (`scenarios/fixtures/`) with no QEMU and
//! no Node.js binary: each must replay (through Unicorn) to exactly the
//! frames the original core gave, and still pass its scenario's checks
//! against the V8 stack the program printed. Damaged snapshots must fail
//! with an error, never a panic.

use std::path::{Path, PathBuf};

use crosswind_harness::capture;
use crosswind_harness::run::{self, JobResult};
use crosswind_harness::scenario::Scenario;
use crosswind_unwinder::snapshot::{self, Snapshot, SnapshotProcess};
use crosswind_unwinder::ThreadStack;
use libtest_mimic::{Arguments, Failed, Trial};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn fixtures() -> Vec<PathBuf> {
    snapshot::files_in_families(&root().join("fixtures"))
}

fn main() {
    let args = Arguments::from_args();
    let mut trials: Vec<Trial> = fixtures()
        .into_iter()
        .map(|p| {
            let name = format!(
                "replay::{}",
                p.strip_prefix(root().join("fixtures"))
                    .unwrap_or(&p)
                    .display()
            );
            Trial::test(name, move || replay(&p))
        })
        .collect();
    trials.push(Trial::test("damaged-snapshots", damaged));
    trials.push(Trial::test(
        "prologue::interpreter-entry-trampoline",
        interpreter_prologue,
    ));
    trials.push(Trial::test("prologue::c-without-frame-pointer", c_prologue));
    trials.push(Trial::test(
        "prologue::turbofan-function",
        turbofan_prologue,
    ));
    trials.push(Trial::test(
        "epilogue::c-without-frame-pointer",
        c_epilogues,
    ));
    trials.push(Trial::test(
        "epilogue::interpreter-entry-trampoline",
        interpreter_epilogue,
    ));
    trials.push(Trial::test(
        "epilogue::turbofan-function",
        turbofan_epilogue,
    ));
    libtest_mimic::run(&args, trials).exit();
}

fn replay(path: &Path) -> Result<(), Failed> {
    let snapshot = Snapshot::read(path).map_err(|e| e.to_string())?;
    let report = SnapshotProcess::new(&snapshot)
        .map_err(|e| e.to_string())?
        .unwind(None);
    // A reporter's snapshot (`crosswind repro FILE.cwsnap`): the frames it
    // was recorded with may be the bug; what it must replay to is in its
    // expected patterns.
    if snapshot
        .meta
        .contains_key(crosswind_harness::repro::META_EXPECT)
    {
        return match crosswind_harness::repro::check_fixture_frames(&snapshot, &report.threads) {
            None => Ok(()),
            Some(why) => Err(why.into()),
        };
    }
    let expected: Vec<ThreadStack> =
        serde_json::from_str(snapshot.expected.as_deref().ok_or("no expected frames")?)
            .map_err(|e| format!("expected frames: {e}"))?;
    if report.threads != expected {
        return Err("replay differs from the frames of the original core".into());
    }
    // The scenario's own checks, against the V8 stack the program printed.
    let id = snapshot
        .meta
        .get("scenario")
        .ok_or("no scenario in the provenance")?;
    let scenario =
        Scenario::load(&root().join(format!("{id}.yaml"))).map_err(|e| format!("{e:#}"))?;
    let oracle = snapshot.oracle.as_deref().and_then(capture::parse_oracle);
    let mut result = JobResult::new(
        id.clone(),
        id.clone(),
        snapshot
            .meta
            .get("node_version")
            .cloned()
            .unwrap_or_default(),
        snapshot.meta.get("arch").cloned().unwrap_or_default(),
        "snapshot".into(),
    );
    run::check_report(&scenario, &report, oracle.as_deref(), &mut result);
    // Emulation as an oracle: every function that returns within the
    // budget must return where the static unwinder said.
    let process = SnapshotProcess::new(&snapshot).map_err(|e| e.to_string())?;
    let cross = crosswind_unwinder::emulate::oracles::cross_check(
        &process,
        crosswind_unwinder::emulate::DEFAULT_BUDGET,
    );
    eprintln!(
        "{id}: emulation checked {} steps, {} returned, {} disagree",
        cross.checked,
        cross.returned,
        cross.disagreements.len()
    );
    result.problems.extend(cross.disagreements);
    if result.problems.is_empty() {
        Ok(())
    } else {
        Err(crosswind_harness::report::failure_details(&result).into())
    }
}

/// Truncations and flipped bytes of a real snapshot decode to errors.
fn damaged() -> Result<(), Failed> {
    let Some(first) = fixtures().into_iter().next() else {
        return Err("no fixtures committed".into());
    };
    let data = std::fs::read(&first).map_err(|e| e.to_string())?;
    let mut checked = 0;
    for cut in (0..data.len()).step_by(data.len() / 97 + 1) {
        if Snapshot::decode(&data[..cut]).is_ok() {
            return Err(format!("a snapshot truncated to {cut} bytes decoded").into());
        }
        checked += 1;
    }
    for at in (0..data.len()).step_by(data.len() / 89 + 1) {
        let mut d = data.clone();
        d[at] ^= 0x5a;
        if Snapshot::decode(&d).is_ok() {
            return Err(format!("a snapshot with byte {at} flipped decoded").into());
        }
        checked += 1;
    }
    if checked < 100 {
        return Err("too few damaged variants".into());
    }
    Ok(())
}

// ------------------------------------------------ prologue/epilogue coverage
//
// From a known-good frame in a committed snapshot, rebuild the state at its
// function's first instruction (registers from the unwound frame, the real
// code and stack), single-step through the prologue with Unicorn, and unwind
// every intermediate state: the callers must stay exactly the known-good
// chain.

use crosswind_unwinder::arch::Regs;
use crosswind_unwinder::emulate::oracles::{step_states, SteppedProcess};
use crosswind_unwinder::Memory;
use crosswind_unwinder::{Frame, FrameKind, Method, Session, StoppedThread};

fn fixture(rel: &str) -> Result<SnapshotProcess, Failed> {
    let snapshot = Snapshot::read(&root().join("fixtures").join(rel)).map_err(|e| e.to_string())?;
    SnapshotProcess::new(&snapshot).map_err(|e| e.to_string().into())
}

fn crashed_steps(p: &SnapshotProcess) -> Result<(ThreadStack, Vec<(usize, Regs)>), Failed> {
    let t = p
        .threads
        .iter()
        .find(|t| t.signal != 0)
        .or(p.threads.first())
        .ok_or("no thread")?;
    let v8 = p
        .executable()
        .and_then(|e| crosswind_unwinder::v8::V8Runtime::new(e, p).ok());
    Ok(crosswind_unwinder::Unwinder::new(p, v8).unwind_steps(t.tid, true, t.regs))
}

fn key(f: &Frame) -> String {
    format!(
        "{:?} {:#x} {:?} {:?} {:?} {:?}:{:?}",
        f.kind, f.pc, f.symbol, f.function, f.file, f.line, f.column
    )
}

/// Unwinds every stepped state; each must show `leaf_ok` as its first
/// frame and then exactly `callers`.
fn check_states(
    p: &SnapshotProcess,
    start: Regs,
    count: usize,
    callers: &[Frame],
    leaf_ok: impl Fn(&Frame) -> bool,
) -> Result<usize, Failed> {
    let debug = |line: &str| eprintln!("{line}");
    let debug = std::env::var_os("CROSSWIND_EMU_DEBUG").map(|_| &debug as &dyn Fn(&str));
    let states = step_states(p.arch, &start, p, count, true, debug);
    let mut problems = Vec::new();
    for (i, st) in states.iter().enumerate() {
        let view = SteppedProcess {
            base: p,
            written: &st.written,
        };
        let thread = StoppedThread {
            tid: 1,
            signal: 6,
            regs: st.regs,
        };
        let report = Session::new(&view).unwind_all(&[thread]);
        let frames = &report.threads[0].frames;
        let pc = st.regs.get(32).unwrap_or(0);
        let Some(leaf) = frames.first() else {
            problems.push(format!("step {i} (pc {pc:#x}): no frames"));
            continue;
        };
        if !leaf_ok(leaf) {
            problems.push(format!("step {i} (pc {pc:#x}): leaf frame {}", key(leaf)));
        }
        let got: Vec<String> = frames.iter().skip(1).take(callers.len()).map(key).collect();
        let want: Vec<String> = callers.iter().map(key).collect();
        if got != want {
            let at = got
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(want.len()));
            problems.push(format!(
                "step {i} (pc {pc:#x}, leaf via {:?}): caller {at} is {:?}, want {:?} (walk ended: {:?})",
                frames.get(1).map(|f| f.method),
                got.get(at),
                want.get(at),
                report.threads[0].stop
            ));
        }
    }
    if problems.is_empty() {
        Ok(states.len())
    } else {
        Err(problems.join("\n").into())
    }
}

/// An interpreted JS function entering Builtins_InterpreterEntryTrampoline,
/// from its first instruction until its frame is built.
fn interpreter_prologue() -> Result<(), Failed> {
    let p = fixture("pure-js/tail-1000.node-22.20.0.arm64.cwsnap")?;
    let (stack, steps) = crashed_steps(&p)?;
    let trampoline = p
        .executable()
        .and_then(|e| {
            e.symbol_ranges("Builtins_")
                .into_iter()
                .find(|(_, _, n)| n == "Builtins_InterpreterEntryTrampoline")
        })
        .map(|(start, _, _)| start)
        .ok_or("no InterpreterEntryTrampoline")?;
    // A known-good interpreted frame G whose caller F is interpreted too.
    let interp = |f: &Frame| {
        f.kind == FrameKind::Js
            && f.symbol.as_deref() == Some("Builtins_InterpreterEntryTrampoline")
    };
    let k = (0..steps.len().saturating_sub(1))
        .find(|&k| {
            interp(&stack.frames[steps[k].0])
                && interp(&stack.frames[steps[k + 1].0])
                && stack.frames[steps[k].0].function.as_deref() == Some("odd")
        })
        .ok_or("no interpreted frame with an interpreted caller")?;
    let (g_frame, g_regs) = (&stack.frames[steps[k].0], steps[k].1);
    let fp_g = g_regs.get(29).ok_or("no fp")?;
    let mut entry = g_regs;
    entry.set(32, trampoline);
    entry.set(30, p.read_u64(fp_g + 8).map_err(|e| e.to_string())?);
    entry.set(29, p.read_u64(fp_g).map_err(|e| e.to_string())?);
    entry.set(31, fp_g + 16);
    entry.set(1, p.read_u64(fp_g - 16).map_err(|e| e.to_string())?);
    entry.set(0, p.read_u64(fp_g - 24).map_err(|e| e.to_string())?);
    let callers = &stack.frames[steps[k + 1].0..];
    let name = g_frame.function.clone();
    let n = check_states(&p, entry, 400, callers, |leaf| {
        leaf.kind == FrameKind::Js
            && leaf.function == name
            && matches!(leaf.method, Method::Context)
    })?;
    if n < 4 {
        return Err(format!("only {n} prologue states stepped").into());
    }
    eprintln!("interpreter entry: {n} instruction positions unwound correctly");
    Ok(())
}

/// A C function built with -fomit-frame-pointer (its CFI describes every
/// instruction), from its first instruction to its call of abort().
fn c_prologue() -> Result<(), Failed> {
    let p = fixture("native-addon/omit-frame-pointer.node-22.20.0.arm64.cwsnap")?;
    let (stack, steps) = crashed_steps(&p)?;
    let k = steps
        .iter()
        .position(|(fi, _)| stack.frames[*fi].symbol.as_deref() == Some("level3"))
        .ok_or("no level3 frame")?;
    let (l3, caller_regs) = (steps[k].1, steps[k + 1].1);
    // The pc is a return address (after a call to abort, which does not
    // return, it may be the next function's first byte): look up pc - 1.
    let lookup = l3.get(32).unwrap_or(0) - 1;
    let module = crosswind_unwinder::Process::module_at(&p, lookup).ok_or("no module")?;
    let start = module.symbolize(lookup).ok_or("no symbol")?.start;
    // At entry: the caller's registers, pc at the function, lr = return.
    let mut entry = caller_regs;
    entry.set(32, start);
    entry.set(30, caller_regs.get(32).ok_or("no caller pc")?);
    let callers = &stack.frames[steps[k + 1].0..];
    let n = check_states(&p, entry, 400, callers, |leaf| {
        leaf.symbol.as_deref() == Some("level3")
    })?;
    if n < 4 {
        return Err(format!("only {n} prologue states stepped").into());
    }
    eprintln!("level3: {n} instruction positions unwound correctly");
    Ok(())
}

/// A TurboFan-compiled JS function (with two inlined callees), from the
/// first instruction of its code until its first call.
fn turbofan_prologue() -> Result<(), Failed> {
    let p = fixture("mixed/optimized-hot-loop.node-22.20.0.arm64.cwsnap")?;
    let (stack, steps) = crashed_steps(&p)?;
    let k = steps
        .iter()
        .position(|(fi, _)| {
            let f = &stack.frames[*fi];
            f.function.as_deref() == Some("tick")
                && f.tier == Some(crosswind_unwinder::v8::Tier::Turbofan)
        })
        .ok_or("no optimized frame")?;
    let (first, regs) = steps[k];
    // The physical frame is the last of the inlined group (`hot`).
    let next = steps.get(k + 1).map(|s| s.0).ok_or("no caller")?;
    let outer = &stack.frames[next - 1];
    let fp = regs.get(29).ok_or("no fp")?;
    let pc = regs.get(32).ok_or("no pc")?;
    let v8 = p
        .executable()
        .and_then(|e| crosswind_unwinder::v8::V8Runtime::new(e, &p).ok())
        .ok_or("no V8")?;
    let function = p.read_u64(fp - 16).map_err(|e| e.to_string())?;
    let code = v8
        .function_code_start(function, pc, &p)
        .ok_or("code start of the optimized function not found")?;
    let mut entry = regs;
    entry.set(32, code);
    entry.set(30, p.read_u64(fp + 8).map_err(|e| e.to_string())?);
    entry.set(29, p.read_u64(fp).map_err(|e| e.to_string())?);
    entry.set(31, fp + 16);
    entry.set(1, p.read_u64(fp - 16).map_err(|e| e.to_string())?);
    entry.set(27, p.read_u64(fp - 8).map_err(|e| e.to_string())?);
    entry.set(0, p.read_u64(fp - 24).map_err(|e| e.to_string())?);
    // kJavaScriptCallCodeStartRegister (x2) holds the code's start on entry.
    entry.set(2, code);
    let callers = &stack.frames[next..];
    let name = outer.function.clone();
    let _ = first;
    let n = check_states(&p, entry, 400, callers, |leaf| {
        leaf.kind == FrameKind::Js && leaf.function == name
    })?;
    if n < 4 {
        return Err(format!("only {n} prologue states stepped").into());
    }
    eprintln!("turbofan {name:?}: {n} instruction positions unwound correctly");
    Ok(())
}

/// Epilogues of C functions built with -fomit-frame-pointer: from each
/// known-good frame (its callee has just returned), step forward through
/// the rest of the function to its `ret`; every state must unwind to the
/// same callers.
fn c_epilogues() -> Result<(), Failed> {
    let p = fixture("native-addon/omit-frame-pointer.node-22.20.0.arm64.cwsnap")?;
    let (stack, steps) = crashed_steps(&p)?;
    let mut total = 0;
    for name in ["level2", "level1"] {
        let k = steps
            .iter()
            .position(|(fi, _)| stack.frames[*fi].symbol.as_deref() == Some(name))
            .ok_or_else(|| format!("no {name} frame"))?;
        let (fi, regs) = steps[k];
        let callers = &stack.frames[fi + 1..];
        let n = check_states(&p, regs, 64, callers, |leaf| {
            leaf.symbol.as_deref() == Some(name)
        })?;
        if n < 2 {
            return Err(format!("{name}: only {n} epilogue states stepped").into());
        }
        total += n;
    }
    eprintln!("level2/level1 epilogues: {total} instruction positions unwound correctly");
    Ok(())
}

/// The first instruction of the frame teardown after `from` in the code:
/// `mov sp, x29` if it comes right before `ldp x29, x30, [sp], #16`, else
/// that `ldp`, or an earlier reload of the argument count from the frame.
/// arm64 encodings from the Arm ARM.
fn teardown_after(p: &SnapshotProcess, from: u64) -> Option<u64> {
    const LDP_FP_LR_POST: u32 = 0xa8c1_7bfd;
    const MOV_SP_FP: u32 = 0x9100_03bf;
    let mut words = Vec::new();
    for i in 0..1024u64 {
        let mut b = [0u8; 4];
        if p.read(from + 4 * i, &mut b).is_err() {
            break;
        }
        words.push(u32::from_le_bytes(b));
    }
    // LDUR Xt, [x29, #simm]: the argument count the epilogue drops is
    // reloaded from the frame just before the teardown.
    let loads_from_frame = |w: u32| w & 0xffe0_0fe0 == 0xf840_03a0;
    let at = words.iter().position(|&w| w == LDP_FP_LR_POST)?;
    let mut start = (at.saturating_sub(4)..at)
        .find(|&i| words[i] == MOV_SP_FP)
        .unwrap_or(at);
    if let Some(i) = (start.saturating_sub(8)..start).find(|&i| loads_from_frame(words[i])) {
        start = i;
    }
    Some(from + 4 * start as u64)
}

/// Steps a known-good V8 frame through its function's frame teardown to
/// its `ret`: pc moved to the teardown, registers those of the frame.
fn v8_epilogue(
    p: &SnapshotProcess,
    stack: &ThreadStack,
    steps: &[(usize, Regs)],
    k: usize,
    search_from: u64,
) -> Result<usize, Failed> {
    let regs = steps[k].1;
    let start = teardown_after(p, search_from).ok_or("no frame teardown found in the code")?;
    let mut state = regs;
    state.set(32, start);
    let next = steps.get(k + 1).map(|s| s.0).ok_or("no caller")?;
    let name = stack.frames[next - 1].function.clone();
    let callers = &stack.frames[next..];
    // Once the record is torn down the function may be gone from its
    // register (V8's own iterator cannot name it either): optimized code
    // is still named from its deoptimization data, the interpreter's
    // epilogue shows as the trampoline builtin. The callers must be exact.
    check_states(p, state, 64, callers, |f| {
        (f.kind == FrameKind::Js && (f.function == name || f.function.as_deref() == Some("")))
            || (f.kind == FrameKind::Builtin
                && f.symbol.as_deref() == Some("Builtins_InterpreterEntryTrampoline"))
    })
}

fn interpreter_epilogue() -> Result<(), Failed> {
    let p = fixture("pure-js/tail-1000.node-22.20.0.arm64.cwsnap")?;
    let (stack, steps) = crashed_steps(&p)?;
    let k = steps
        .iter()
        .position(|(fi, _)| stack.frames[*fi].function.as_deref() == Some("odd"))
        .ok_or("no interpreted frame")?;
    let pc = steps[k].1.get(32).ok_or("no pc")?;
    let n = v8_epilogue(&p, &stack, &steps, k, pc)?;
    if n < 3 {
        return Err(format!("only {n} epilogue states stepped").into());
    }
    eprintln!("interpreter entry epilogue: {n} instruction positions unwound correctly");
    Ok(())
}

fn turbofan_epilogue() -> Result<(), Failed> {
    let p = fixture("mixed/optimized-hot-loop.node-22.20.0.arm64.cwsnap")?;
    let (stack, steps) = crashed_steps(&p)?;
    let k = steps
        .iter()
        .position(|(fi, _)| stack.frames[*fi].tier == Some(crosswind_unwinder::v8::Tier::Turbofan))
        .ok_or("no optimized frame")?;
    // TurboFan lays the epilogue out before the loop: search from the
    // code's start.
    let regs = steps[k].1;
    let (fp, pc) = (regs.get(29).ok_or("no fp")?, regs.get(32).ok_or("no pc")?);
    let function = p.read_u64(fp - 16).map_err(|e| e.to_string())?;
    let v8 = p
        .executable()
        .and_then(|e| crosswind_unwinder::v8::V8Runtime::new(e, &p).ok())
        .ok_or("no V8")?;
    let code = v8
        .function_code_start(function, pc, &p)
        .ok_or("code start of the optimized function not found")?;
    let n = v8_epilogue(&p, &stack, &steps, k, code)?;
    if n < 3 {
        return Err(format!("only {n} epilogue states stepped").into());
    }
    eprintln!("turbofan epilogue: {n} instruction positions unwound correctly");
    Ok(())
}
