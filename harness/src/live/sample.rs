//! `crosswind sample`: samples a running Node.js the way a profiler does.
//! The script runs under QEMU's user-mode gdbstub (`qemu-aarch64 -g PORT`,
//! or `qemu-x86_64` for x64); at jittered
//! intervals SIGUSR2 stops the guest, the stopped thread is unwound live
//! (memory read from QEMU's address space, see `live::direct`), and the
//! guest goes on.
//! Output: JSON samples, folded stacks, an SVG flame graph, a pprof
//! profile, and statistics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crosswind_unwinder::arch::Regs;
use crosswind_unwinder::{Frame, FrameKind, StopReason};

use crate::capture::verify;
use crate::live::gdb_remote::Stop;
use crate::live::{Launch, LiveGuest};
use crate::provision::NodePackage;

/// Options of `crosswind sample`.
pub struct SampleOptions {
    pub node: String,
    pub samples: usize,
    pub interval_ms: u64,
    pub every_insn: bool,
    /// Keep samples from before the script runs (Node.js's start-up).
    pub include_startup: bool,
    pub json: bool,
    pub flamegraph: Option<PathBuf>,
    /// Where to write a gzipped pprof profile.
    pub pprof: Option<PathBuf>,
    pub out: Option<PathBuf>,
    /// Node.js flags, before the script.
    pub flags: Vec<String>,
    pub script: PathBuf,
    pub args: Vec<String>,
    /// Where the guest runs.
    pub backend: crate::live::LiveBackend,
    /// The guest's architecture (`arm64`, `x64`).
    pub arch: String,
    /// Leave out the awaiting callers (`at async` frames).
    pub no_async: bool,
}

/// One sample.
#[derive(Serialize)]
pub struct Sample {
    pub tid: u64,
    pub frames: Vec<Frame>,
    pub stop: StopReason,
}

/// Totals over a run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Stats {
    pub samples: usize,
    pub reached_entry: usize,
    pub js_fully_named: usize,
    pub methods: BTreeMap<String, usize>,
    pub samples_per_second: f64,
    /// Where each stop's time went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_stop: Option<StopCosts>,
}

/// Where a stop's time goes, averaged over every stop of a run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct StopCosts {
    /// Stops made (samples kept and start-up stops discarded).
    pub stops: usize,
    /// From the stop signal to QEMU's stop reply.
    pub stop_ms: f64,
    /// Reading the stopped thread's registers.
    pub registers_ms: f64,
    /// Reading memory, during the unwind.
    pub memory_ms: f64,
    /// Unwinding, memory reads left out.
    pub unwind_ms: f64,
    /// Letting the guest run on.
    pub resume_ms: f64,
    /// gdbstub memory requests.
    pub stub_reads: f64,
    /// Whether memory was read from QEMU's address space rather than
    /// through the gdbstub.
    pub direct_memory: bool,
    /// gdbstub replies dropped over the run because they answered
    /// something else (a late stop, a late or duplicate reply).
    pub stray_replies: usize,
}

/// Totals behind [`StopCosts`].
#[derive(Default)]
struct CostTotals {
    stops: usize,
    stop: Duration,
    registers: Duration,
    memory: Duration,
    unwind: Duration,
    resume: Duration,
    stub_reads: u64,
}

impl CostTotals {
    fn per_stop(&self, direct_memory: bool, stray_replies: usize) -> StopCosts {
        let n = self.stops.max(1) as f64;
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / n;
        StopCosts {
            stops: self.stops,
            stop_ms: ms(self.stop),
            registers_ms: ms(self.registers),
            memory_ms: ms(self.memory),
            unwind_ms: ms(self.unwind.saturating_sub(self.memory)),
            resume_ms: ms(self.resume),
            stub_reads: self.stub_reads as f64 / n,
            direct_memory,
            stray_replies,
        }
    }
}

impl Stats {
    /// The one-line account printed at the end of a run.
    pub fn summary(&self) -> String {
        let costs = self.per_stop.as_ref().map_or(String::new(), |c| {
            format!(
                "; per stop: stop {:.2} ms, registers {:.2} ms, memory {:.2} ms ({:.1} stub reads, {}), unwind {:.2} ms, resume {:.2} ms; {} stray gdbstub replies dropped",
                c.stop_ms,
                c.registers_ms,
                c.memory_ms,
                c.stub_reads,
                if c.direct_memory { "QEMU's memory read directly" } else { "all through the gdbstub" },
                c.unwind_ms,
                c.resume_ms,
                c.stray_replies
            )
        });
        format!(
            "{} samples, {:.1}% reached the thread entry, {:.1}% with every JS frame named and positioned, {:.1} samples/s{costs}; methods: {}",
            self.samples,
            pct(self.reached_entry, self.samples),
            pct(self.js_fully_named, self.samples),
            self.samples_per_second,
            self.methods
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// How much longer the waits are while `start_when` has not yet held.
const WARMUP_SLOWDOWN: u64 = 20;

/// Decides from a stop's frames whether the workload has started.
pub type StartTest = Box<dyn Fn(&[Frame]) -> bool>;

/// What one sampling run does, shared by `crosswind sample` and sampling
/// scenarios.
pub struct SamplingPlan {
    /// Samples to keep.
    pub count: usize,
    /// Mean interval between samples; each wait is jittered to between half
    /// and one and a half times this. With 0, the guest runs between stops
    /// as long as it was last stopped: as many samples as can be taken
    /// while the program still gets half the time.
    pub interval_ms: u64,
    /// Samples are kept only from the first stop whose stack passes this
    /// test (the workload has started); earlier stops are discarded.
    pub start_when: Option<StartTest>,
    /// Until this holds, the guest is not stopped at all (each stop costs
    /// an unwind over the gdbstub, which slows a guest still starting up);
    /// it is polled at the warm-up interval.
    pub ready: Option<Box<dyn Fn() -> bool>>,
    /// Each kept sample's stop lasts at least this long. Only the stopped
    /// thread waits: Node.js's helper threads (concurrent compilers, the
    /// garbage collector's) run on meanwhile, as they did when every stop
    /// took tens of milliseconds of gdbstub round trips. Zero for a
    /// profiler's run.
    pub min_stop: Duration,
    /// Stops to discard at most while waiting for `start_when`.
    pub max_warmup: usize,
    /// When to give up, with what was captured so far.
    pub deadline: Option<Instant>,
    pub progress: bool,
}

/// What a sampling run captured, and why it ended early, if it did.
pub struct SamplingRun {
    pub samples: Vec<Sample>,
    pub discarded: usize,
    pub ended_early: Option<String>,
    /// QEMU went away (rather than the script ending).
    pub guest_lost: bool,
    pub elapsed_s: f64,
    /// Where the stops' time went.
    pub costs: StopCosts,
}

/// Samples the launched guest. `on_sample` runs while the guest is still
/// stopped at each kept sample (to write or check its snapshot).
pub fn sample_guest(
    guest: &mut LiveGuest,
    plan: &SamplingPlan,
    on_sample: &mut dyn FnMut(&mut LiveGuest, &Sample, Regs) -> Result<()>,
) -> Result<SamplingRun> {
    guest.resume()?;
    let bar =
        (plan.progress && console::Term::stderr().is_term() && std::env::var_os("CI").is_none())
            .then(|| indicatif::ProgressBar::new(plan.count as u64));
    let start = Instant::now();
    let mut run = SamplingRun {
        samples: Vec::new(),
        discarded: 0,
        ended_early: None,
        guest_lost: false,
        elapsed_s: 0.0,
        costs: StopCosts::default(),
    };
    let mut totals = CostTotals::default();
    let mut started = plan.start_when.is_none();
    let mut jitter: u64 = 0x9e37_79b9_7f4a_7c15;
    let interval_us = plan.interval_ms.saturating_mul(1000);
    // How long the guest was last stopped: with no interval, the guest
    // runs at least that long between stops, or a run as fast as stops
    // can be made would see the program barely move.
    let mut last_stopped = Duration::ZERO;
    let ending = loop {
        if run.samples.len() >= plan.count {
            break None;
        }
        if plan.deadline.is_some_and(|d| Instant::now() > d) {
            break Some(Ending::script("the time limit passed".into()));
        }
        if crate::live::interrupted() {
            break Some(Ending::script("interrupted".into()));
        }
        jitter ^= jitter << 13;
        jitter ^= jitter >> 7;
        jitter ^= jitter << 17;
        // While waiting for the workload, stop less often: the guest only
        // runs between stops.
        let mean = if started {
            interval_us
        } else {
            interval_us.max(1000) * WARMUP_SLOWDOWN
        };
        let wait = if mean == 0 {
            last_stopped
        } else {
            Duration::from_micros(mean / 2 + jitter % mean)
        };
        std::thread::sleep(wait);
        let stop_began = Instant::now();
        if !started && plan.ready.as_ref().is_some_and(|ready| !ready()) {
            continue;
        }
        let (sample, regs) = match take_sample(guest, &mut totals) {
            Ok(taken) => taken,
            Err(ending) => break Some(ending),
        };
        if !started {
            started = plan.start_when.as_ref().is_none_or(|f| f(&sample.frames));
            if !started {
                run.discarded += 1;
                if run.discarded >= plan.max_warmup {
                    break Some(Ending::script(format!(
                        "the workload did not show up in {} stops",
                        run.discarded
                    )));
                }
                if let Err(e) = resume_timed(guest, &mut totals) {
                    break Some(Ending::lost(format!("QEMU stopped answering ({e})")));
                }
                continue;
            }
        }
        on_sample(guest, &sample, regs)?;
        run.samples.push(sample);
        std::thread::sleep(plan.min_stop.saturating_sub(stop_began.elapsed()));
        if let Some(b) = &bar {
            b.inc(1);
        }
        if let Err(e) = resume_timed(guest, &mut totals) {
            break Some(Ending::lost(format!("QEMU stopped answering ({e})")));
        }
        last_stopped = stop_began.elapsed();
    };
    if let Some(ending) = ending {
        run.guest_lost = ending.guest_lost;
        run.ended_early = Some(format!(
            "{} after {} samples",
            ending.why,
            run.samples.len()
        ));
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    run.elapsed_s = start.elapsed().as_secs_f64();
    let stray_replies = guest.client().stray_replies();
    run.costs = totals.per_stop(guest.process().reads_directly(), stray_replies);
    Ok(run)
}

/// Lets the guest run on, timing it.
fn resume_timed(
    guest: &LiveGuest,
    totals: &mut CostTotals,
) -> Result<(), crate::live::gdb_remote::GdbError> {
    let began = Instant::now();
    let resumed = guest.resume();
    totals.resume += began.elapsed();
    resumed
}

/// Why a sampling run ended before its count.
struct Ending {
    why: String,
    /// QEMU went away (rather than the script ending).
    guest_lost: bool,
}

impl Ending {
    fn script(why: String) -> Ending {
        Ending {
            why,
            guest_lost: false,
        }
    }
    fn lost(why: String) -> Ending {
        Ending {
            why,
            guest_lost: true,
        }
    }
}

/// Stops the running guest and unwinds the thread that stopped.
fn take_sample(
    guest: &mut LiveGuest,
    totals: &mut CostTotals,
) -> std::result::Result<(Sample, Regs), Ending> {
    if let Some(status) = guest.exited() {
        // QEMU passes the script's exit code on; without one it died of a
        // signal (killed, or crashed with the script).
        return Err(match status.code {
            Some(_) => Ending::script(format!("the script exited ({status})")),
            None => Ending::lost(format!("QEMU died ({status})")),
        });
    }
    let began = Instant::now();
    guest.client().drain();
    guest
        .interrupt()
        .map_err(|e| Ending::lost(format!("{e:#}")))?;
    let stopped = guest.wait_stop();
    totals.stops += 1;
    totals.stop += began.elapsed();
    let tid = match stopped {
        Ok(Stop::Signal { thread, .. }) => thread.unwrap_or(0),
        Ok(Stop::Exited(c)) => {
            return Err(Ending::script(format!("the script exited with status {c}")))
        }
        Ok(Stop::Killed(s)) => {
            return Err(Ending::script(format!(
                "the script was killed by signal {s}"
            )))
        }
        Err(e) => return Err(Ending::lost(format!("QEMU stopped answering ({e})"))),
    };
    let began = Instant::now();
    let regs = guest
        .regs()
        .map_err(|e| Ending::lost(format!("reading registers failed ({e:#})")))?;
    totals.registers += began.elapsed();
    let _ = guest.process().take_memory_cost();
    let began = Instant::now();
    let t = guest.unwind_within(tid, regs, SAMPLE_BUDGET);
    totals.unwind += began.elapsed();
    let (memory, stub_reads) = guest.process().take_memory_cost();
    totals.memory += memory;
    totals.stub_reads += stub_reads;
    if guest.exited().is_some() {
        // QEMU died under the unwind: its reads failed, so the sample says
        // nothing about the stack.
        return Err(Ending::lost(
            "QEMU died (the sample being taken is dropped)".into(),
        ));
    }
    Ok((
        Sample {
            tid,
            frames: t.frames,
            stop: t.stop,
        },
        regs,
    ))
}

/// Provenance recorded in each sample's snapshot.
pub fn sample_meta(
    node: &str,
    arch: &str,
    index: usize,
    what: &str,
    backend: &str,
) -> BTreeMap<String, String> {
    [
        ("node_version", node.to_string()),
        ("arch", arch.to_string()),
        ("capture", "sample".to_string()),
        ("sample", index.to_string()),
        ("scenario", what.to_string()),
        ("backend", backend.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// How long one stop's unwind may take. The first stops also find V8 and
/// read its layout; a sample is a few milliseconds once caches are warm.
const SAMPLE_BUDGET: Duration = Duration::from_secs(5);

/// Stops discarded at most while Node.js starts up, before the script's
/// first frame shows: start-up takes a few hundred stops at the warm-up
/// interval even one instruction per block.
const MAX_STARTUP_STOPS: usize = 20_000;

/// Whether a stop is in the script: a JavaScript frame of its file.
fn in_script(script: &Path) -> StartTest {
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = format!("/{name}");
    Box::new(move |frames: &[Frame]| {
        frames.iter().any(|f| {
            f.kind == FrameKind::Js
                && f.file
                    .as_deref()
                    .is_some_and(|file| file == name || file.ends_with(&suffix))
        })
    })
}

/// `crosswind sample`.
pub fn sample_command(o: SampleOptions) -> Result<u8> {
    if !o.script.is_file() {
        bail!("{}: no such script", o.script.display());
    }
    let node = NodePackage::ensure(&o.node, &o.arch)?;
    let mut guest = LiveGuest::launch(&Launch {
        node,
        flags: o.flags.clone(),
        script: o.script.clone(),
        args: o.args.clone(),
        cwd: None,
        every_insn: o.every_insn,
        log: None,
        search_dirs: o
            .script
            .parent()
            .map(Path::to_path_buf)
            .into_iter()
            .collect(),
        backend: o.backend,
    })?;
    guest.set_async_callers(!o.no_async);
    if let Some(dir) = &o.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let plan = SamplingPlan {
        count: o.samples,
        interval_ms: o.interval_ms,
        start_when: (!o.include_startup).then(|| in_script(&o.script)),
        ready: None,
        min_stop: Duration::ZERO,
        max_warmup: MAX_STARTUP_STOPS,
        deadline: None,
        progress: true,
    };
    let mut index = 0usize;
    let script_name = o.script.display().to_string();
    let run = sample_guest(&mut guest, &plan, &mut |guest, sample, regs| {
        if let Some(dir) = &o.out {
            let meta = sample_meta(&o.node, &o.arch, index, &script_name, guest.backend());
            let (snapshot, _) = guest.snapshot(sample.tid, regs, meta);
            let path = dir.join(format!("sample-{index:05}.cwsnap"));
            snapshot
                .write(&path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        index += 1;
        Ok(())
    })?;
    drop(guest);
    let mut stats = statistics(&run.samples, run.elapsed_s);
    stats.per_stop = Some(run.costs.clone());
    if let Some(dir) = &o.out {
        let path = dir.join("samples.json");
        std::fs::write(
            &path,
            serde_json::to_string(&SampleDocument {
                samples: &run.samples,
                stats: &stats,
            })?,
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    if o.json {
        let doc = serde_json::to_string(&SampleDocument {
            samples: &run.samples,
            stats: &stats,
        })?;
        crate::report::output::emit(&format!("{doc}\n"))?;
    } else {
        crate::report::output::emit(&folded(&run.samples))?;
    }
    if let Some(svg) = &o.flamegraph {
        write_flamegraph(&run.samples, svg)?;
    }
    if let Some(path) = &o.pprof {
        let stacks = run.samples.iter().map(|s| (s.tid, s.frames.as_slice()));
        crate::live::pprof::write(stacks, o.interval_ms, run.elapsed_s, path)?;
    }
    eprintln!("{}", stats.summary());
    if let Some(why) = &run.ended_early {
        eprintln!("crosswind: sampling ended early: {why}");
    }
    Ok(if run.guest_lost { 1 } else { 0 })
}

fn pct(a: usize, b: usize) -> f64 {
    100.0 * a as f64 / b.max(1) as f64
}

#[derive(Serialize)]
struct SampleDocument<'a> {
    samples: &'a [Sample],
    stats: &'a Stats,
}

/// Counts what the run's statistics report.
pub fn statistics(samples: &[Sample], elapsed_s: f64) -> Stats {
    let mut s = Stats {
        samples: samples.len(),
        samples_per_second: samples.len() as f64 / elapsed_s.max(1e-9),
        ..Stats::default()
    };
    for smp in samples {
        let mut problems = Vec::new();
        verify::check_entry_of(smp.tid as u32, &smp.frames, &smp.stop, &mut problems);
        if problems.is_empty() {
            s.reached_entry += 1;
        }
        if smp
            .frames
            .iter()
            .filter(|f| f.kind == FrameKind::Js)
            .all(|f| f.line.is_some() && f.column.is_some())
        {
            s.js_fully_named += 1;
        }
        for f in &smp.frames {
            let m = serde_json::to_value(f.method)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            *s.methods.entry(m).or_default() += 1;
        }
    }
    s
}

/// A frame's label in folded stacks and flame graphs. The suffix picks
/// the flame graph colour (inferno's java palette): `_[j]` JavaScript,
/// `_[i]` builtins and stubs, none for native code.
fn label(f: &Frame) -> String {
    let clean = |s: &str| s.replace(';', ":");
    if f.is_async == Some(true) {
        return match f.kind {
            FrameKind::Builtin => clean(&format!(
                "async Promise.{} (index {})_[i]",
                f.function.as_deref().unwrap_or("?"),
                f.promise_index.unwrap_or(0)
            )),
            _ => format!(
                "async {}",
                label(&Frame {
                    is_async: None,
                    ..f.clone()
                })
            ),
        };
    }
    match f.kind {
        FrameKind::Js => {
            let name = f
                .function
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or("(anonymous)");
            let file = f
                .file
                .as_deref()
                .map(|p| p.rsplit('/').next().unwrap_or(p))
                .unwrap_or("");
            match f.line {
                Some(l) => clean(&format!("{name} {file}:{l}_[j]")),
                None => clean(&format!("{name} {file}_[j]")),
            }
        }
        FrameKind::Wasm => clean(&format!(
            "{} wasm_[j]",
            f.function.as_deref().unwrap_or("wasm-function")
        )),
        FrameKind::Builtin | FrameKind::Stub => clean(&format!(
            "{}_[i]",
            f.function
                .as_deref()
                .or(f.symbol.as_deref())
                .unwrap_or("builtin")
        )),
        _ => clean(f.symbol.as_deref().unwrap_or("??")),
    }
}

/// `frame;frame;... count` lines, outermost frame first.
pub fn folded(samples: &[Sample]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in samples {
        let line = s
            .frames
            .iter()
            .rev()
            .map(label)
            .collect::<Vec<_>>()
            .join(";");
        *counts.entry(line).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(k, v)| format!("{k} {v}\n"))
        .collect()
}

fn write_flamegraph(samples: &[Sample], path: &Path) -> Result<()> {
    let text = folded(samples);
    let mut opts = inferno::flamegraph::Options::default();
    opts.title = "crosswind".into();
    opts.colors =
        inferno::flamegraph::color::Palette::Multi(inferno::flamegraph::color::MultiPalette::Java);
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    inferno::flamegraph::from_lines(&mut opts, text.lines(), std::io::BufWriter::new(file))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crosswind_unwinder::Method;

    fn frame(kind: FrameKind, name: &str) -> Frame {
        let mut f = Frame::new(kind, 0, Method::Cfi);
        match kind {
            FrameKind::Native => f.symbol = Some(name.into()),
            _ => f.function = Some(name.into()),
        }
        if kind == FrameKind::Js {
            f.file = Some("/app/main.js".into());
            f.line = Some(3);
            f.column = Some(7);
        }
        f
    }

    #[test]
    fn folded_lines_are_outermost_first_and_counted() {
        let s = || Sample {
            tid: 1,
            frames: vec![
                frame(FrameKind::Js, "leaf"),
                frame(FrameKind::Builtin, "map"),
                frame(FrameKind::Native, "_start"),
            ],
            stop: StopReason::EndOfStack,
        };
        let text = folded(&[s(), s()]);
        assert_eq!(text, "_start;map_[i];leaf main.js:3_[j] 2\n");
        let stats = statistics(&[s()], 1.0);
        assert_eq!(stats.samples, 1);
        assert_eq!(stats.reached_entry, 1);
        assert_eq!(stats.js_fully_named, 1);
    }
}
