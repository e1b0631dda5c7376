//! Emulation as a test oracle (cargo feature `oracles`): checks that
//! compare a snapshot's static unwind against running its code in Unicorn,
//! and the single-stepped states the prologue and epilogue tests unwind.

use std::collections::BTreeMap;

use unicorn_engine::unicorn_const::HookType;

use super::{engine, page_in, run_to_return, uc_regs};
use crate::address::FrameAddress;
use crate::arch::{ArchKind, InsnKind, Regs};
use crate::error::Result;
use crate::memory::{Memory, PAGE};

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
            let address = FrameAddress::at_depth(*frame, regs.pc(a).unwrap_or(0));
            if address.is_return_address() {
                let start = |addr: u64| {
                    crate::unwind::Process::module_at(p, addr)
                        .and_then(|m| m.symbolize(addr))
                        .map(|s| s.start)
                };
                if start(address.pc()) != start(address.lookup()) {
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
