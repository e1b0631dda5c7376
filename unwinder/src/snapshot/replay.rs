//! Replay: a process rebuilt from a snapshot alone, its memory (in
//! Unicorn with the `unicorn` feature, else plain ranges) and its modules
//! answering from their recordings.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::format::{Snapshot, META_PROCESS, PROCESS_RUNNING};
use crate::arch::{Arch, ArchKind};
use crate::error::{Error, Result};
use crate::memory::Memory;
use crate::module::Module;
use crate::session::{Session, StackReport, StoppedThread};
use crate::unwind::{Process, TraceSink};

/// A process rebuilt from a snapshot: its memory (in Unicorn when the
/// `unicorn` feature is on) and its modules' recorded answers.
pub struct SnapshotProcess {
    /// Architecture of the process.
    pub arch: ArchKind,
    /// Threads and their registers.
    pub threads: Vec<StoppedThread>,
    /// Modules answering from their recordings.
    pub modules: Vec<Module>,
    exe: Option<usize>,
    memory: Box<dyn Memory>,
    /// Captured from a running process, a thread at a time: no thread
    /// crashed, and the threads are unwound in the order recorded.
    running: bool,
}

impl SnapshotProcess {
    /// Builds the process. With the `unicorn` feature the memory is mapped
    /// into a Unicorn instance and read from there.
    pub fn new(s: &Snapshot) -> Result<SnapshotProcess> {
        Ok(SnapshotProcess::with_memory(s, replay_memory(s)?))
    }

    fn with_memory(s: &Snapshot, memory: Box<dyn Memory>) -> SnapshotProcess {
        let mut modules: Vec<Module> = s
            .modules
            .iter()
            .map(|m| {
                Module::from_answers(
                    &m.name,
                    Path::new(&m.path),
                    m.bias,
                    m.arch,
                    m.segments.clone(),
                    (!m.build_id.is_empty()).then(|| m.build_id.clone()),
                    m.answers.clone(),
                )
            })
            .collect();
        let exe_start = s.modules.iter().find(|m| m.is_exe).map(|m| m.bias);
        modules.sort_by_key(|m| m.start);
        let exe = exe_start.and_then(|b| {
            modules.iter().position(|m| {
                m.bias == b && s.modules.iter().any(|sm| sm.is_exe && sm.name == m.name)
            })
        });
        SnapshotProcess {
            arch: s.arch,
            threads: s.threads.clone(),
            modules,
            exe,
            memory,
            running: s.meta.get(META_PROCESS).map(String::as_str) == Some(PROCESS_RUNNING),
        }
    }

    /// Builds the process with its memory read straight from the recorded
    /// ranges, never through Unicorn, whatever the features: for replaying
    /// many snapshots fast (fuzzing), where the emulator's mapping costs
    /// more than the walk.
    pub fn from_recorded_ranges(s: &Snapshot) -> Result<SnapshotProcess> {
        Ok(SnapshotProcess::with_memory(
            s,
            Box::new(RangeMemory::new(&s.memory)),
        ))
    }

    /// The main executable.
    pub fn executable(&self) -> Option<&Module> {
        self.exe.and_then(|i| self.modules.get(i))
    }

    /// Unwinds every thread, as the original unwind did; `trace`, when
    /// given, receives one line per unwind step.
    pub fn unwind(&self, trace: Option<TraceSink>) -> StackReport {
        let mut session = Session::new(self).with_trace(trace);
        if !self.running {
            return session.unwind_all(&self.threads);
        }
        let stacks = self
            .threads
            .iter()
            .map(|t| session.unwind_thread(t.tid, false, t.regs))
            .collect();
        session.report_of(stacks)
    }
}

#[cfg(feature = "unicorn")]
fn replay_memory(s: &Snapshot) -> Result<Box<dyn Memory>> {
    Ok(Box::new(crate::emulate::engine::UnicornMemory::new(
        s.arch, &s.memory,
    )?))
}

#[cfg(not(feature = "unicorn"))]
fn replay_memory(s: &Snapshot) -> Result<Box<dyn Memory>> {
    Ok(Box::new(RangeMemory::new(&s.memory)))
}

/// Memory made of recorded ranges: reads must lie inside what was kept.
/// Kept as sorted vectors rather than the snapshot's map: a warm unwind
/// reads memory a word at a time, and a binary search over a vector costs
/// a fraction of a map's range query (the warm benchmark spent a third of
/// its time there).
pub struct RangeMemory {
    /// Starts of the recorded ranges, ascending.
    starts: Vec<u64>,
    /// Their bytes, in the same order.
    bytes: Vec<Vec<u8>>,
    /// Which range the last read near an address fell in, by the address's
    /// 64-byte block: a warm unwind reads the same stack slots and heap
    /// objects over and over, and a hit here skips the search (a TLB of
    /// sorts; a two-entry version still searched for a quarter of reads).
    recent: [AtomicUsize; RECENT_SLOTS],
}

const RECENT_SLOTS: usize = 256;

fn recent_slot(addr: u64) -> usize {
    (addr >> 6) as usize % RECENT_SLOTS
}

impl RangeMemory {
    /// Memory holding `ranges` (start -> bytes).
    pub fn new(ranges: &BTreeMap<u64, Vec<u8>>) -> RangeMemory {
        RangeMemory {
            starts: ranges.keys().copied().collect(),
            bytes: ranges.values().cloned().collect(),
            recent: std::array::from_fn(|_| AtomicUsize::new(0)),
        }
    }

    /// The `len` bytes at `addr` when range `i` holds all of them.
    fn slice_within(&self, i: usize, addr: u64, len: usize) -> Option<&[u8]> {
        let start = *self.starts.get(i)?;
        let bytes = self.bytes.get(i)?;
        let off = usize::try_from(addr.checked_sub(start)?).ok()?;
        bytes.get(off..off.checked_add(len)?)
    }

    /// The `len` bytes at `addr` when one range holds them all: the range
    /// last seen near `addr` first, then a search.
    fn slice(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let slot = &self.recent[recent_slot(addr)];
        if let Some(s) = self.slice_within(slot.load(Ordering::Relaxed), addr, len) {
            return Some(s);
        }
        let found = self.starts.partition_point(|&s| s <= addr).checked_sub(1)?;
        let s = self.slice_within(found, addr, len)?;
        slot.store(found, Ordering::Relaxed);
        Some(s)
    }

    /// A fixed-size read: the copy is a register move, not a `memcpy`
    /// call (which, for words, cost the warm benchmark an eighth of its
    /// time).
    fn read_array<const N: usize>(&self, addr: u64) -> Result<[u8; N]> {
        match self.slice(addr, N).map(<[u8; N]>::try_from) {
            Some(Ok(a)) => Ok(a),
            _ => {
                let mut a = [0u8; N];
                self.read_spanning(addr, &mut a)?;
                Ok(a)
            }
        }
    }

    /// A read over adjacent ranges, none of which holds it all.
    fn read_spanning(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len();
        let unmapped = || Error::Unmapped { addr, len };
        let first = self
            .starts
            .partition_point(|&s| s <= addr)
            .checked_sub(1)
            .ok_or_else(unmapped)?;
        // Whether the ranges cover it all is found before anything is
        // copied, since a scan's page-sized reads mostly fail.
        let mut covered = 0usize;
        let mut last = first;
        while covered < len {
            let (Some(&start), Some(bytes)) = (self.starts.get(last), self.bytes.get(last)) else {
                return Err(unmapped());
            };
            let at = addr.wrapping_add(covered as u64);
            let off = at.wrapping_sub(start) as usize;
            if at < start || off >= bytes.len() {
                return Err(unmapped());
            }
            covered += bytes.len() - off;
            last += 1;
        }
        let mut done = 0usize;
        for (&start, bytes) in self.starts[first..last]
            .iter()
            .zip(&self.bytes[first..last])
        {
            let off = addr.wrapping_add(done as u64).wrapping_sub(start) as usize;
            let n = (bytes.len() - off).min(len - done);
            buf[done..done + n].copy_from_slice(&bytes[off..off + n]);
            done += n;
        }
        Ok(())
    }
}

impl Memory for RangeMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        match self.slice(addr, buf.len()) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => self.read_spanning(addr, buf),
        }
    }
    fn read_u64(&self, addr: u64) -> Result<u64> {
        self.read_array(addr).map(u64::from_le_bytes)
    }
    fn read_u32(&self, addr: u64) -> Result<u32> {
        self.read_array(addr).map(u32::from_le_bytes)
    }
    fn read_u16(&self, addr: u64) -> Result<u16> {
        self.read_array(addr).map(u16::from_le_bytes)
    }
    fn read_u8(&self, addr: u64) -> Result<u8> {
        self.read_array(addr).map(|[b]| b)
    }
}

impl Memory for SnapshotProcess {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.memory.read(addr, buf)
    }
    fn read_u64(&self, addr: u64) -> Result<u64> {
        self.memory.read_u64(addr)
    }
    fn read_u32(&self, addr: u64) -> Result<u32> {
        self.memory.read_u32(addr)
    }
    fn read_u16(&self, addr: u64) -> Result<u16> {
        self.memory.read_u16(addr)
    }
    fn read_u8(&self, addr: u64) -> Result<u8> {
        self.memory.read_u8(addr)
    }
}

impl Process for SnapshotProcess {
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
        SnapshotProcess::executable(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_memory_reads_inside_and_across_adjacent_ranges_only() {
        let ranges: BTreeMap<u64, Vec<u8>> = [
            (0x1000, vec![1, 2, 3, 4]),
            (0x1004, vec![5, 6]),
            (0x2000, vec![9; 8]),
        ]
        .into_iter()
        .collect();
        let m = RangeMemory::new(&ranges);
        let mut b = [0u8; 6];
        m.read(0x1000, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4, 5, 6]);
        let mut b = [0u8; 3];
        m.read(0x1003, &mut b).unwrap();
        assert_eq!(b, [4, 5, 6]);
        for (addr, len) in [
            (0x1004, 3),
            (0xfff, 2),
            (0x1006, 1),
            (0x2004, 8),
            (0, 1),
            (u64::MAX, 2),
        ] {
            assert!(
                m.read(addr, &mut vec![0u8; len]).is_err(),
                "{addr:#x}+{len}"
            );
        }
        assert_eq!(m.read_u64(0x2000).unwrap(), 0x0909_0909_0909_0909);
    }
}
