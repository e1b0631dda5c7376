//! A running process on this host, read with ptrace while it keeps
//! running: each thread is stopped on its own (`PTRACE_SEIZE` plus
//! `PTRACE_INTERRUPT`) only for its own walk, its registers are read with
//! `PTRACE_GETREGSET`, memory with `process_vm_readv`, and the modules
//! from `/proc/PID/maps`. Detaching resumes a thread as it was, with any
//! signal that arrived meanwhile delivered.
//!
//! The syscalls go through `nix`, the maintained safe wrapper; only
//! `PTRACE_GETREGSET` is called through `libc`, into a byte buffer, so
//! that one parser (a core's `NT_PRSTATUS` layout) serves both
//! architectures.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::modules::{first_vaddr, open_executable, open_module, ModuleResolver, AT_PHDR};
use crate::arch::{Arch, ArchKind, Regs};
use crate::error::{Error, Result};
use crate::frame::ThreadStack;
use crate::memory::Memory;
use crate::module::Module;
use crate::session::{Session, StackReport, StoppedThread};
use crate::unwind::Process;

/// Lines of `/proc/PID/maps` read at most.
const MAX_MAPPINGS: usize = 1 << 17;
/// Threads unwound at most.
const MAX_THREADS: usize = 1 << 14;
/// How long a thread may take to stop once interrupted: one in an
/// uninterruptible sleep (disk I/O) stops when the sleep ends.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// Between polls for a thread's stop.
const STOP_POLL: Duration = Duration::from_micros(20);
/// Bytes of the largest `pr_reg` area (aarch64: 34 registers).
const PR_REG_BYTES: usize = 34 * 8;

/// One mapping of `/proc/PID/maps`.
#[derive(Debug, Clone)]
struct Mapping {
    start: u64,
    end: u64,
    readable: bool,
    offset: u64,
    path: Option<String>,
}

/// A running process on this host: its memory (read without stopping it),
/// its mappings and modules as they were when it was opened.
pub struct PtraceProcess {
    /// The process id.
    pub pid: u32,
    /// The executable as the process names it (`/proc/PID/exe`).
    pub exe_path: PathBuf,
    /// Modules opened for it, sorted by start.
    pub modules: Vec<Module>,
    /// Modules it maps that could not be opened; unwinding goes on
    /// without them.
    pub missing: Vec<String>,
    arch: ArchKind,
    mappings: Vec<Mapping>,
    exe_start: u64,
}

/// One thread stopped by [`PtraceProcess::stop_thread`]; dropping it
/// resumes the thread.
pub struct ThreadStop {
    /// The thread and its registers.
    pub thread: StoppedThread,
    stopped_at: Instant,
    /// A signal that arrived while stopping, delivered on resume.
    pending: Option<Signal>,
}

impl ThreadStop {
    /// How long the thread has been stopped.
    pub fn stopped_for(&self) -> Duration {
        self.stopped_at.elapsed()
    }
}

impl Drop for ThreadStop {
    fn drop(&mut self) {
        // A thread that exited meanwhile has nothing to resume.
        let _ = ptrace::detach(Pid::from_raw(self.thread.tid as i32), self.pending);
    }
}

/// What one pass over a running process's threads found.
pub struct LiveCapture {
    /// Every thread's stack, the main thread first.
    pub report: StackReport,
    /// The registers each walk started from, in the report's order.
    pub threads: Vec<StoppedThread>,
    /// How long each thread was stopped, in the report's order.
    pub stopped_for: Vec<Duration>,
}

impl PtraceProcess {
    /// Opens process `pid` of this host's architecture: its mappings and
    /// modules (the executable through `/proc/PID/exe`, so it is found
    /// even if moved). Nothing is stopped yet.
    pub fn open(pid: u32, resolver: &ModuleResolver) -> Result<PtraceProcess> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        if !proc_dir.exists() {
            return Err(gone(pid));
        }
        let exe_link = proc_dir.join("exe");
        let exe_path = std::fs::read_link(&exe_link).map_err(|e| Error::Process {
            pid,
            what: format!(
                "cannot read {}: {e} (is it another user's process? run as its user or as root)",
                exe_link.display()
            ),
        })?;
        let exe_file = resolver.exe.clone().unwrap_or(exe_link);
        let at_phdr = read_auxv(&proc_dir.join("auxv"), pid)?
            .into_iter()
            .find(|&(k, _)| k == AT_PHDR)
            .map(|(_, v)| v);
        let mut exe = open_executable(&exe_file, at_phdr)?;
        // Opened through /proc/PID/exe (which holds even if the file was
        // moved or replaced), but named by where the process started it.
        exe.path = exe_path.clone();
        exe.name = exe_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(exe.name);
        let host = host_arch().ok_or_else(|| Error::Process {
            pid,
            what: "this host's architecture cannot be unwound (only x86-64 and arm64)".into(),
        })?;
        if exe.arch != host {
            return Err(Error::Process {
                pid,
                what: format!(
                    "{} is for {} but this host is {}: ptrace reads only this host's architecture",
                    exe_path.display(),
                    exe.arch.name(),
                    host.name()
                ),
            });
        }
        let mappings = read_maps(&proc_dir.join("maps"), pid)?;
        let mut proc = PtraceProcess {
            pid,
            arch: exe.arch,
            exe_start: exe.start,
            modules: vec![exe],
            missing: Vec::new(),
            mappings,
            exe_path,
        };
        proc.open_libraries(resolver);
        proc.modules.sort_by_key(|m| m.start);
        Ok(proc)
    }

    /// Opens every file mapped from its first page, as a core's `NT_FILE`
    /// list is read.
    fn open_libraries(&mut self, resolver: &ModuleResolver) {
        let mut seen = std::collections::HashSet::new();
        let owner = PathBuf::from(format!("/proc/{}", self.pid));
        for m in &self.mappings {
            let Some(path) = &m.path else { continue };
            if m.offset != 0
                || m.start == self.exe_start
                || Path::new(path) == self.exe_path
                || !seen.insert(path.clone())
            {
                continue;
            }
            let start = m.start;
            match open_module(resolver, path, &owner, self.arch, |f| {
                start.wrapping_sub(first_vaddr(f))
            }) {
                Ok(module) => self.modules.push(module),
                Err(e) => self.missing.push(e.to_string()),
            }
        }
    }

    /// The process's threads, by id, main thread first.
    pub fn thread_ids(&self) -> Result<Vec<u32>> {
        let dir = format!("/proc/{}/task", self.pid);
        let entries = std::fs::read_dir(&dir).map_err(|_| gone(self.pid))?;
        let mut tids: Vec<u32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .take(MAX_THREADS)
            .collect();
        tids.sort_by_key(|&t| (t != self.pid, t));
        Ok(tids)
    }

    /// Stops thread `tid` and reads its registers. The thread runs again
    /// when the returned stop is dropped, whatever happens in between. (A
    /// thread that never stopped cannot be detached from: it stays traced,
    /// though running, until this process exits.)
    pub fn stop_thread(&self, tid: u32) -> Result<ThreadStop> {
        let thread = Pid::from_raw(tid as i32);
        ptrace::seize(thread, ptrace::Options::empty()).map_err(|e| self.attach_error(tid, e))?;
        // From here the thread is traced: the stop detaches it when dropped.
        let mut stop = ThreadStop {
            thread: StoppedThread {
                tid,
                signal: 0,
                regs: Regs::default(),
            },
            stopped_at: Instant::now(),
            pending: None,
        };
        ptrace::interrupt(thread).map_err(|e| self.thread_error(tid, "interrupting", e))?;
        stop.pending = self.wait_for_stop(thread)?;
        stop.stopped_at = Instant::now();
        stop.thread.regs = read_registers(self.arch.arch(), thread)
            .map_err(|e| self.thread_error(tid, "reading registers", e))?;
        Ok(stop)
    }

    /// Waits for an interrupted thread's stop; a signal it stopped for
    /// instead is returned, to be delivered on resume.
    fn wait_for_stop(&self, thread: Pid) -> Result<Option<Signal>> {
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let status = waitpid(thread, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG))
                .map_err(|e| {
                    self.thread_error(thread.as_raw() as u32, "waiting for its stop", e)
                })?;
            match status {
                WaitStatus::PtraceEvent(..) => return Ok(None),
                // A signal on its way to the thread (even a SIGSTOP someone
                // sent): delivered when the thread is let go.
                WaitStatus::Stopped(_, signal) => return Ok(Some(signal)),
                WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                    return Err(Error::Process {
                        pid: self.pid,
                        what: format!("thread {thread} exited while being stopped"),
                    })
                }
                _ if Instant::now() >= deadline => {
                    return Err(Error::Process {
                        pid: self.pid,
                        what: format!(
                            "thread {thread} did not stop within {STOP_TIMEOUT:?} (in an uninterruptible sleep?)"
                        ),
                    })
                }
                _ => std::thread::sleep(STOP_POLL),
            }
        }
    }

    /// Unwinds every thread through `session` (over this process, or a
    /// recording of it), stopping each thread only for its own walk. V8 is
    /// looked for first, while nothing is stopped. Threads that exit
    /// meanwhile are skipped with a warning.
    pub fn unwind_threads<P: Process>(&self, session: &mut Session<P>) -> Result<LiveCapture> {
        session.find_v8();
        let mut stacks: Vec<ThreadStack> = Vec::new();
        let mut threads = Vec::new();
        let mut stopped_for = Vec::new();
        let mut skipped = Vec::new();
        for tid in self.thread_ids()? {
            let stop = match self.stop_thread(tid) {
                Ok(stop) => stop,
                Err(e) if self.thread_gone(tid) => {
                    skipped.push(format!("thread {tid} exited before it was unwound ({e})"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            stacks.push(session.unwind_thread(tid, false, stop.thread.regs));
            stopped_for.push(stop.stopped_for());
            threads.push(stop.thread.clone());
        }
        if stacks.is_empty() {
            return Err(gone(self.pid));
        }
        let mut report = session.report_of(stacks);
        report.warnings.extend(self.missing.iter().cloned());
        report.warnings.extend(skipped);
        Ok(LiveCapture {
            report,
            threads,
            stopped_for,
        })
    }

    fn thread_gone(&self, tid: u32) -> bool {
        !Path::new(&format!("/proc/{}/task/{tid}", self.pid)).exists()
    }

    fn thread_error(&self, tid: u32, doing: &str, e: Errno) -> Error {
        if e == Errno::ESRCH && self.thread_gone(tid) {
            return gone(self.pid);
        }
        Error::Process {
            pid: self.pid,
            what: format!("thread {tid}: {doing}: {e}"),
        }
    }

    /// Why `PTRACE_SEIZE` failed, with what to do about it.
    fn attach_error(&self, tid: u32, e: Errno) -> Error {
        let what = match e {
            Errno::EPERM => format!("ptrace is not permitted: {}", self.permission_hint()),
            Errno::ESRCH => return gone(self.pid),
            e => format!("attaching to thread {tid}: {e}"),
        };
        Error::Process {
            pid: self.pid,
            what,
        }
    }

    /// The likely reason ptrace was refused, from what `/proc` shows.
    fn permission_hint(&self) -> String {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let tracer = status
            .lines()
            .find_map(|l| l.strip_prefix("TracerPid:"))
            .map(str::trim)
            .filter(|t| *t != "0");
        if let Some(tracer) = tracer {
            return format!(
                "it is already traced by process {tracer} (a debugger?); detach that first"
            );
        }
        let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let yama = match scope.as_str() {
            "1" => "kernel.yama.ptrace_scope is 1, which lets only a parent trace: run as root or with CAP_SYS_PTRACE, or set it to 0 (sysctl kernel.yama.ptrace_scope=0)",
            "2" => "kernel.yama.ptrace_scope is 2, which needs CAP_SYS_PTRACE: run as root",
            "3" => "kernel.yama.ptrace_scope is 3, which forbids ptrace until reboot",
            _ => "run as the process's user or as root (CAP_SYS_PTRACE)",
        };
        format!("{yama}; in a container, add --cap-add=SYS_PTRACE (and a seccomp profile that allows ptrace)")
    }

    /// The main executable.
    pub fn executable(&self) -> Option<&Module> {
        self.modules.iter().find(|m| m.start == self.exe_start)
    }
}

impl Memory for PtraceProcess {
    fn mapping_at(&self, addr: u64) -> Option<(u64, u64)> {
        let idx = self.mappings.partition_point(|m| m.start <= addr);
        let m = self.mappings.get(idx.checked_sub(1)?)?;
        (m.readable && addr < m.end).then_some((m.start, m.end))
    }

    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let unmapped = Error::Unmapped {
            addr,
            len: buf.len(),
        };
        if buf.is_empty() {
            return Ok(());
        }
        let Ok(base) = usize::try_from(addr) else {
            return Err(unmapped);
        };
        let remote = [RemoteIoVec {
            base,
            len: buf.len(),
        }];
        let len = buf.len();
        match process_vm_readv(
            Pid::from_raw(self.pid as i32),
            &mut [std::io::IoSliceMut::new(buf)],
            &remote,
        ) {
            Ok(n) if n == len => Ok(()),
            _ => Err(unmapped),
        }
    }
}

impl Process for PtraceProcess {
    fn arch(&self) -> &'static dyn Arch {
        self.arch.arch()
    }
    fn module_at(&self, addr: u64) -> Option<&Module> {
        crate::module::module_containing(&self.modules, addr)
    }
    fn modules(&self) -> &[Module] {
        &self.modules
    }
    fn executable(&self) -> Option<&Module> {
        PtraceProcess::executable(self)
    }
}

fn gone(pid: u32) -> Error {
    Error::Process {
        pid,
        what: "no such process (it exited?)".into(),
    }
}

/// The architecture this program runs on, which is the only one ptrace
/// can read.
fn host_arch() -> Option<ArchKind> {
    if cfg!(target_arch = "x86_64") {
        Some(ArchKind::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(ArchKind::Aarch64)
    } else {
        None
    }
}

/// Reads a thread's general registers (the `pr_reg` area a core holds).
fn read_registers(arch: &dyn Arch, thread: Pid) -> std::result::Result<Regs, Errno> {
    let mut raw = [0u8; PR_REG_BYTES];
    let mut iov = libc::iovec {
        iov_base: raw.as_mut_ptr().cast(),
        iov_len: raw.len(),
    };
    // SAFETY: PTRACE_GETREGSET writes at most `iov_len` bytes into
    // `iov_base`, which points at `raw`, alive for the call; the kernel
    // shrinks `iov_len` to what it wrote.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGSET,
            thread.as_raw(),
            libc::NT_PRSTATUS as usize as *mut libc::c_void,
            (&mut iov as *mut libc::iovec).cast::<libc::c_void>(),
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    let written = raw.get(..iov.iov_len.min(raw.len())).ok_or(Errno::EIO)?;
    arch.regs_from_prstatus(written).ok_or(Errno::EIO)
}

/// The (key, value) pairs of `/proc/PID/auxv`.
fn read_auxv(path: &Path, pid: u32) -> Result<Vec<(u64, u64)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::Process {
        pid,
        what: format!("cannot read {}: {e}", path.display()),
    })?;
    Ok(bytes
        .chunks_exact(16)
        .filter_map(|c| {
            let key = u64::from_ne_bytes(c.get(..8)?.try_into().ok()?);
            let value = u64::from_ne_bytes(c.get(8..)?.try_into().ok()?);
            Some((key, value))
        })
        .take_while(|&(k, _)| k != 0)
        .collect())
}

/// The mappings of `/proc/PID/maps`, sorted by start.
fn read_maps(path: &Path, pid: u32) -> Result<Vec<Mapping>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Process {
        pid,
        what: format!("cannot read {}: {e}", path.display()),
    })?;
    let mut maps: Vec<Mapping> = text
        .lines()
        .take(MAX_MAPPINGS)
        .filter_map(parse_map_line)
        .collect();
    maps.sort_by_key(|m| m.start);
    Ok(maps)
}

/// One line of `/proc/PID/maps`:
/// `start-end perms offset dev inode [path]`.
fn parse_map_line(line: &str) -> Option<Mapping> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let _dev = fields.next()?;
    let _inode = fields.next()?;
    // The path may hold spaces; a deleted file ends in " (deleted)".
    let rest: Vec<&str> = fields.collect();
    let path = (!rest.is_empty())
        .then(|| rest.join(" "))
        .filter(|p| p.starts_with('/') && !p.ends_with(" (deleted)"));
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        readable: perms.starts_with('r'),
        offset: u64::from_str_radix(offset, 16).ok()?,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_lines_parse_with_and_without_paths() {
        let lib = parse_map_line(
            "7f0000000000-7f0000021000 r-xp 00001000 08:01 1234   /usr/lib/x86_64-linux-gnu/libc.so.6",
        )
        .unwrap();
        assert_eq!(
            (lib.start, lib.end, lib.offset),
            (0x7f0000000000, 0x7f0000021000, 0x1000)
        );
        assert!(lib.readable);
        assert_eq!(
            lib.path.as_deref(),
            Some("/usr/lib/x86_64-linux-gnu/libc.so.6")
        );
        let anon = parse_map_line("7ffd0000-7ffd1000 ---p 00000000 00:00 0").unwrap();
        assert!(!anon.readable && anon.path.is_none());
        let stack = parse_map_line("7ffd0000-7ffd1000 rw-p 00000000 00:00 0  [stack]").unwrap();
        assert!(stack.path.is_none());
        let spaced = parse_map_line("1000-2000 r--p 00000000 08:01 9 /tmp/a b/lib.so").unwrap();
        assert_eq!(spaced.path.as_deref(), Some("/tmp/a b/lib.so"));
        assert!(parse_map_line("garbage").is_none());
        assert!(parse_map_line("zz-10 r--p 0 0 0").is_none());
    }
}
