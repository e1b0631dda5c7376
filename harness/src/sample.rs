//! `crosswind sample`: samples a running ARM64 Node.js the way a profiler
//! does. The script runs under `qemu-aarch64 -g PORT`; at jittered
//! intervals SIGUSR2 stops the guest, the stopped thread is unwound live
//! (memory through `m` packets, cached per stop), and the guest goes on.
//! Output: JSON samples, folded stacks, an SVG flame graph, and statistics.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crosswind_unwinder::arch::{Arch, ArchKind, Regs};
use crosswind_unwinder::memory::Memory;
use crosswind_unwinder::module::Module;
use crosswind_unwinder::{self as cw, Frame, FrameKind, StopReason, ThreadStack};

use crate::gdb_remote::{GdbClient, Stop};
use crate::provision::{have_command, NodePackage, AARCH64_SYSROOT};

/// Options of `crosswind sample`.
pub struct SampleOptions {
    pub node: String,
    pub samples: usize,
    pub interval_ms: u64,
    pub every_insn: bool,
    pub json: bool,
    pub flamegraph: Option<PathBuf>,
    pub out: Option<PathBuf>,
    pub script: PathBuf,
    pub args: Vec<String>,
}

/// One sample.
#[derive(Serialize)]
pub struct Sample {
    pub tid: u64,
    pub frames: Vec<Frame>,
    pub stop: StopReason,
}

/// Totals over a run.
#[derive(Serialize, Default)]
pub struct Stats {
    pub samples: usize,
    pub reached_entry: usize,
    pub js_fully_named: usize,
    pub methods: BTreeMap<String, usize>,
    pub samples_per_second: f64,
}

/// Granule of the per-stop cache: small, since most reads are a few words
/// of a heap object and each granule is one `m` round trip.
const PAGE: u64 = 512;

/// The stopped guest as a [`cw::Process`]: memory read through the stub
/// with a page cache that is dropped at every resume.
struct LiveProcess {
    client: RefCell<GdbClient<TcpStream>>,
    cache: RefCell<HashMap<u64, Option<Vec<u8>>>>,
    modules: Vec<Module>,
}

impl Memory for LiveProcess {
    fn read(&self, addr: u64, buf: &mut [u8]) -> cw::Result<()> {
        let len = buf.len();
        let unmapped = || cw::Error::Unmapped { addr, len };
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr.wrapping_add(done as u64);
            let page = at & !(PAGE - 1);
            let cached = self.cache.borrow().get(&page).cloned();
            let bytes = match cached {
                Some(b) => b,
                None => {
                    let b = self.client.borrow_mut().memory(page, PAGE as usize).ok();
                    self.cache.borrow_mut().insert(page, b.clone());
                    b
                }
            };
            match bytes {
                Some(b) => {
                    let off = (at - page) as usize;
                    let n = (PAGE as usize - off).min(buf.len() - done);
                    buf[done..done + n].copy_from_slice(&b[off..off + n]);
                    done += n;
                }
                None => {
                    // A partly mapped page: ask for exactly what is wanted.
                    let rest = buf.len() - done;
                    let b = self
                        .client
                        .borrow_mut()
                        .memory(at, rest)
                        .map_err(|_| unmapped())?;
                    buf[done..].copy_from_slice(&b);
                    done = buf.len();
                }
            }
        }
        Ok(())
    }
}

impl cw::Process for LiveProcess {
    fn arch(&self) -> &'static dyn Arch {
        ArchKind::Aarch64.arch()
    }
    fn module_at(&self, addr: u64) -> Option<&Module> {
        self.modules.iter().find(|m| m.contains(addr))
    }
}

/// Kills QEMU however the run ends.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// QEMU's option for one instruction per translation block: every
/// instruction can then be a sample point. Renamed in QEMU 8.1.
fn one_insn_flag() -> &'static str {
    let help = std::process::Command::new("qemu-aarch64")
        .arg("-h")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if help.contains("-one-insn-per-tb") {
        "-one-insn-per-tb"
    } else {
        "-singlestep"
    }
}

/// Registers from an aarch64 `g` reply: x0..x30, sp, pc.
fn regs_from_g(g: &[u8]) -> Option<Regs> {
    let mut r = Regs::default();
    for i in 0..33u16 {
        let at = i as usize * 8;
        r.set(i, u64::from_le_bytes(g.get(at..at + 8)?.try_into().ok()?));
    }
    Some(r)
}

/// `crosswind sample`.
pub fn sample_command(o: SampleOptions) -> Result<u8> {
    if !have_command("qemu-aarch64") {
        bail!("qemu-aarch64 not found: run `just setup` (or `apt-get install qemu-user`)");
    }
    if !o.script.is_file() {
        bail!("{}: no such script", o.script.display());
    }
    let node = NodePackage::ensure(&o.node, "arm64")?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
        l.local_addr()?.port()
    };
    let mut cmd = std::process::Command::new("qemu-aarch64");
    if o.every_insn {
        cmd.arg(one_insn_flag());
    }
    cmd.args(["-g", &port.to_string(), "-L", AARCH64_SYSROOT])
        .arg(node.node())
        .arg(&o.script)
        .args(&o.args)
        .stdin(std::process::Stdio::null());
    let mut qemu = Reap(cmd.spawn().context("starting qemu-aarch64")?);
    let addr = format!("127.0.0.1:{port}").parse()?;
    let mut client = GdbClient::connect(addr, Duration::from_secs(10))
        .context("connecting to QEMU's gdbstub")?;
    client.supported()?;
    client.no_ack_mode()?;
    client.halt_reason()?;
    let auxv = client.auxv()?;
    let at_phdr = auxv
        .iter()
        .find(|(k, _)| *k == cw::process::AUXV_PHDR)
        .map(|(_, v)| *v);
    let exe = cw::process::open_executable(&node.node(), at_phdr)?;
    let resolver = cw::ModuleResolver {
        exe: Some(node.node()),
        sysroot: Some(PathBuf::from(AARCH64_SYSROOT)),
        search_dirs: o
            .script
            .parent()
            .map(Path::to_path_buf)
            .into_iter()
            .collect(),
    };
    let mut live = LiveProcess {
        client: RefCell::new(client),
        cache: RefCell::new(HashMap::new()),
        modules: vec![exe],
    };
    let mut loaded = 0usize;
    let mut v8: Option<cw::v8::V8Runtime> = None;
    live.client.borrow_mut().resume()?;
    let bar = if console::Term::stderr().is_term() && std::env::var_os("CI").is_none() {
        Some(indicatif::ProgressBar::new(o.samples as u64))
    } else {
        None
    };
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut ended = None;
    let mut jitter: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..o.samples {
        jitter ^= jitter << 13;
        jitter ^= jitter >> 7;
        jitter ^= jitter << 17;
        let wait = o.interval_ms.max(1) / 2 + jitter % o.interval_ms.max(1);
        std::thread::sleep(Duration::from_millis(wait));
        if let Ok(Some(status)) = qemu.0.try_wait() {
            ended = Some(format!(
                "the script exited ({status}) after {} samples",
                samples.len()
            ));
            break;
        }
        let sent = std::process::Command::new("kill")
            .args(["-USR2", &qemu.0.id().to_string()])
            .status();
        if !sent.is_ok_and(|s| s.success()) {
            ended = Some("QEMU went away".to_string());
            break;
        }
        let stop = live.client.borrow_mut().wait_stop(Duration::from_secs(10));
        let tid = match stop {
            Ok(Stop::Signal { thread, .. }) => thread.unwrap_or(0),
            Ok(Stop::Exited(c)) => {
                ended = Some(format!("the script exited with status {c}"));
                break;
            }
            Ok(Stop::Killed(s)) => {
                ended = Some(format!("the script was killed by signal {s}"));
                break;
            }
            Err(e) => {
                ended = Some(format!("QEMU stopped answering: {e}"));
                break;
            }
        };
        live.cache.borrow_mut().clear();
        let g = live.client.borrow_mut().registers()?;
        let regs = regs_from_g(&g).context("short register reply")?;
        // Libraries appear as the dynamic linker loads them.
        if let Ok(Some(r_debug)) = cw::process::r_debug_address(&live, &live.modules[0]) {
            if r_debug != 0 {
                if let Ok(entries) = cw::process::link_map_entries(&live, r_debug) {
                    if entries.len() != loaded {
                        loaded = entries.len();
                        live.modules.truncate(1);
                        for (bias, name) in entries {
                            if name.is_empty() || name.starts_with("linux-") {
                                continue;
                            }
                            if let Ok(m) = cw::process::open_library(&resolver, &name, bias) {
                                live.modules.push(m);
                            }
                        }
                    }
                }
            }
        }
        // One V8 runtime for the whole run: its caches (script line ends,
        // function names, position tables) validate themselves per hit.
        if v8.is_none() {
            v8 = live
                .modules
                .first()
                .and_then(|e| cw::v8::V8Runtime::new(e, &live).ok());
        }
        let mut unwinder = cw::Unwinder::new(&live, v8.take());
        unwinder.emulator = Some(Box::new(cw::emulate::Emulator {
            arch: ArchKind::Aarch64,
            budget: cw::emulate::DEFAULT_BUDGET,
        }));
        let t = unwinder.unwind(tid as u32, false, regs);
        v8 = unwinder.into_v8();
        samples.push(Sample {
            tid,
            frames: t.frames,
            stop: t.stop,
        });
        if let Some(b) = &bar {
            b.inc(1);
        }
        live.client.borrow_mut().resume()?;
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let stats = statistics(&samples, elapsed);
    if let Some(dir) = &o.out {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("samples.json"),
            serde_json::to_string(&SampleDocument {
                samples: &samples,
                stats: &stats,
            })?,
        )?;
    }
    if o.json {
        let doc = serde_json::to_string(&SampleDocument {
            samples: &samples,
            stats: &stats,
        })?;
        crate::output::emit(&format!("{doc}\n"))?;
    } else {
        crate::output::emit(&folded(&samples))?;
    }
    if let Some(svg) = &o.flamegraph {
        write_flamegraph(&samples, svg)?;
    }
    eprintln!(
        "{} samples, {:.1}% reached the thread entry, {:.1}% with every JS frame named and positioned, {:.1} samples/s; methods: {:?}",
        stats.samples,
        pct(stats.reached_entry, stats.samples),
        pct(stats.js_fully_named, stats.samples),
        stats.samples_per_second,
        stats.methods
    );
    if let Some(why) = ended {
        eprintln!("crosswind: sampling ended early: {why}");
    }
    Ok(0)
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
        let stack = ThreadStack {
            tid: smp.tid as u32,
            crashed: false,
            frames: smp.frames.clone(),
            stop: smp.stop.clone(),
        };
        let mut problems = Vec::new();
        crate::verify::check_entry(&stack, &mut problems);
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
