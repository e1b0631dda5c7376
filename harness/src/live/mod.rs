//! A live guest under QEMU's user-mode gdbstub (`qemu-aarch64 -g PORT` for
//! arm64, `qemu-x86_64 -g PORT` for x64): starting it, stopping
//! it (SIGUSR2, breakpoints, single steps), and unwinding or snapshotting
//! the stopped thread with memory read straight from QEMU's address space
//! where it can be (see [`direct`]), else through the gdbstub. Shared by
//! `crosswind sample`, `crosswind sweep` and sampling scenarios.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crosswind_unwinder::arch::{Arch, ArchKind, Regs};
use crosswind_unwinder::Memory;
use crosswind_unwinder::Module;
use crosswind_unwinder::{self as cw, StoppedThread, ThreadStack};

use crate::live::gdb_remote::{GdbClient, GdbError, Stop};
use crate::provision::{have_command, qemu_user_mode, NodePackage, QemuUserMode};
use crate::target::TargetArch;

pub use crate::backend::LiveBackend;

pub mod direct;
pub mod gdb_remote;
pub mod pprof;
pub mod sample;
pub mod sweep;

/// Granule of the per-stop cache: small, since most reads are a few words
/// of a heap object and each granule is one `m` round trip.
const GRANULE: u64 = 512;

/// How long one gdbstub request may take before the guest counts as dead.
const STUB_TIMEOUT: Duration = Duration::from_secs(10);

/// The stopped guest as a [`cw::Process`]: memory read from QEMU's
/// address space, or else through the stub with a cache that is dropped at
/// every resume, and the modules the dynamic linker has loaded, executable
/// first.
pub struct LiveProcess {
    arch: ArchKind,
    client: RefCell<GdbClient<TcpStream>>,
    direct: Option<RefCell<direct::DirectReader>>,
    cache: RefCell<HashMap<u64, Option<Vec<u8>>>>,
    /// Time spent reading memory, and gdbstub memory requests, since the
    /// last [`LiveProcess::take_memory_cost`].
    memory_time: Cell<Duration>,
    stub_reads: Cell<u64>,
    /// When set, reads after this instant fail: the stop's time budget.
    budget_end: Cell<Option<Instant>>,
    modules: Vec<Module>,
    resolver: cw::ModuleResolver,
    /// Link-map entries seen at the last refresh.
    loaded: usize,
}

impl LiveProcess {
    /// Time spent reading memory and gdbstub memory requests made since the
    /// last call.
    pub fn take_memory_cost(&self) -> (Duration, u64) {
        (self.memory_time.take(), self.stub_reads.take())
    }

    /// Whether memory is read straight from QEMU's address space.
    pub fn reads_directly(&self) -> bool {
        self.direct.is_some()
    }

    /// The guest is about to run: what was read may change.
    fn forget_reads(&self) {
        self.cache.borrow_mut().clear();
        if let Some(d) = &self.direct {
            d.borrow_mut().resumed();
        }
    }

    /// Reads through the gdbstub, counting the requests.
    fn stub_memory(&self, addr: u64, len: usize) -> Result<Vec<u8>, GdbError> {
        self.stub_reads.set(self.stub_reads.get() + 1);
        self.client.borrow_mut().memory(addr, len)
    }

    /// Picks up libraries the dynamic linker has loaded since the last stop.
    pub fn refresh_modules(&mut self) {
        let Some(exe) = self.modules.first() else {
            return;
        };
        let Ok(Some(r_debug)) = cw::process::r_debug_address(self, exe) else {
            return;
        };
        if r_debug == 0 {
            return;
        }
        let Ok(entries) = cw::process::link_map_entries(self, r_debug) else {
            return;
        };
        if entries.len() == self.loaded {
            return;
        }
        self.loaded = entries.len();
        self.modules.truncate(1);
        for (bias, name) in entries {
            if name.is_empty() || name.starts_with("linux-") {
                continue;
            }
            if let Ok(m) = cw::process::open_library(&self.resolver, &name, bias) {
                self.modules.push(m);
            }
        }
    }
}

impl Memory for LiveProcess {
    fn read(&self, addr: u64, buf: &mut [u8]) -> cw::Result<()> {
        let began = Instant::now();
        if self.budget_end.get().is_some_and(|end| began > end) {
            return Err(cw::Error::Other(format!(
                "the stop's time budget ran out (reading {addr:#x})"
            )));
        }
        let read = match &self.direct {
            Some(direct) => {
                let mut confirm = |page: u64| self.stub_memory(page, 1).is_ok_and(|b| b.len() == 1);
                match direct.borrow_mut().read(addr, buf, &mut confirm) {
                    direct::DirectRead::Done => Ok(()),
                    direct::DirectRead::Unmapped => Err(cw::Error::Unmapped {
                        addr,
                        len: buf.len(),
                    }),
                    direct::DirectRead::Unavailable => self.read_through_stub(addr, buf),
                }
            }
            None => self.read_through_stub(addr, buf),
        };
        self.memory_time
            .set(self.memory_time.get() + began.elapsed());
        read
    }
}

impl LiveProcess {
    /// Reads through the stub, a granule at a time, cached until resumed.
    fn read_through_stub(&self, addr: u64, buf: &mut [u8]) -> cw::Result<()> {
        let len = buf.len();
        let unmapped = || cw::Error::Unmapped { addr, len };
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr.wrapping_add(done as u64);
            let granule = at & !(GRANULE - 1);
            let cached = self.cache.borrow().get(&granule).cloned();
            let bytes = match cached {
                Some(b) => b,
                None => {
                    let b = self.stub_memory(granule, GRANULE as usize).ok();
                    self.cache.borrow_mut().insert(granule, b.clone());
                    b
                }
            };
            match bytes {
                Some(b) if b.len() == GRANULE as usize => {
                    let off = (at - granule) as usize;
                    let n = (GRANULE as usize - off).min(buf.len() - done);
                    buf[done..done + n].copy_from_slice(&b[off..off + n]);
                    done += n;
                }
                _ => {
                    // A partly mapped granule: ask for exactly what is wanted.
                    let rest = buf.len() - done;
                    let b = self.stub_memory(at, rest).map_err(|_| unmapped())?;
                    if b.len() != rest {
                        return Err(unmapped());
                    }
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
        self.arch.arch()
    }
    fn module_at(&self, addr: u64) -> Option<&Module> {
        cw::module_containing(&self.modules, addr)
    }
    fn modules(&self) -> &[Module] {
        &self.modules
    }
}

/// Kills QEMU however the run ends.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// QEMU's option for one instruction per translation block: every
/// instruction can then be a sample point. Renamed in QEMU 8.1.
fn one_insn_flag(qemu: &str) -> &'static str {
    let help = std::process::Command::new(qemu)
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

/// The guest architecture of a Node.js package (`arm64`, `x64`).
fn arch_of(node: &NodePackage) -> Result<ArchKind> {
    match TargetArch::parse(&node.arch) {
        Some(a) => Ok(a.kind()),
        None => bail!("live sampling runs arm64 or x64 guests, not {}", node.arch),
    }
}

/// What to start under the gdbstub.
pub struct Launch {
    pub node: NodePackage,
    /// Node.js flags, before the script.
    pub flags: Vec<String>,
    /// The script, as node is given it (relative to `cwd`).
    pub script: PathBuf,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// One instruction per translation block.
    pub every_insn: bool,
    /// Where the guest's stdout and stderr go; inherited when `None`.
    pub log: Option<PathBuf>,
    /// Extra directories searched for modules (addons).
    pub search_dirs: Vec<PathBuf>,
    /// Where it runs.
    pub backend: LiveBackend,
}

/// Set when the user interrupts a run (Ctrl-C): live guests run on
/// blocking threads that a cancelled task cannot stop, so sampling loops
/// look at this and end, and their guests (QEMU, a container) are dropped.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks every sampling loop to end.
pub fn interrupt_all() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`interrupt_all`] was called.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// How a guest ended.
#[derive(Debug, Clone)]
pub struct GuestExit {
    /// The script's exit code; `None` when QEMU died of a signal.
    pub code: Option<i32>,
    pub text: String,
}

impl std::fmt::Display for GuestExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// What runs the guest's QEMU; dropping it ends the guest.
enum GuestHost {
    Local(Reap),
    Container(Box<crate::backend::GdbContainer>),
}

/// Attempts at starting QEMU's gdbstub here. A free port is found and
/// then handed to QEMU, so another process (a parallel job finding the
/// same free port) can take it in between: the loser's connection is
/// reset or refused, and it starts again on another port.
const LOCAL_STUB_ATTEMPTS: usize = 3;

/// Starts `qemu-<arch> -g` here and connects to it; a connection counts
/// once the stub has answered.
fn launch_local(l: &Launch) -> Result<(GuestHost, GdbClient<TcpStream>)> {
    let qemu = qemu_user_mode(&l.node.arch)?;
    if !have_command(qemu.program) {
        bail!(
            "{} not found: run `just setup` (or `apt-get install qemu-user`)",
            qemu.program
        );
    }
    let mut failed = Vec::new();
    for _ in 0..LOCAL_STUB_ATTEMPTS {
        let port = {
            let listener =
                std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
            listener.local_addr()?.port()
        };
        let guest = spawn_local(l, &qemu, port)?;
        let addr = format!("127.0.0.1:{port}").parse()?;
        match connect_answered(addr, STUB_TIMEOUT) {
            Ok(client) => return Ok((GuestHost::Local(guest), client)),
            // Dropping the guest ends that QEMU.
            Err(e) => failed.push(format!("port {port}: {e}")),
        }
    }
    bail!(
        "connecting to QEMU's gdbstub failed {LOCAL_STUB_ATTEMPTS} times ({})",
        failed.join("; ")
    )
}

/// Starts `qemu-<arch> -g PORT` on the launch's script.
fn spawn_local(l: &Launch, qemu: &QemuUserMode, port: u16) -> Result<Reap> {
    let mut cmd = std::process::Command::new(qemu.program);
    crate::backend::die_with_parent(&mut cmd);
    if l.every_insn {
        cmd.arg(one_insn_flag(qemu.program));
    }
    cmd.args(qemu.cpu_args).args(["-g", &port.to_string()]);
    if let Some(sysroot) = qemu.sysroot {
        cmd.args(["-L", sysroot]);
    }
    cmd.arg(l.node.node())
        .args(&l.flags)
        .arg(&l.script)
        .args(&l.args)
        .stdin(Stdio::null());
    if let Some(dir) = &l.cwd {
        cmd.current_dir(dir);
    }
    if let Some(log) = &l.log {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdout(out.try_clone()?).stderr(out);
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", qemu.program))?;
    Ok(Reap(child))
}

/// Starts the guest in a container and connects to its published stub.
/// Docker's proxy accepts a connection before QEMU listens, so a
/// connection counts once the stub has answered.
fn launch_container(l: &Launch) -> Result<(GuestHost, GdbClient<TcpStream>)> {
    let (workdir, script) = match &l.cwd {
        Some(dir) => (dir.clone(), l.script.clone()),
        None => {
            let dir = l
                .script
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            let name = l
                .script
                .file_name()
                .context("the script has no file name")?;
            (dir, PathBuf::from(name))
        }
    };
    if script.is_absolute() {
        bail!(
            "{}: in a container the script must be relative to the mounted directory {}",
            script.display(),
            workdir.display()
        );
    }
    let workdir = std::fs::canonicalize(&workdir)
        .with_context(|| format!("resolving {}", workdir.display()))?;
    let mut args = l.flags.clone();
    args.push(script.display().to_string());
    args.extend(l.args.iter().cloned());
    let container = crate::backend::GdbContainer::start(
        &l.node.version,
        &l.node.arch,
        &workdir,
        &args,
        l.every_insn,
        l.log.as_deref(),
    )?;
    let deadline = std::time::Instant::now() + CONTAINER_STUB_WAIT;
    loop {
        match connect_answered(container.addr, Duration::from_secs(2)) {
            Ok(client) => return Ok((GuestHost::Container(Box::new(container)), client)),
            Err(e) if std::time::Instant::now() >= deadline => {
                return Err(e.context(format!(
                    "connecting to QEMU's gdbstub in the container at {}",
                    container.addr
                )))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Connects to a gdbstub and asks for its features, waiting up to
/// `answer_within` for the answer: a connection that a proxy accepted, or
/// that a stub on a lost port resets, fails here rather than later.
fn connect_answered(
    addr: std::net::SocketAddr,
    answer_within: Duration,
) -> Result<GdbClient<TcpStream>> {
    let mut client = GdbClient::connect(addr, STUB_TIMEOUT)?;
    client.set_timeout(answer_within);
    client.supported()?;
    client.set_timeout(STUB_TIMEOUT);
    Ok(client)
}

/// How long a container's stub may take to answer.
const CONTAINER_STUB_WAIT: Duration = Duration::from_secs(30);

/// A running (or stopped) guest and the unwinding session kept across
/// stops.
pub struct LiveGuest {
    host: GuestHost,
    session: cw::Session<LiveProcess>,
}

impl LiveGuest {
    /// Whether samples get the awaiting callers V8 prints as `at async`.
    pub fn set_async_callers(&mut self, on: bool) {
        self.session.set_async_callers(on);
    }

    /// Starts the script under QEMU's gdbstub, connects, and leaves the
    /// guest stopped at its first instruction.
    pub fn launch(l: &Launch) -> Result<LiveGuest> {
        let arch = arch_of(&l.node)?;
        let (host, mut client) = match l.backend {
            LiveBackend::QemuUser => launch_local(l)?,
            LiveBackend::Docker => launch_container(l)?,
        };
        client.no_ack_mode()?;
        client.halt_reason()?;
        let auxv = client.auxv()?;
        let at_phdr = auxv
            .iter()
            .find(|(k, _)| *k == cw::process::AUXV_PHDR)
            .map(|(_, v)| *v);
        let exe = cw::process::open_executable(&l.node.node(), at_phdr)?;
        // CROSSWIND_STUB_MEMORY=1 reads through the gdbstub alone, to
        // compare the two ways.
        let direct = match &host {
            GuestHost::Local(qemu) if std::env::var_os("CROSSWIND_STUB_MEMORY").is_none() => {
                direct::DirectReader::attach(qemu.0.id(), &l.node.node(), &exe).map(RefCell::new)
            }
            _ => None,
        };
        let mut search_dirs = l.search_dirs.clone();
        search_dirs.extend(l.cwd.clone());
        let resolver = cw::ModuleResolver {
            exe: Some(l.node.node()),
            sysroot: qemu_user_mode(&l.node.arch)?.sysroot.map(PathBuf::from),
            search_dirs,
        };
        Ok(LiveGuest {
            host,
            session: cw::Session::new(LiveProcess {
                arch,
                client: RefCell::new(client),
                direct,
                cache: RefCell::new(HashMap::new()),
                memory_time: Cell::new(Duration::ZERO),
                stub_reads: Cell::new(0),
                budget_end: Cell::new(None),
                modules: vec![exe],
                resolver,
                loaded: 0,
            }),
        })
    }

    /// QEMU's process id, when it is a child of this process.
    pub fn pid(&self) -> Option<u32> {
        match &self.host {
            GuestHost::Local(qemu) => Some(qemu.0.id()),
            GuestHost::Container(_) => None,
        }
    }

    /// The guest's architecture.
    pub fn arch(&self) -> ArchKind {
        self.session.process().arch
    }

    /// Where the guest runs, as `--backend` names it.
    pub fn backend(&self) -> &'static str {
        match &self.host {
            GuestHost::Local(_) => LiveBackend::QemuUser.name(),
            GuestHost::Container(_) => LiveBackend::Docker.name(),
        }
    }

    /// The gdbstub client.
    pub fn client(&self) -> std::cell::RefMut<'_, GdbClient<TcpStream>> {
        self.session.process().client.borrow_mut()
    }

    /// How the guest ended, once QEMU has exited.
    pub fn exited(&mut self) -> Option<GuestExit> {
        match &mut self.host {
            GuestHost::Local(qemu) => {
                let status = qemu.0.try_wait().ok().flatten()?;
                Some(GuestExit {
                    code: status.code(),
                    text: status.to_string(),
                })
            }
            GuestHost::Container(c) => {
                let code = c.exited()?.code;
                // docker-init reports a death by signal N as 128 + N.
                Some(match code {
                    0..=127 => GuestExit {
                        code: Some(code as i32),
                        text: format!("exit status: {code}"),
                    },
                    _ => GuestExit {
                        code: None,
                        text: format!("exit code {code}, killed by a signal"),
                    },
                })
            }
        }
    }

    /// Lets the guest run; cached memory is dropped.
    pub fn resume(&self) -> Result<(), GdbError> {
        self.session.process().forget_reads();
        self.client().resume()
    }

    /// Lets the guest run on from a stop at one of its breakpoints: QEMU
    /// would report the breakpoint again at once, so it is lifted for one
    /// instruction.
    pub fn resume_past_breakpoint(&self, addr: u64) -> Result<(), GdbError> {
        self.client().clear_breakpoint(addr)?;
        let stepped = self.step();
        self.client().set_breakpoint(addr)?;
        stepped?;
        self.resume()
    }

    /// Executes one instruction of the current thread.
    pub fn step(&self) -> Result<Stop, GdbError> {
        self.session.process().forget_reads();
        self.client().step()
    }

    /// Asks the running guest to stop: SIGUSR2 to QEMU, which its gdbstub
    /// reports as a stop (continuing with `c` then discards the signal).
    ///
    /// Here the signal goes to QEMU's main thread, the guest's main (the
    /// JavaScript) thread. Sent to the process, the kernel may hand it to
    /// another thread while the last stop's thread is still inside the
    /// stub finishing the `c` (its signals blocked): two threads then
    /// serve the one connection at once, and replies go missing, come
    /// twice or come garbled. That happened within a few hundred stops at
    /// `--interval-ms 0` on a loaded machine.
    pub fn interrupt(&self) -> Result<()> {
        match &self.host {
            GuestHost::Local(qemu) => {
                // A signal straight from this process: no `kill` program
                // (procps is not on a bare machine) and no fork per sample.
                let pid = libc::pid_t::try_from(qemu.0.id()).context("QEMU's pid")?;
                // SAFETY: tgkill(2) takes plain integers and touches no
                // memory; QEMU's main thread has the process's id.
                let sent = unsafe { libc::syscall(libc::SYS_tgkill, pid, pid, libc::SIGUSR2) };
                if sent != 0 {
                    bail!("QEMU went away");
                }
                Ok(())
            }
            GuestHost::Container(c) => c.signal("SIGUSR2").context("QEMU went away"),
        }
    }

    /// Waits for the guest to report a stop.
    pub fn wait_stop(&self) -> Result<Stop, GdbError> {
        self.client().wait_stop(STUB_TIMEOUT)
    }

    /// The stopped thread's registers.
    pub fn regs(&self) -> Result<Regs> {
        let g = self.client().registers()?;
        self.session
            .process()
            .arch
            .arch()
            .regs_from_gdb(&g)
            .context("short register reply from the gdbstub")
    }

    /// Picks up libraries the dynamic linker has loaded since the last stop.
    pub fn refresh_modules(&mut self) {
        self.session.process_mut().refresh_modules();
    }

    /// The stopped guest as the unwinder reads it.
    pub fn process(&self) -> &LiveProcess {
        self.session.process()
    }

    /// The module named `name` (file name), if loaded.
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.session
            .process()
            .modules
            .iter()
            .find(|m| m.name == name)
    }

    /// Every loaded module.
    pub fn modules(&self) -> &[Module] {
        &self.session.process().modules
    }

    /// Unwinds the stopped thread `tid` from `regs`. One V8 runtime serves
    /// the whole run: its caches validate themselves on every hit.
    pub fn unwind(&mut self, tid: u64, regs: Regs) -> ThreadStack {
        self.unwind_steps(tid, regs).0
    }

    /// [`Self::unwind`] within `budget`: once it has passed, memory reads
    /// fail and the walk ends there, its stop reason saying so.
    pub fn unwind_within(&mut self, tid: u64, regs: Regs, budget: Duration) -> ThreadStack {
        self.refresh_modules();
        self.session.find_v8();
        // Finding V8 reads its layout once, outside the budget.
        let end = Instant::now() + budget;
        self.session.process().budget_end.set(Some(end));
        let mut t = self.session.unwind_steps(tid as u32, false, regs).0;
        self.session.process().budget_end.set(None);
        if Instant::now() > end {
            t.stop = cw::StopReason::Error(format!(
                "over the stop's time budget of {} ms",
                budget.as_millis()
            ));
        }
        t
    }

    /// [`Self::unwind`], also returning the registers each step started
    /// from with the index of its first frame.
    pub fn unwind_steps(&mut self, tid: u64, regs: Regs) -> (ThreadStack, Vec<(usize, Regs)>) {
        self.refresh_modules();
        // V8 may not be set up at the first stops: look again until found.
        self.session.find_v8();
        self.session.unwind_steps(tid as u32, false, regs)
    }

    /// Runs `f` with the process's V8 runtime (None before V8 is found).
    pub fn with_v8<R>(&self, f: impl FnOnce(&cw::v8::V8Runtime, &LiveProcess) -> R) -> Option<R> {
        self.session.v8().map(|v| f(v, self.session.process()))
    }

    /// A self-contained snapshot of the stopped thread (unwound afresh, so
    /// that every read lands in the snapshot).
    pub fn snapshot(
        &mut self,
        tid: u64,
        regs: Regs,
        meta: BTreeMap<String, String>,
    ) -> (cw::snapshot::Snapshot, cw::StackReport) {
        self.refresh_modules();
        let thread = StoppedThread {
            tid: tid as u32,
            signal: 0,
            regs,
        };
        cw::snapshot::record_threads(self.session.process(), &[thread], Vec::new(), meta, None)
    }
}

/// Reads a file the guest wrote, for messages; empty when unreadable.
pub fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
