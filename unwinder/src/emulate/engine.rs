//! The Unicorn engine itself: a fresh CPU for an architecture, and
//! recorded memory held in a Unicorn address space (what a snapshot
//! replays from). The arm64 CPU model is `MAX`: the default Cortex-A72
//! faults on the LSE atomics (CASAL, LDADD) Node.js uses.

use std::collections::BTreeMap;

use unicorn_engine::unicorn_const::{Arch, Arm64CpuModel, Mode, Prot};
use unicorn_engine::Unicorn;

use crate::arch::ArchKind;
use crate::error::{Error, Result};
use crate::memory::Memory;
use crate::memory::PAGE;

/// Recorded memory held in a Unicorn address space. Reads must also lie
/// inside what the snapshot recorded: Unicorn maps whole pages, and the
/// unrecorded rest of a page must read as missing, as it did in the core.
pub struct UnicornMemory {
    uc: Unicorn<'static, ()>,
    recorded: BTreeMap<u64, u64>,
}

fn uc_err(what: &str, e: unicorn_engine::unicorn_const::uc_error) -> Error {
    Error::Other(format!("unicorn: {what}: {e:?}"))
}

/// A fresh Unicorn engine for `arch`.
pub fn engine<'a>(arch: ArchKind) -> Result<Unicorn<'a, ()>> {
    let (a, m) = match arch {
        ArchKind::Aarch64 => (Arch::ARM64, Mode::LITTLE_ENDIAN),
        ArchKind::X86_64 => (Arch::X86, Mode::MODE_64),
    };
    let mut uc = Unicorn::new(a, m).map_err(|e| uc_err("opening the engine", e))?;
    if arch == ArchKind::Aarch64 {
        uc.ctl_set_cpu_model(Arm64CpuModel::MAX as i32)
            .map_err(|e| uc_err("selecting the MAX cpu model", e))?;
    }
    Ok(uc)
}

impl UnicornMemory {
    /// Maps every recorded range (rounded out to pages) and writes it.
    pub fn new(arch: ArchKind, ranges: &BTreeMap<u64, Vec<u8>>) -> Result<UnicornMemory> {
        let mut uc = engine(arch)?;
        // Coalesce page-aligned spans so each page is mapped once.
        let mut spans: BTreeMap<u64, u64> = BTreeMap::new();
        for (&addr, bytes) in ranges {
            let lo = addr & !(PAGE - 1);
            let hi = (addr + bytes.len() as u64 + PAGE - 1) & !(PAGE - 1);
            let mut page = lo;
            while page < hi {
                spans.insert(page, PAGE);
                page += PAGE;
            }
        }
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (&p, &len) in &spans {
            match merged.last_mut() {
                Some((s, l)) if *s + *l == p => *l += len,
                _ => merged.push((p, len)),
            }
        }
        for (s, l) in merged {
            uc.mem_map(s, l, Prot::ALL)
                .map_err(|e| uc_err(&format!("mapping {s:#x}+{l:#x}"), e))?;
        }
        let mut recorded = BTreeMap::new();
        for (&addr, bytes) in ranges {
            uc.mem_write(addr, bytes)
                .map_err(|e| uc_err(&format!("writing {addr:#x}"), e))?;
            recorded.insert(addr, bytes.len() as u64);
        }
        Ok(UnicornMemory { uc, recorded })
    }

    fn is_recorded(&self, addr: u64, len: u64) -> bool {
        let mut at = addr;
        let end = addr.saturating_add(len);
        while at < end {
            match self.recorded.range(..=at).next_back() {
                Some((&s, &l)) if at < s + l => at = s + l,
                _ => return false,
            }
        }
        true
    }

    /// The engine, for emulation over this memory.
    pub fn engine(&self) -> &Unicorn<'static, ()> {
        &self.uc
    }
}

impl Memory for UnicornMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        if !self.is_recorded(addr, buf.len() as u64) {
            return Err(Error::Unmapped {
                addr,
                len: buf.len(),
            });
        }
        self.uc.mem_read(addr, buf).map_err(|_| Error::Unmapped {
            addr,
            len: buf.len(),
        })
    }
}
