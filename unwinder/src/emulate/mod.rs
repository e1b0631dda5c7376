//! Unicorn (cargo feature `unicorn`, GPL-2.0): running a frame's code
//! forward in a CPU emulator to find its caller where unwind metadata runs
//! out. The engine and its memory live in [`engine`]; the checks that
//! compare a snapshot's static unwind against emulation, used by the
//! tests, in `oracles` (cargo feature `oracles`).

pub mod engine;
#[cfg(feature = "oracles")]
pub mod oracles;

use unicorn_engine::unicorn_const::{HookType, Prot};
use unicorn_engine::{RegisterARM64, RegisterX86, Unicorn};

pub use self::engine::{engine, UnicornMemory};
use crate::arch::{ArchKind, InsnKind, Regs};
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
