//! The walker: steps from frame to frame with DWARF CFI for native code,
//! V8's frame layout for builtins and JIT code, and frame records where
//! nothing better exists, with checks that the stack only moves outwards.

use crate::address::FrameAddress;
use crate::arch::{Arch, Regs};
use crate::cfi::{CompiledRow, RegRule};
use crate::error::Result;
use crate::frame::{Frame, FrameKind, Method, StopReason, ThreadStack};
use crate::memory::Memory;
use crate::module::Module;
use crate::v8::step::StepContext;
use crate::v8::V8Runtime;

/// What the walker needs from a stopped process.
pub trait Process: Memory {
    /// The architecture of the process.
    fn arch(&self) -> &'static dyn Arch;
    /// The module mapped at `addr`.
    fn module_at(&self, addr: u64) -> Option<&Module>;
    /// Every module mapped, executable first when known.
    fn modules(&self) -> &[Module];
    /// The main executable, whose V8 names the JavaScript frames.
    fn executable(&self) -> Option<&Module> {
        self.modules().first()
    }
}

impl<P: Process + ?Sized> Process for &P {
    fn arch(&self) -> &'static dyn Arch {
        (**self).arch()
    }
    fn module_at(&self, addr: u64) -> Option<&Module> {
        (**self).module_at(addr)
    }
    fn modules(&self) -> &[Module] {
        (**self).modules()
    }
    fn executable(&self) -> Option<&Module> {
        (**self).executable()
    }
}

/// Finds a frame's caller by running its code forward (the `unicorn`
/// feature provides one); used where unwind metadata is missing or the
/// frame's state contradicts it.
pub trait FrameEmulator {
    /// The caller's registers, if the function returned.
    fn caller(&self, regs: &Regs, mem: &dyn Memory) -> Option<Regs>;
}

/// A sink for `--trace` lines.
pub type TraceSink = Box<dyn Fn(&str)>;

/// Default bound on frames per thread.
pub const DEFAULT_MAX_FRAMES: usize = 8192;

/// Walks thread stacks of one process.
pub struct Unwinder<'p, P: Process> {
    process: &'p P,
    arch: &'static dyn Arch,
    v8: Option<V8Runtime>,
    /// Most frames one thread may have.
    pub max_frames: usize,
    /// Receives one line per step, for `--trace` debugging output.
    pub trace: Option<TraceSink>,
    /// Emulation for frames the metadata cannot step.
    pub emulator: Option<Box<dyn FrameEmulator>>,
    /// Whether to add the awaiting callers V8 prints as `at async`
    /// (`Frame::is_async`); on by default.
    pub async_callers: bool,
}

impl<'p, P: Process> Unwinder<'p, P> {
    /// An unwinder over `process`; `v8` is the V8 bound to its executable,
    /// when it has one.
    pub fn new(process: &'p P, v8: Option<V8Runtime>) -> Self {
        Unwinder {
            process,
            arch: process.arch(),
            v8,
            max_frames: DEFAULT_MAX_FRAMES,
            trace: None,
            emulator: None,
            async_callers: true,
        }
    }

    /// The V8 runtime, if the executable embeds V8.
    pub fn v8(&self) -> Option<&V8Runtime> {
        self.v8.as_ref()
    }

    /// Gives the V8 runtime (and its caches) back, to reuse across the
    /// samples of a live process.
    pub fn into_v8(self) -> Option<V8Runtime> {
        self.v8
    }

    /// Unwinds one thread from its registers.
    pub fn unwind(&self, tid: u32, crashed: bool, regs: Regs) -> ThreadStack {
        let mut frames = Vec::new();
        let stop = self.walk(regs, &mut frames, None);
        ThreadStack {
            tid,
            crashed,
            frames,
            stop,
        }
    }

    /// Unwinds one thread and also returns the registers each step started
    /// from, with the index of the first frame that step produced (a step
    /// of optimized code yields several frames when calls were inlined).
    pub fn unwind_steps(
        &self,
        tid: u32,
        crashed: bool,
        regs: Regs,
    ) -> (ThreadStack, Vec<(usize, Regs)>) {
        let mut frames = Vec::new();
        let mut steps = Vec::new();
        let stop = self.walk(regs, &mut frames, Some(&mut steps));
        (
            ThreadStack {
                tid,
                crashed,
                frames,
                stop,
            },
            steps,
        )
    }

    fn walk(
        &self,
        regs: Regs,
        frames: &mut Vec<Frame>,
        mut steps: Option<&mut Vec<(usize, Regs)>>,
    ) -> StopReason {
        let arch = self.arch;
        let mut regs = regs;
        let mut method = Method::Context;
        // The stack pointer never goes down (`check_progress`), so a frame
        // can only repeat one seen at the same stack pointer: only those
        // are kept.
        let mut at_this_sp: Vec<(u64, u64)> = Vec::new();
        let mut this_sp = None;
        for depth in 0..self.max_frames {
            let (Some(pc), Some(sp)) = (regs.pc(arch), regs.sp(arch)) else {
                return StopReason::Error("program counter or stack pointer unknown".into());
            };
            if pc == 0 {
                return StopReason::NullCaller;
            }
            if this_sp != Some(sp) {
                this_sp = Some(sp);
                at_this_sp.clear();
            }
            let frame_key = (pc, regs.fp(arch).unwrap_or(0));
            if at_this_sp.contains(&frame_key) {
                return StopReason::Error(format!("stack loops at pc {pc:#x} sp {sp:#x}"));
            }
            at_this_sp.push(frame_key);
            let address = FrameAddress::at_depth(depth, pc);
            if let Some(st) = steps.as_deref_mut() {
                st.push((frames.len(), regs));
            }
            if let Some(t) = &self.trace {
                t(&format!("step {depth}: {regs:?}"));
            }
            // V8 classifies frames by the exact return address
            // (StackFrame::ComputeType): the deoptimizer returns into the
            // very start of InterpreterEnterAtNextBytecode, where the
            // return address's lookup address would name the builtin before
            // it.
            if let Some(v8) = &self.v8 {
                if self.process.module_at(pc).is_none() {
                    v8.locate_builtin_copy(pc, self.process);
                }
            }
            let step = if self.is_v8_builtin(pc) {
                self.v8_step(address, &regs, method, frames)
            } else {
                match self.process.module_at(address.lookup()) {
                    Some(m) => self.native_step(m, address, &regs, method, frames),
                    None => self.v8_step(address, &regs, method, frames),
                }
            };
            let (caller, next_method) = match step {
                Ok(Some(c)) => c,
                Ok(None) => return StopReason::EndOfStack,
                Err(e) => return StopReason::Error(e.to_string()),
            };
            match self.check_progress(&regs, &caller) {
                Ok(true) => {}
                Ok(false) => return StopReason::NullCaller,
                Err(e) => return StopReason::Error(e),
            }
            regs = caller;
            method = next_method;
        }
        StopReason::FrameLimit
    }

    fn is_v8_builtin(&self, pc: u64) -> bool {
        self.v8.as_ref().is_some_and(|v| v.builtin_at(pc).is_some())
    }

    /// The caller must have a higher stack pointer (stacks grow down), and
    /// a non-zero pc; a zero frame pointer with a zero pc ends the stack.
    fn check_progress(&self, callee: &Regs, caller: &Regs) -> std::result::Result<bool, String> {
        let arch = self.arch;
        let pc = caller.pc(arch).unwrap_or(0);
        if pc == 0 {
            return Ok(false);
        }
        let (Some(sp0), Some(sp1)) = (callee.sp(arch), caller.sp(arch)) else {
            return Err("stack pointer unknown after step".into());
        };
        if sp1 < sp0 {
            return Err(format!(
                "caller's stack pointer {sp1:#x} is below the callee's {sp0:#x}"
            ));
        }
        Ok(true)
    }

    fn native_step(
        &self,
        module: &Module,
        address: FrameAddress,
        regs: &Regs,
        method: Method,
        frames: &mut Vec<Frame>,
    ) -> Result<Option<(Regs, Method)>> {
        let lookup = address.lookup();
        let mut frame = Frame::new(FrameKind::Native, address.pc(), method);
        frame.module = Some(module_basename(&module.name));
        frame.symbol = module.symbolize(lookup).map(|s| s.name);
        let in_plt = frame.symbol.as_deref().is_some_and(|s| s.ends_with("@plt"));
        frames.push(frame);
        if let Some(row) = module.cfi_row(lookup) {
            return self.apply_cfi(&row, regs, address);
        }
        // PLT stubs have no CFI and jump on without touching the stack: one
        // stopped in is still the innermost frame, its return address in
        // the link register or on top of the stack.
        if !address.is_return_address() && in_plt {
            let caller = self.arch.frameless_caller(regs, self.process)?;
            return Ok(Some((caller, Method::Lr)));
        }
        // No CFI. A zero frame pointer ends the chain: the kernel and
        // thread start-up code clear it in the outermost frame.
        if regs.fp(self.arch).unwrap_or(0) == 0 {
            return Ok(None);
        }
        // Run the function forward when an emulator is available, else
        // follow the frame record.
        if let Some(emu) = &self.emulator {
            if let Some(caller) = emu.caller(regs, self.process) {
                return Ok(Some((caller, Method::Emulated)));
            }
        }
        let caller = self.arch.frame_record_caller(regs, self.process)?;
        // Without CFI the frame pointer may be anything (a thread just out
        // of clone3 has its struct pthread there): a record whose return
        // address is in no module and no V8 code ends the stack instead.
        let ra = caller.pc(self.arch).unwrap_or(0);
        if self.process.module_at(ra).is_none()
            && !self
                .v8
                .as_ref()
                .is_some_and(|v| v.is_code_at(ra, self.process))
        {
            return Ok(None);
        }
        Ok(Some((caller, Method::FramePointer)))
    }

    fn apply_cfi(
        &self,
        row: &CompiledRow,
        regs: &Regs,
        address: FrameAddress,
    ) -> Result<Option<(Regs, Method)>> {
        let arch = self.arch;
        let base = regs.get(row.cfa_reg).ok_or_else(|| {
            crate::error::Error::Other(format!("CFA register {} unknown", row.cfa_reg))
        })?;
        let cfa = base.wrapping_add_signed(row.cfa_offset);
        let mut caller = *regs;
        let mut ra_rule = None;
        for &(reg, rule) in &row.rules {
            if reg == arch.ra_column() {
                ra_rule = Some(rule);
            }
            match rule {
                RegRule::Same => {}
                RegRule::Undefined => caller.clear(reg),
                RegRule::AtCfa(o) => {
                    caller.set(reg, self.process.read_u64(cfa.wrapping_add_signed(o))?)
                }
                RegRule::ValCfa(o) => caller.set(reg, cfa.wrapping_add_signed(o)),
                RegRule::InReg(r) => match regs.get(r) {
                    Some(v) => caller.set(reg, v),
                    None => caller.clear(reg),
                },
            }
        }
        // gimli drops `DW_CFA_undefined` rules, so "no rule" is what an
        // explicitly undefined return address (the end of the stack, as in
        // `_start` and `thread_start`) looks like. A frame that made a call
        // must have saved its return address, so for a frame at a return
        // address no rule means the end; a frame stopped at an instruction
        // on a link-register machine still has it in LR.
        match ra_rule {
            Some(RegRule::Undefined) => return Ok(None),
            None if address.is_return_address() || arch.link_reg().is_none() => return Ok(None),
            _ => {}
        }
        let ret = caller.get(arch.ra_column()).unwrap_or(0);
        caller.set(arch.pc_reg(), arch.strip_code_ptr(ret));
        caller.set(arch.sp_reg(), cfa);
        Ok(Some((caller, Method::Cfi)))
    }

    /// Steps past a frame in V8 code (or in no module, where only V8's
    /// JIT code can be): the V8 runtime decides, see `v8/step.rs`.
    fn v8_step(
        &self,
        address: FrameAddress,
        regs: &Regs,
        method: Method,
        frames: &mut Vec<Frame>,
    ) -> Result<Option<(Regs, Method)>> {
        let arch = self.arch;
        let Some(v8) = self.v8.as_ref() else {
            frames.push(Frame::new(FrameKind::Unknown, address.pc(), method));
            let caller = arch.frame_record_caller(regs, self.process)?;
            return Ok(Some((caller, Method::FramePointer)));
        };
        let emulate = |r: &Regs| self.emulator.as_ref()?.caller(r, self.process);
        let cx = StepContext {
            arch,
            mem: self.process,
            emulate: &emulate,
            async_callers: self.async_callers,
        };
        v8.step(&cx, address, regs, method, frames)
    }
}

fn module_basename(name: &str) -> String {
    std::path::Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string())
}
