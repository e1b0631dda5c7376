//! Stepping past V8 frames: how the walker finds the caller of a frame in
//! V8 code (builtins, interpreted and JIT code), including the transients
//! V8's own frame iterator has to know about: unbuilt leaf frames,
//! Sparkplug's out-of-line prologue, on-stack-replaced code, frames moving
//! to baseline code, and a deoptimization in progress.

use super::abi::{LeafFrame, V8Abi};
use super::{Tier, V8Frame, V8Runtime};
use crate::address::FrameAddress;
use crate::arch::{Arch, Regs};
use crate::error::Result;
use crate::frame::{Frame, FrameKind, Method};
use crate::memory::Memory;

/// Largest code object a leaf's instructions are read from.
const MAX_CODE: u64 = 1 << 20;
/// Largest distance between a frame's stack pointer and its frame record.
const MAX_FRAME_SPAN: u64 = 16 << 20;

/// What stepping a V8 frame needs from the walker.
pub struct StepContext<'a> {
    /// The process's architecture.
    pub arch: &'static dyn Arch,
    /// The process's memory.
    pub mem: &'a dyn Memory,
    /// Runs a frame forward to its caller, when an emulator is available.
    pub emulate: &'a dyn Fn(&Regs) -> Option<Regs>,
    /// Whether to add the awaiting callers V8 prints as `at async`.
    pub async_callers: bool,
}

impl V8Runtime {
    /// Steps past the V8 frame at `address` with registers `regs`: pushes
    /// the frames it shows onto `frames` (tagged with `method`, how `regs`
    /// were found) and returns the caller's registers and how they were
    /// found; `None` at the end of the stack.
    pub fn step(
        &self,
        cx: &StepContext,
        address: FrameAddress,
        regs: &Regs,
        method: Method,
        frames: &mut Vec<Frame>,
    ) -> Result<Option<(Regs, Method)>> {
        let arch = cx.arch;
        let pc = address.pc();
        let fp = regs.fp(arch).unwrap_or(0);
        // Only a frame stopped at an instruction can be caught before
        // building (or after tearing down) its frame record; a caller is
        // in the middle of a call, its record in place.
        if !address.is_return_address() {
            if let Some(step) = self.bytecode_handler_step(cx, pc, regs, method, frames) {
                return Ok(Some(step));
            }
            if let Some(step) = self.leaf_step(cx, pc, regs, method, frames) {
                return Ok(Some(step));
            }
        }
        let mut info = self.describe(address, fp, cx.mem);
        if method == Method::Lr {
            if let Some(frame) = self.out_of_line_prologue(cx, pc, regs, &info.frame) {
                info.frame = frame;
            }
        }
        if let Some(frame) = self.moving_to_baseline(cx, pc, regs, &info.frame) {
            info.frame = frame;
        }
        if address.is_return_address() {
            if let Some(step) = self.deoptimizing_step(cx, pc, regs, method, frames) {
                return Ok(Some(step));
            }
        }
        if cx.async_callers {
            self.push_async_callers(cx.mem, fp, &info.frame, frames);
        }
        self.push_frame(pc, method, info.frame, frames);
        let caller = if info.is_entry {
            self.abi.entry_frame_caller(fp, cx.mem)?
        } else {
            arch.frame_record_caller(regs, cx.mem)?
        };
        if caller.fp(arch) == Some(0) && caller.pc(arch) == Some(0) {
            return Ok(None);
        }
        Ok(Some((caller, Method::V8)))
    }

    /// A leaf in one of the interpreter's bytecode handlers: handlers are
    /// jumped to (from the trampoline and from each other) and run in the
    /// interpreted frame at fp, building no frame of their own unless
    /// they call out (then fp's slot holds a frame marker and the usual
    /// rules apply). Pushes the handler and the function it interprets,
    /// at the bytecode it runs, and returns the frame's caller.
    fn bytecode_handler_step(
        &self,
        cx: &StepContext,
        pc: u64,
        regs: &Regs,
        method: Method,
        frames: &mut Vec<Frame>,
    ) -> Option<(Regs, Method)> {
        let handler = self.builtin_at(pc).filter(|b| b.ends_with("Handler"))?;
        let fp = regs.fp(cx.arch)?;
        let offset_register = self.abi.handler_bytecode_offset_register();
        let frame = self.interpreted_frame_in_handler(fp, regs.get(offset_register), cx.mem)?;
        let caller = cx.arch.frame_record_caller(regs, cx.mem).ok()?;
        let builtin = V8Frame::Builtin {
            symbol: handler.to_string(),
            function: None,
        };
        self.push_frame(pc, method, builtin, frames);
        self.push_frame(pc, method, frame, frames);
        Some((caller, Method::V8))
    }

    /// The value of V8's JSFunction register (the function being called,
    /// set on entry), where the line and architecture name one.
    pub fn function_register(&self, regs: &Regs) -> Option<u64> {
        self.layout
            .js_function_register
            .and_then(|c| self.abi.register(c))
            .and_then(|r| regs.get(r))
    }

    /// A frame called by a frameless leaf (V8's BaselineOutOfLinePrologue
    /// builds this frame's slots): until they are written the function
    /// is only in the JSFunction register, still live after an LR step.
    /// The frame described from that register, when `described` is
    /// unnamed or unplaced.
    fn out_of_line_prologue(
        &self,
        cx: &StepContext,
        pc: u64,
        regs: &Regs,
        described: &V8Frame,
    ) -> Option<V8Frame> {
        let V8Frame::Js(js) = described else {
            return None;
        };
        let unnamed = js
            .iter()
            .all(|f| f.function.is_empty() && f.file.is_empty());
        if !unnamed && js.iter().all(|f| f.line.is_some()) {
            return None;
        }
        let function = self.function_register(regs);
        Some(self.describe_unbuilt(pc, function, cx.mem))
    }

    /// An unplaced interpreted frame that is moving to baseline code keeps
    /// its bytecode offset in a register (see
    /// `interpreted_frame_moving_to_baseline`): the frame placed by it.
    fn moving_to_baseline(
        &self,
        cx: &StepContext,
        pc: u64,
        regs: &Regs,
        described: &V8Frame,
    ) -> Option<V8Frame> {
        let V8Frame::Js(js) = described else {
            return None;
        };
        let unplaced = js.len() == 1 && js.iter().all(|f| f.line.is_none());
        if !unplaced {
            return None;
        }
        let offset = self
            .abi
            .preserved_bytecode_offset_register()
            .and_then(|r| regs.get(r))?;
        let fp = regs.fp(cx.arch).unwrap_or(0);
        self.interpreted_frame_moving_to_baseline(pc, fp, offset, cx.mem)
    }

    /// A deoptimization entry builtin that has popped the frame it
    /// deoptimizes: the function and its caller come from the
    /// Deoptimizer object (the frame record at fp is gone). Pushes the
    /// builtin's frame and the deoptimized function's, and returns the
    /// caller's registers.
    fn deoptimizing_step(
        &self,
        cx: &StepContext,
        pc: u64,
        regs: &Regs,
        method: Method,
        frames: &mut Vec<Frame>,
    ) -> Option<(Regs, Method)> {
        let arch = cx.arch;
        if !self.is_deoptimization_entry(pc) {
            return None;
        }
        let (obj, top) = self.abi.deoptimizer_on_stack(regs.sp(arch)?, cx.mem)?;
        let d = self.deoptimizing(pc, obj, top, cx.mem)?;
        // The slot below fp is the deoptimized frame's, not a marker.
        let builtin = V8Frame::Builtin {
            symbol: self.builtin_at(pc).unwrap_or_default().to_string(),
            function: None,
        };
        self.push_frame(pc, method, builtin, frames);
        if matches!(&d.frame, V8Frame::Js(js) if !js.is_empty()) {
            self.push_frame(pc, Method::V8, d.frame, frames);
        }
        let mut caller = *regs;
        caller.set(arch.fp_reg(), d.caller_fp);
        caller.set(arch.sp_reg(), d.caller_sp);
        caller.set(arch.pc_reg(), d.caller_pc);
        if let Some(lr) = arch.link_reg() {
            caller.set(lr, d.caller_pc);
        }
        Some((caller, Method::V8))
    }

    /// A leaf in V8 code whose frame record is not (or no longer) in
    /// place: the return address is in the link register. A frame record
    /// that cannot be this frame's (fp below sp, or far above it) is a
    /// contradiction too; then emulation decides.
    fn leaf_step(
        &self,
        cx: &StepContext,
        pc: u64,
        regs: &Regs,
        method: Method,
        frames: &mut Vec<Frame>,
    ) -> Option<(Regs, Method)> {
        let arch = cx.arch;
        let (sp, fp) = (regs.sp(arch)?, regs.fp(arch).unwrap_or(0));
        let function = self.function_register(regs);
        // The code's start: its builtin symbol, or the code of the function
        // in the JSFunction register (set on entry), or a scan back.
        let code_start = self
            .builtin_at(pc)
            .and(self.code_start(pc, cx.mem))
            .or_else(|| function.and_then(|f| self.function_code_start(f, pc, cx.mem)))
            .or_else(|| self.code_start(pc, cx.mem));
        let state = code_start
            .filter(|&s| pc - s < MAX_CODE)
            .and_then(|start| leaf_frame(self.abi, cx.mem, start, pc));
        let state = match (state, code_start) {
            (Some(LeafFrame::NotBuilt { .. }), Some(start))
                if self.in_osr_code(cx, regs, start) =>
            {
                Some(LeafFrame::RecordOnly)
            }
            (state, _) => state,
        };
        let (caller, next_method) = match state {
            Some(LeafFrame::NotBuilt { sp_adjust }) => {
                // The return address is where it was at the entry once the
                // pushes so far are skipped (in the link register, or at
                // the stack pointer).
                let mut at_entry = *regs;
                at_entry.set(arch.sp_reg(), sp.wrapping_add(sp_adjust));
                let caller = arch.frameless_caller(&at_entry, cx.mem).ok()?;
                if !self.plausible_return(cx, pc, &caller) {
                    return None;
                }
                (caller, Method::Lr)
            }
            Some(LeafFrame::Emulate) => ((cx.emulate)(regs)?, Method::Emulated),
            Some(LeafFrame::RecordOnly) => {
                let caller = if self.is_entry_builtin(pc) {
                    self.abi.entry_frame_caller(fp, cx.mem).ok()?
                } else {
                    arch.frame_record_caller(regs, cx.mem).ok()?
                };
                (caller, Method::V8)
            }
            _ => {
                let record_plausible = fp >= sp && fp - sp < MAX_FRAME_SPAN;
                if record_plausible {
                    return None;
                }
                ((cx.emulate)(regs)?, Method::Emulated)
            }
        };
        let mut frame = self.describe_unbuilt(pc, function, cx.mem);
        // A frame record built by an out-of-line prologue (Sparkplug's
        // BaselineOutOfLinePrologue) has its slots written, while the
        // JSFunction register may already hold something else: the
        // frame's own function slot names it then.
        if next_method == Method::V8 && is_unnamed_js(&frame) {
            let described = self
                .describe(FrameAddress::Instruction(pc), fp, cx.mem)
                .frame;
            if !is_unnamed_js(&described) {
                frame = described;
            }
        }
        self.push_frame(pc, method, frame, frames);
        Some((caller, next_method))
    }

    /// Whether a return address read off the stack (no link register) for
    /// a leaf in a builtin can be one: a builtin may also have been jumped
    /// to inside its caller's frame (BaselineLeaveFrame is), where the word
    /// at the stack pointer is a slot of that frame. Only a return into a
    /// builtin (the interpreter's handlers and trampolines, other builtins)
    /// is taken there; JIT code's frames are always entered by a call.
    fn plausible_return(&self, cx: &StepContext, pc: u64, caller: &Regs) -> bool {
        if cx.arch.link_reg().is_some() || self.builtin_at(pc).is_none() || self.is_interpreter(pc)
        {
            return true;
        }
        caller
            .pc(cx.arch)
            .is_some_and(|ra| self.builtin_at(ra).is_some())
    }

    /// On-stack-replaced code runs in the frame its loop was entered in:
    /// what its instructions before the pc say does not apply. It shows as
    /// a link register pointing back into the same code (a call it made
    /// earlier, before or after the pc as the loop goes round), which is
    /// checked first, as it is cheap. `start` is the leaf's code start.
    fn in_osr_code(&self, cx: &StepContext, regs: &Regs, start: u64) -> bool {
        let arch = cx.arch;
        let (Some(sp), fp) = (regs.sp(arch), regs.fp(arch).unwrap_or(0)) else {
            return false;
        };
        fp >= sp
            && fp - sp < MAX_FRAME_SPAN
            && link_register(arch, regs)
                .filter(|lr| (start..start.saturating_add(MAX_CODE)).contains(lr))
                .is_some_and(|lr| self.osr_code_end(start, cx.mem).is_some_and(|end| lr < end))
    }

    /// Before the frame of an await closure, which runs a resumed async
    /// function's continuation, appends the function's awaiting callers.
    fn push_async_callers(
        &self,
        mem: &dyn Memory,
        fp: u64,
        frame: &V8Frame,
        frames: &mut Vec<Frame>,
    ) {
        let V8Frame::Builtin { symbol, .. } = frame else {
            return;
        };
        let resumes = symbol
            .strip_prefix("Builtins_")
            .is_some_and(|s| super::async_stack::AWAIT_CLOSURES.contains(&s));
        if !resumes {
            return;
        }
        let Ok(handler) = mem.read_u64(fp.wrapping_add_signed(self.layout.fp_function)) else {
            return;
        };
        for caller in self.async_callers(handler, mem) {
            let mut f = match caller {
                super::async_stack::AsyncFrame::Function(js) => {
                    let mut f = Frame::new(FrameKind::Js, 0, Method::Async);
                    f.function = Some(js.function);
                    f.file = Some(js.file);
                    f.line = js.line;
                    f.column = js.column;
                    f
                }
                super::async_stack::AsyncFrame::Combinator { name, index } => {
                    let mut f = Frame::new(FrameKind::Builtin, 0, Method::Async);
                    f.function = Some(name.to_string());
                    f.promise_index = Some(index);
                    f
                }
            };
            f.is_async = Some(true);
            frames.push(f);
        }
    }

    /// Appends the frames a V8 frame shows to `frames`, all at `pc`.
    fn push_frame(&self, pc: u64, method: Method, frame: V8Frame, frames: &mut Vec<Frame>) {
        match frame {
            V8Frame::Js(js) => {
                let symbol = self.builtin_at(pc).map(str::to_string);
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
                f.tier = Some(Tier::Builtin);
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

/// What the instructions of the leaf's code from `start` to `pc` (and a
/// few after it) say about its frame.
fn leaf_frame(abi: &dyn V8Abi, mem: &dyn Memory, start: u64, pc: u64) -> Option<LeafFrame> {
    let before = mem.read_vec(start, (pc - start) as usize).ok()?;
    let mut after = vec![0u8; 64];
    let n = (1..=64usize)
        .rev()
        .find(|&n| mem.read(pc, &mut after[..n]).is_ok())?;
    after.truncate(n);
    Some(abi.leaf_frame(&before, &after))
}

/// The link register's value (where the architecture has one),
/// without pointer-authentication bits.
fn link_register(arch: &dyn Arch, regs: &Regs) -> Option<u64> {
    arch.link_reg()
        .and_then(|r| regs.get(r))
        .map(|lr| arch.strip_code_ptr(lr))
}

/// A JavaScript frame whose function is unknown.
fn is_unnamed_js(frame: &V8Frame) -> bool {
    matches!(frame, V8Frame::Js(js) if js.iter().all(|f| f.function.is_empty() && f.file.is_empty()))
}
