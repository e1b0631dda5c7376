//! One unwinding session: a stopped process (a core, a snapshot, a live
//! stop), the V8 runtime found in its executable with its caches, the
//! emulator, and the caller's trace sink, wired the same way whatever the
//! process is. The V8 runtime outlives a stop, so the samples of a live
//! process reuse its caches (which validate themselves on every hit).

use crate::arch::{ArchKind, Regs};
use crate::frame::ThreadStack;
use crate::unwind::{FrameEmulator, Process, TraceSink, Unwinder};
use crate::v8::V8Runtime;

/// One stopped thread: what an unwind starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedThread {
    /// Thread id.
    pub tid: u32,
    /// Signal that stopped this thread (a core's `pr_cursig`); non-zero for
    /// the thread that crashed.
    pub signal: u16,
    /// Registers when the thread stopped.
    pub regs: Regs,
}

/// Index of the thread that received the fatal signal (the first thread if
/// none did).
pub fn crashed_index(threads: &[StoppedThread]) -> usize {
    threads.iter().position(|t| t.signal != 0).unwrap_or(0)
}

/// Everything one unwind of a stopped process found.
pub struct StackReport {
    /// Architecture of the process.
    pub arch: ArchKind,
    /// Every thread's stack, crashed thread first.
    pub threads: Vec<ThreadStack>,
    /// V8 version found in the executable, if any.
    pub v8_version: Option<String>,
    /// Problems that did not stop the unwind (missing modules, no V8).
    pub warnings: Vec<String>,
}

/// The unwinder bound to one process source, kept across its stops.
pub struct Session<P: Process> {
    process: P,
    v8: Option<V8Runtime>,
    /// Why V8 was not found, at the last look.
    v8_problem: Option<String>,
    looked_for_v8: bool,
    emulator: Option<Box<dyn FrameEmulator>>,
    trace: Option<TraceSink>,
    async_callers: bool,
}

impl<P: Process> Session<P> {
    /// A session over `process`, with the emulator when the `unicorn`
    /// feature is on. V8 is looked for at the first unwind.
    pub fn new(process: P) -> Self {
        let emulator = default_emulator(process.arch().kind());
        Session {
            process,
            v8: None,
            v8_problem: None,
            looked_for_v8: false,
            emulator,
            trace: None,
            async_callers: true,
        }
    }

    /// Whether stacks get the awaiting callers V8 prints as `at async`
    /// (on by default).
    pub fn with_async_callers(mut self, on: bool) -> Self {
        self.async_callers = on;
        self
    }

    /// [`Self::with_async_callers`] on a session in use.
    pub fn set_async_callers(&mut self, on: bool) {
        self.async_callers = on;
    }

    /// Sends one line per unwind step to `trace`, when given.
    pub fn with_trace(mut self, trace: Option<TraceSink>) -> Self {
        self.trace = trace;
        self
    }

    /// The process being unwound.
    pub fn process(&self) -> &P {
        &self.process
    }

    /// The process, to update between stops (a live process's modules).
    pub fn process_mut(&mut self) -> &mut P {
        &mut self.process
    }

    /// Ends the session, giving the process back.
    pub fn into_process(self) -> P {
        self.process
    }

    /// The V8 runtime, once found.
    pub fn v8(&self) -> Option<&V8Runtime> {
        self.v8.as_ref()
    }

    /// Looks for V8 in the executable unless it was found already: a live
    /// process calls this at every stop, since V8 may not be set up yet at
    /// the first ones.
    pub fn find_v8(&mut self) -> Option<&V8Runtime> {
        self.looked_for_v8 = true;
        if self.v8.is_none() {
            if let Some(exe) = self.process.executable() {
                match V8Runtime::new(exe, &self.process) {
                    Ok(v8) => {
                        self.v8 = Some(v8);
                        self.v8_problem = None;
                    }
                    Err(e) => self.v8_problem = Some(format!("no V8 frames: {e}")),
                }
            }
        }
        self.v8.as_ref()
    }

    /// Why V8 was not found, at the last look.
    pub fn v8_problem(&self) -> Option<&str> {
        self.v8_problem.as_deref()
    }

    /// Unwinds one thread from its registers.
    pub fn unwind_thread(&mut self, tid: u32, crashed: bool, regs: Regs) -> ThreadStack {
        self.with_unwinder(|u| u.unwind(tid, crashed, regs))
    }

    /// [`Self::unwind_thread`], also returning the registers each step
    /// started from with the index of the first frame that step produced.
    pub fn unwind_steps(
        &mut self,
        tid: u32,
        crashed: bool,
        regs: Regs,
    ) -> (ThreadStack, Vec<(usize, Regs)>) {
        self.with_unwinder(|u| u.unwind_steps(tid, crashed, regs))
    }

    /// Unwinds every thread, crashed thread first. The report's warnings
    /// say when the executable has no usable V8.
    pub fn unwind_all(&mut self, threads: &[StoppedThread]) -> StackReport {
        if !self.looked_for_v8 {
            self.find_v8();
        }
        let crashed = crashed_index(threads);
        let mut order: Vec<usize> = (0..threads.len()).collect();
        order.sort_by_key(|&i| i != crashed);
        let stacks = order
            .into_iter()
            .map(|i| {
                let t = &threads[i];
                self.unwind_thread(t.tid, i == crashed, t.regs)
            })
            .collect();
        self.report_of(stacks)
    }

    /// The report of stacks unwound one at a time (a running process's
    /// threads, each stopped for its own walk), in the order given.
    pub fn report_of(&mut self, stacks: Vec<ThreadStack>) -> StackReport {
        StackReport {
            arch: self.process.arch().kind(),
            threads: stacks,
            v8_version: self.v8.as_ref().map(|v| v.layout.version_string.clone()),
            warnings: self.v8_problem.iter().cloned().collect(),
        }
    }

    /// Lends the V8 runtime, emulator and trace sink to an unwinder over
    /// the process for one unwind, and takes them back.
    fn with_unwinder<R>(&mut self, unwind: impl FnOnce(&Unwinder<'_, P>) -> R) -> R {
        if !self.looked_for_v8 {
            self.find_v8();
        }
        let mut unwinder = Unwinder::new(&self.process, self.v8.take());
        unwinder.emulator = self.emulator.take();
        unwinder.trace = self.trace.take();
        unwinder.async_callers = self.async_callers;
        let out = unwind(&unwinder);
        self.emulator = unwinder.emulator.take();
        self.trace = unwinder.trace.take();
        self.v8 = unwinder.into_v8();
        out
    }
}

#[cfg(feature = "unicorn")]
fn default_emulator(arch: ArchKind) -> Option<Box<dyn FrameEmulator>> {
    Some(Box::new(crate::emulate::Emulator {
        arch,
        budget: crate::emulate::DEFAULT_BUDGET,
    }))
}

#[cfg(not(feature = "unicorn"))]
fn default_emulator(_arch: ArchKind) -> Option<Box<dyn FrameEmulator>> {
    None
}
