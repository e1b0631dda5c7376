//! The walker: steps from frame to frame with DWARF CFI for native code,
//! V8's frame layout for builtins and JIT code, and frame records where
//! nothing better exists, with checks that the stack only moves outwards.

use std::collections::HashSet;

use crate::arch::{Arch, Regs};
use crate::cfi::{CompiledRow, RegRule};
use crate::error::Result;
use crate::frame::{Frame, FrameKind, Method, StopReason, ThreadStack};
use crate::memory::Memory;
use crate::module::Module;
use crate::v8::{V8Frame, V8Runtime};

/// What the walker needs from a stopped process.
pub trait Process: Memory {
    /// The architecture of the process.
    fn arch(&self) -> &'static dyn Arch;
    /// The module mapped at `addr`.
    fn module_at(&self, addr: u64) -> Option<&Module>;
    /// Every module mapped, executable first when known.
    fn modules(&self) -> &[Module];
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
    pub max_frames: usize,
    /// Receives one line per step, for `--trace` debugging output.
    pub trace: Option<TraceSink>,
    /// Emulation for frames the metadata cannot step.
    pub emulator: Option<Box<dyn FrameEmulator>>,
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
        let mut seen = HashSet::new();
        for depth in 0..self.max_frames {
            let (Some(pc), Some(sp)) = (regs.pc(arch), regs.sp(arch)) else {
                return StopReason::Error("program counter or stack pointer unknown".into());
            };
            if pc == 0 {
                return StopReason::NullCaller;
            }
            if !seen.insert((pc, sp, regs.fp(arch).unwrap_or(0))) {
                return StopReason::Error(format!("stack loops at pc {pc:#x} sp {sp:#x}"));
            }
            let is_leaf = depth == 0;
            if let Some(st) = steps.as_deref_mut() {
                st.push((frames.len(), regs));
            }
            if let Some(t) = &self.trace {
                t(&format!("step {depth}: {regs:?}"));
            }
            // A return address points after the call: look up the call.
            let lookup = if is_leaf { pc } else { pc - 1 };
            // V8 classifies frames by the exact return address
            // (StackFrame::ComputeType): the deoptimizer returns into the
            // very start of InterpreterEnterAtNextBytecode, where pc - 1
            // would name the builtin before it.
            if let Some(v8) = &self.v8 {
                if self.process.module_at(pc).is_none() {
                    v8.locate_builtin_copy(pc, self.process);
                }
            }
            let step = if self.is_v8_builtin(pc) {
                self.v8_step(pc, &regs, method, is_leaf, frames)
            } else {
                match self.process.module_at(lookup) {
                    Some(m) => self.native_step(m, pc, lookup, &regs, method, is_leaf, frames),
                    None => self.v8_step(pc, &regs, method, is_leaf, frames),
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

    #[allow(clippy::too_many_arguments)]
    fn native_step(
        &self,
        module: &Module,
        pc: u64,
        lookup: u64,
        regs: &Regs,
        method: Method,
        is_leaf: bool,
        frames: &mut Vec<Frame>,
    ) -> Result<Option<(Regs, Method)>> {
        let mut frame = Frame::new(FrameKind::Native, pc, method);
        frame.module = Some(module_basename(&module.name));
        frame.symbol = module.symbolize(lookup).map(|s| s.name);
        let in_plt = frame.symbol.as_deref().is_some_and(|s| s.ends_with("@plt"));
        frames.push(frame);
        if let Some(row) = module.cfi_row(lookup) {
            return self.apply_cfi(&row, regs, is_leaf);
        }
        // PLT stubs have no CFI and jump on without touching the stack.
        if is_leaf && in_plt {
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
        is_leaf: bool,
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
        // must have saved its return address, so for non-leaf frames no rule
        // means the end; a leaf on a link-register machine still has it in LR.
        match ra_rule {
            Some(RegRule::Undefined) => return Ok(None),
            None if !is_leaf || arch.link_reg().is_none() => return Ok(None),
            _ => {}
        }
        let ret = caller.get(arch.ra_column()).unwrap_or(0);
        caller.set(arch.pc_reg(), arch.strip_code_ptr(ret));
        caller.set(arch.sp_reg(), cfa);
        Ok(Some((caller, Method::Cfi)))
    }

    fn v8_step(
        &self,
        pc: u64,
        regs: &Regs,
        method: Method,
        is_leaf: bool,
        frames: &mut Vec<Frame>,
    ) -> Result<Option<(Regs, Method)>> {
        let arch = self.arch;
        let fp = regs.fp(arch).unwrap_or(0);
        let Some(v8) = self.v8.as_ref() else {
            frames.push(Frame::new(FrameKind::Unknown, pc, method));
            let caller = arch.frame_record_caller(regs, self.process)?;
            return Ok(Some((caller, Method::FramePointer)));
        };
        if is_leaf {
            if let Some(step) = self.v8_leaf_step(v8, pc, regs, method, frames) {
                return Ok(Some(step));
            }
        }
        let mut info = v8.describe(pc, fp, is_leaf, self.process);
        // Called by a frameless leaf (V8's BaselineOutOfLinePrologue
        // builds this frame's slots): until they are written the function
        // is only in the JSFunction register, still live after an LR step.
        if method == Method::Lr {
            if let V8Frame::Js(js) = &info.frame {
                let unnamed = js
                    .iter()
                    .all(|f| f.function.is_empty() && f.file.is_empty());
                if unnamed || js.iter().any(|f| f.line.is_none()) {
                    let function = v8
                        .layout
                        .js_function_register
                        .and_then(|c| arch.v8_register(c))
                        .and_then(|r| regs.get(r));
                    info.frame = v8.describe_unbuilt(pc, function, self.process);
                }
            }
        }
        if let V8Frame::Js(js) = &info.frame {
            let unplaced = js.len() == 1 && js.iter().all(|f| f.line.is_none());
            let offset = arch
                .v8_preserved_bytecode_offset_register()
                .and_then(|r| regs.get(r));
            if let (true, Some(offset)) = (unplaced, offset) {
                if let Some(frame) =
                    v8.interpreted_frame_moving_to_baseline(pc, fp, offset, self.process)
                {
                    info.frame = frame;
                }
            }
        }
        // A deoptimization entry builtin that has popped the frame it
        // deoptimizes: the function and its caller come from the
        // Deoptimizer object (the frame record at fp is gone).
        let deoptimizing = (!is_leaf && v8.is_deoptimization_entry(pc))
            .then(|| regs.sp(arch))
            .flatten()
            .and_then(|sp| arch.deoptimizer_on_stack(sp, self.process))
            .and_then(|(obj, top)| v8.deoptimizing(pc, obj, top, self.process));
        if let Some(d) = deoptimizing {
            // The slot below fp is the deoptimized frame's, not a marker.
            let builtin = V8Frame::Builtin {
                symbol: v8.builtin_at(pc).unwrap_or_default().to_string(),
                function: None,
            };
            self.push_v8_frame(v8, pc, method, builtin, frames);
            if matches!(&d.frame, V8Frame::Js(js) if !js.is_empty()) {
                self.push_v8_frame(v8, pc, Method::V8, d.frame, frames);
            }
            let mut caller = *regs;
            caller.set(arch.fp_reg(), d.caller_fp);
            caller.set(arch.sp_reg(), d.caller_sp);
            caller.set(arch.pc_reg(), d.caller_pc);
            if let Some(lr) = arch.link_reg() {
                caller.set(lr, d.caller_pc);
            }
            return Ok(Some((caller, Method::V8)));
        }
        self.push_v8_frame(v8, pc, method, info.frame, frames);
        let caller = if info.is_entry {
            arch.v8_entry_frame_caller(fp, self.process)?
        } else {
            arch.frame_record_caller(regs, self.process)?
        };
        if caller.fp(arch) == Some(0) && caller.pc(arch) == Some(0) {
            return Ok(None);
        }
        Ok(Some((caller, Method::V8)))
    }

    /// A leaf in V8 code whose frame record is not (or no longer) in
    /// place: the return address is in the link register. A frame record
    /// that cannot be this frame's (fp below sp, or far above it) is a
    /// contradiction too; then emulation decides.
    fn v8_leaf_step(
        &self,
        v8: &V8Runtime,
        pc: u64,
        regs: &Regs,
        method: Method,
        frames: &mut Vec<Frame>,
    ) -> Option<(Regs, Method)> {
        const MAX_CODE: u64 = 1 << 20;
        const MAX_FRAME_SPAN: u64 = 16 << 20;
        let arch = self.arch;
        let (sp, fp) = (regs.sp(arch)?, regs.fp(arch).unwrap_or(0));
        let function = v8
            .layout
            .js_function_register
            .and_then(|c| arch.v8_register(c))
            .and_then(|r| regs.get(r));
        // The code's start: its builtin symbol, or the code of the function
        // in the JSFunction register (set on entry), or a scan back.
        let code_start = v8
            .builtin_at(pc)
            .and(v8.code_start(pc, self.process))
            .or_else(|| function.and_then(|f| v8.function_code_start(f, pc, self.process)))
            .or_else(|| v8.code_start(pc, self.process));
        let state = code_start.filter(|&s| pc - s < MAX_CODE).and_then(|start| {
            let before = self.process.read_vec(start, (pc - start) as usize).ok()?;
            let mut after = vec![0u8; 64];
            let n = (1..=64usize)
                .rev()
                .find(|&n| self.process.read(pc, &mut after[..n]).is_ok())?;
            after.truncate(n);
            Some(arch.leaf_frame(&before, &after))
        });
        // On-stack-replaced code runs in the frame its loop was entered
        // in: what its instructions before the pc say does not apply. It
        // shows as a link register pointing back into the same code (a
        // call it made earlier, before or after the pc as the loop goes
        // round), which is checked first, as it is cheap.
        let state = match (state, code_start) {
            (Some(crate::arch::LeafFrame::NotBuilt { .. }), Some(start))
                if fp >= sp
                    && fp - sp < MAX_FRAME_SPAN
                    && self
                        .link_register(regs)
                        .filter(|lr| (start..start.saturating_add(MAX_CODE)).contains(lr))
                        .is_some_and(|lr| {
                            v8.osr_code_end(start, self.process)
                                .is_some_and(|end| lr < end)
                        }) =>
            {
                Some(crate::arch::LeafFrame::RecordOnly)
            }
            (state, _) => state,
        };
        let (caller, next_method) = match state {
            Some(crate::arch::LeafFrame::NotBuilt { sp_adjust }) => {
                let mut caller = arch.frameless_caller(regs, self.process).ok()?;
                let caller_sp = caller.sp(arch)?.wrapping_add(sp_adjust);
                caller.set(arch.sp_reg(), caller_sp);
                (caller, Method::Lr)
            }
            Some(crate::arch::LeafFrame::RecordOnly) => {
                let caller = if v8.is_entry_builtin(pc) {
                    arch.v8_entry_frame_caller(fp, self.process).ok()?
                } else {
                    arch.frame_record_caller(regs, self.process).ok()?
                };
                (caller, Method::V8)
            }
            _ => {
                let record_plausible = fp >= sp && fp - sp < MAX_FRAME_SPAN;
                if record_plausible {
                    return None;
                }
                let caller = self.emulator.as_ref()?.caller(regs, self.process)?;
                (caller, Method::Emulated)
            }
        };
        let mut frame = v8.describe_unbuilt(pc, function, self.process);
        // A frame record built by an out-of-line prologue (Sparkplug's
        // BaselineOutOfLinePrologue) has its slots written, while the
        // JSFunction register may already hold something else: the
        // frame's own function slot names it then.
        if next_method == Method::V8 && is_unnamed_js(&frame) {
            let described = v8.describe(pc, fp, true, self.process).frame;
            if !is_unnamed_js(&described) {
                frame = described;
            }
        }
        self.push_v8_frame(v8, pc, method, frame, frames);
        Some((caller, next_method))
    }

    /// The link register's value (where the architecture has one),
    /// without pointer-authentication bits.
    fn link_register(&self, regs: &Regs) -> Option<u64> {
        self.arch
            .link_reg()
            .and_then(|r| regs.get(r))
            .map(|lr| self.arch.strip_code_ptr(lr))
    }

    fn push_v8_frame(
        &self,
        v8: &V8Runtime,
        pc: u64,
        method: Method,
        frame: V8Frame,
        frames: &mut Vec<Frame>,
    ) {
        match frame {
            V8Frame::Js(js) => {
                let symbol = v8.builtin_at(pc).map(str::to_string);
                for j in js {
                    let mut f = Frame::new(FrameKind::Js, pc, method);
                    f.symbol = symbol.clone();
                    f.function = Some(j.function);
                    f.file = Some(j.file);
                    f.line = j.line;
                    f.column = j.column;
                    f.tier = Some(j.tier);
                    f.inlined = Some(j.inlined);
                    frames.push(f);
                }
            }
            V8Frame::Builtin { symbol, function } => {
                let mut f = Frame::new(FrameKind::Builtin, pc, method);
                // `function` only when the frame carries the JSFunction the
                // builtin implements (what V8's stack traces show).
                f.function = function;
                f.symbol = Some(symbol);
                f.tier = Some(crate::v8::Tier::Builtin);
                frames.push(f);
            }
            V8Frame::Stub { name, symbol } => {
                let mut f = Frame::new(FrameKind::Stub, pc, method);
                f.function = Some(name);
                f.symbol = symbol;
                frames.push(f);
            }
            V8Frame::Wasm(w) => {
                let mut f = Frame::new(FrameKind::Wasm, pc, method);
                f.function = Some(w.function);
                f.file = Some(w.url);
                // V8's CallSite: line 1, column = module offset + 1.
                f.line = Some(1);
                f.column = w.offset.and_then(|o| o.checked_add(1));
                f.tier = Some(w.tier);
                f.wasm_function = Some(w.index);
                frames.push(f);
            }
        }
    }
}

/// A JavaScript frame whose function is unknown.
fn is_unnamed_js(frame: &V8Frame) -> bool {
    matches!(frame, V8Frame::Js(js) if js.iter().all(|f| f.function.is_empty() && f.file.is_empty()))
}

fn module_basename(name: &str) -> String {
    std::path::Path::new(name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string())
}
