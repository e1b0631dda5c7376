//! Unicorn (cargo feature `unicorn`, GPL-2.0): running a frame's code
//! forward in a CPU emulator to find its caller where unwind metadata runs
//! out, and the checks that compare a snapshot's static unwind against
//! emulation. The engine and its memory live in [`engine`].

pub mod engine;

use std::collections::BTreeMap;

use unicorn_engine::unicorn_const::{HookType, Prot};
use unicorn_engine::{RegisterARM64, RegisterX86, Unicorn};

pub use self::engine::{engine, UnicornMemory};
use crate::arch::{ArchKind, InsnKind, Regs};
use crate::error::Result;
use crate::memory::{Memory, PAGE};

/// Instructions one forward emulation may run.
pub const DEFAULT_BUDGET: usize = 20_000;

/// Why an emulation gave no caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmuStop {
    /// The budget ran out before the function returned.
    Budget,
    /// Code touched memory the process (or snapshot) does not have.
    MissingMemory(u64),
    /// A system call: the kernel's effects cannot be emulated.
    Syscall,
    /// Unicorn refused (bad instruction, ...).
    Fault(String),
    /// A register the emulation needs is unknown.
    Incomplete,
}

/// DWARF register number -> Unicorn register id, per architecture.
fn uc_regs(arch: ArchKind) -> Vec<(u16, i32)> {
    match arch {
        ArchKind::Aarch64 => {
            let mut v: Vec<(u16, i32)> = (0..29u16)
                .map(|i| (i, RegisterARM64::X0 as i32 + i as i32))
                .collect();
            v.push((29, RegisterARM64::X29 as i32));
            v.push((30, RegisterARM64::X30 as i32));
            v.push((31, RegisterARM64::SP as i32));
            v.push((32, RegisterARM64::PC as i32));
            v
        }
        ArchKind::X86_64 => vec![
            (0, RegisterX86::RAX as i32),
            (1, RegisterX86::RDX as i32),
            (2, RegisterX86::RCX as i32),
            (3, RegisterX86::RBX as i32),
            (4, RegisterX86::RSI as i32),
            (5, RegisterX86::RDI as i32),
            (6, RegisterX86::RBP as i32),
            (7, RegisterX86::RSP as i32),
            (8, RegisterX86::R8 as i32),
            (9, RegisterX86::R9 as i32),
            (10, RegisterX86::R10 as i32),
            (11, RegisterX86::R11 as i32),
            (12, RegisterX86::R12 as i32),
            (13, RegisterX86::R13 as i32),
            (14, RegisterX86::R14 as i32),
            (15, RegisterX86::R15 as i32),
            (16, RegisterX86::RIP as i32),
        ],
    }
}

/// Runs the function that `regs` is in forward, on a private copy of
/// memory paged in from `mem` as it is touched, until it returns; the
/// registers at that point are its caller's. Calls it makes are followed
/// and must return too. Stops on the budget, a syscall, or missing memory.
pub fn run_to_return(
    arch: ArchKind,
    regs: &Regs,
    mem: &dyn Memory,
    budget: usize,
) -> std::result::Result<Regs, EmuStop> {
    let a = arch.arch();
    let pc0 = regs.pc(a).ok_or(EmuStop::Incomplete)?;
    regs.sp(a).ok_or(EmuStop::Incomplete)?;
    let mut uc = engine(arch).map_err(|e| EmuStop::Fault(e.to_string()))?;
    let missing = std::rc::Rc::new(std::cell::Cell::new(None::<u64>));
    let missing_in_hook = missing.clone();
    uc.add_mem_hook(
        HookType::MEM_UNMAPPED,
        1,
        0,
        move |uc, _kind, addr, _size, _value| {
            let ok = page_in(uc, mem, addr);
            if !ok {
                missing_in_hook.set(Some(addr));
            }
            ok
        },
    )
    .map_err(|e| EmuStop::Fault(format!("{e:?}")))?;
    let map = uc_regs(arch);
    for &(dw, id) in &map {
        uc.reg_write(id, regs.get(dw).unwrap_or(0))
            .map_err(|e| EmuStop::Fault(format!("{e:?}")))?;
    }
    let pc_id = map
        .iter()
        .find(|(d, _)| *d == a.pc_reg())
        .map(|(_, i)| *i)
        .ok_or(EmuStop::Incomplete)?;
    let mut depth = 0usize;
    let mut pc = pc0;
    for _ in 0..budget {
        let mut insn = [0u8; 16];
        let n = insn.len();
        let fetched = (0..n)
            .rev()
            .find(|&len| len > 0 && mem.read(pc, &mut insn[..len]).is_ok());
        let Some(len) = fetched else {
            return Err(EmuStop::MissingMemory(pc));
        };
        match a.classify(&insn[..len]) {
            InsnKind::Syscall => return Err(EmuStop::Syscall),
            InsnKind::Call => depth += 1,
            InsnKind::Return if depth == 0 => {
                // Execute the return itself: the caller's pc and sp follow.
                uc.emu_start(pc, u64::MAX, 0, 1)
                    .map_err(|e| fault(&missing, e))?;
                let mut out = Regs::default();
                for &(dw, id) in &map {
                    if let Ok(v) = uc.reg_read(id) {
                        out.set(dw, v);
                    }
                }
                let ret = out.pc(a).unwrap_or(0);
                out.set(a.pc_reg(), a.strip_code_ptr(ret));
                return Ok(out);
            }
            InsnKind::Return => depth -= 1,
            InsnKind::Other => {}
        }
        uc.emu_start(pc, u64::MAX, 0, 1)
            .map_err(|e| fault(&missing, e))?;
        pc = uc
            .reg_read(pc_id)
            .map_err(|e| EmuStop::Fault(format!("{e:?}")))?;
    }
    Err(EmuStop::Budget)
}

/// Maps the page holding `addr` into the engine with what `mem` has of
/// it (64-byte granules; the rest reads as zero). False when `mem` has none
/// of it: the access then faults and the run ends.
fn page_in<D>(uc: &mut Unicorn<'_, D>, mem: &dyn Memory, addr: u64) -> bool {
    let page = addr & !(PAGE - 1);
    let mut buf = vec![0u8; PAGE as usize];
    if mem.read(page, &mut buf).is_err() {
        let mut any = false;
        for (i, chunk) in buf.chunks_mut(64).enumerate() {
            if mem.read(page + (i as u64) * 64, chunk).is_ok() {
                any = true;
            } else {
                chunk.fill(0);
            }
        }
        if !any {
            return false;
        }
    }
    uc.mem_map(page, PAGE, Prot::ALL).is_ok() && uc.mem_write(page, &buf).is_ok()
}

fn fault(
    missing: &std::cell::Cell<Option<u64>>,
    e: unicorn_engine::unicorn_const::uc_error,
) -> EmuStop {
    match missing.get() {
        Some(a) => EmuStop::MissingMemory(a),
        None => EmuStop::Fault(format!("{e:?}")),
    }
}

/// The walker's hook: emulate a frame forward when metadata runs out.
pub struct Emulator {
    /// Architecture of the process.
    pub arch: ArchKind,
    /// Instructions one emulation may run.
    pub budget: usize,
}

impl crate::unwind::FrameEmulator for Emulator {
    fn caller(&self, regs: &Regs, mem: &dyn Memory) -> Option<Regs> {
        run_to_return(self.arch, regs, mem, self.budget).ok()
    }
}

/// The result of checking a snapshot's static unwind against emulation.
#[derive(Debug, Clone, Default)]
pub struct CrossCheck {
    /// Steps tried.
    pub checked: usize,
    /// Steps whose function returned within the budget.
    pub returned: usize,
    /// Steps where emulation and the unwinder disagree on the caller.
    pub disagreements: Vec<String>,
}

/// Emulation as an oracle: for every step of every thread, runs the
/// function forward; where it returns within `budget`, the caller's pc and
/// sp must be the ones the static unwinder found.
pub fn cross_check(p: &crate::snapshot::SnapshotProcess, budget: usize) -> CrossCheck {
    let v8 = p
        .executable()
        .and_then(|e| crate::v8::V8Runtime::new(e, p).ok());
    let unwinder = crate::unwind::Unwinder::new(p, v8);
    let a = p.arch.arch();
    let mut out = CrossCheck::default();
    for t in &p.threads {
        let (stack, steps) = unwinder.unwind_steps(t.tid, false, t.regs);
        for pair in steps.windows(2) {
            let ((frame, regs), (_, next)) = (&pair[0], &pair[1]);
            // After a call that does not return (abort), the return address
            // can be the next function's first byte: running on from there
            // is not this function returning.
            if *frame > 0 {
                let pc = regs.pc(a).unwrap_or(0);
                let start = |addr: u64| {
                    crate::unwind::Process::module_at(p, addr)
                        .and_then(|m| m.symbolize(addr))
                        .map(|s| s.start)
                };
                if start(pc) != start(pc.saturating_sub(1)) {
                    continue;
                }
            }
            out.checked += 1;
            let Ok(emulated) = run_to_return(p.arch, regs, p, budget) else {
                continue;
            };
            out.returned += 1;
            let f = &stack.frames[*frame];
            // Native callers are compared by pc and stack pointer. V8
            // callers by pc and frame pointer: JavaScript callees pop their
            // arguments on return, while V8 (and crosswind) define a JS
            // frame's caller SP as fp + 16, before that pop.
            let v8_frame = f.kind != crate::frame::FrameKind::Native;
            let agree = emulated.pc(a) == next.pc(a)
                && if v8_frame {
                    emulated.fp(a) == next.fp(a)
                } else {
                    emulated.sp(a) == next.sp(a)
                };
            if !agree {
                out.disagreements.push(format!(
                    "thread {} frame {frame} ({}): emulation returns to pc {:#x} sp {:#x} fp {:#x}, the unwinder says pc {:#x} sp {:#x} fp {:#x}",
                    t.tid,
                    f.function.as_deref().or(f.symbol.as_deref()).unwrap_or("??"),
                    emulated.pc(a).unwrap_or(0),
                    emulated.sp(a).unwrap_or(0),
                    emulated.fp(a).unwrap_or(0),
                    next.pc(a).unwrap_or(0),
                    next.sp(a).unwrap_or(0),
                    next.fp(a).unwrap_or(0),
                ));
            }
        }
    }
    out
}

/// A CPU state and the memory it changed, after one step.
#[derive(Debug, Clone)]
pub struct SteppedState {
    /// The registers before the next instruction.
    pub regs: Regs,
    /// Pages the steps so far have written: start -> contents.
    pub written: BTreeMap<u64, Vec<u8>>,
}

/// Single-steps from `regs` (memory paged in from `mem`), returning the
/// state before each instruction, the starting state first. Stops after
/// `count` instructions, before a call or return when `stop_at_branch`, or
/// when emulation cannot go on. `debug`, when given, receives a line
/// saying why emulation stopped early.
pub fn step_states(
    arch: ArchKind,
    regs: &Regs,
    mem: &dyn Memory,
    count: usize,
    stop_at_branch: bool,
    debug: Option<&dyn Fn(&str)>,
) -> Vec<SteppedState> {
    let a = arch.arch();
    let mut out = vec![SteppedState {
        regs: *regs,
        written: BTreeMap::new(),
    }];
    let Ok(mut uc) = engine(arch) else { return out };
    let written = std::rc::Rc::new(std::cell::RefCell::new(
        std::collections::BTreeSet::<u64>::new(),
    ));
    let written_in_hook = written.clone();
    let paged = uc.add_mem_hook(HookType::MEM_UNMAPPED, 1, 0, move |uc, _k, addr, _s, _v| {
        page_in(uc, mem, addr)
    });
    let hooked = uc.add_mem_hook(HookType::MEM_WRITE, 1, 0, move |_uc, _k, addr, size, _v| {
        let mut w = written_in_hook.borrow_mut();
        w.insert(addr & !(PAGE - 1));
        w.insert((addr + size as u64 - 1) & !(PAGE - 1));
        true
    });
    if paged.is_err() || hooked.is_err() {
        return out;
    }
    let map = uc_regs(arch);
    for &(dw, id) in &map {
        if uc.reg_write(id, regs.get(dw).unwrap_or(0)).is_err() {
            return out;
        }
    }
    let mut pc = regs.pc(a).unwrap_or(0);
    for _ in 0..count {
        if stop_at_branch {
            let mut insn = [0u8; 4];
            if mem.read(pc, &mut insn).is_err()
                || matches!(
                    a.classify(&insn),
                    InsnKind::Call | InsnKind::Return | InsnKind::Syscall
                )
            {
                break;
            }
        }
        if let Err(e) = uc.emu_start(pc, u64::MAX, 0, 1) {
            if let Some(debug) = debug {
                debug(&format!("step at {pc:#x}: {e:?}"));
            }
            break;
        }
        let mut next = Regs::default();
        for &(dw, id) in &map {
            if let Ok(v) = uc.reg_read(id) {
                next.set(dw, v);
            }
        }
        let mut pages = BTreeMap::new();
        for &p in written.borrow().iter() {
            let mut buf = vec![0u8; PAGE as usize];
            if uc.mem_read(p, &mut buf).is_ok() {
                pages.insert(p, buf);
            }
        }
        pc = next.pc(a).unwrap_or(0);
        out.push(SteppedState {
            regs: next,
            written: pages,
        });
    }
    out
}

/// A snapshot process seen through a stepped state: written pages over
/// the snapshot's memory, the snapshot's modules.
pub struct SteppedProcess<'a> {
    /// The snapshot underneath.
    pub base: &'a crate::snapshot::SnapshotProcess,
    /// Pages the steps wrote: start -> contents.
    pub written: &'a BTreeMap<u64, Vec<u8>>,
}

impl Memory for SteppedProcess<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        // Byte by byte only where a read straddles written pages.
        let page = addr & !(PAGE - 1);
        let last = (addr + buf.len() as u64).saturating_sub(1) & !(PAGE - 1);
        if page == last {
            if let Some(p) = self.written.get(&page) {
                let off = (addr - page) as usize;
                buf.copy_from_slice(&p[off..off + buf.len()]);
                return Ok(());
            }
            return self.base.read(addr, buf);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            let mut one = [0u8; 1];
            self.read(addr + i as u64, &mut one)?;
            *b = one[0];
        }
        Ok(())
    }
}

impl crate::unwind::Process for SteppedProcess<'_> {
    fn arch(&self) -> &'static dyn crate::arch::Arch {
        self.base.arch.arch()
    }
    fn module_at(&self, addr: u64) -> Option<&crate::module::Module> {
        crate::unwind::Process::module_at(self.base, addr)
    }
    fn modules(&self) -> &[crate::module::Module] {
        crate::unwind::Process::modules(self.base)
    }
    fn executable(&self) -> Option<&crate::module::Module> {
        self.base.executable()
    }
}
