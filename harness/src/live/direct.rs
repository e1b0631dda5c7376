//! Guest memory read straight out of QEMU's address space. In user mode
//! QEMU maps guest address `A` at host address `A + guest_base`, so
//! `process_vm_readv` on the QEMU process reads the guest without a
//! gdbstub round trip per read.
//!
//! QEMU's own mappings (its heap, its translated code) share that address
//! space, and reading one of them where the guest has nothing mapped would
//! hand the unwinder QEMU's bytes instead of an error. So a page counts as
//! the guest's only once the gdbstub, which checks QEMU's guest page flags,
//! has read it, and only while the host mapping that held it then is
//! unchanged: host mappings are re-read at each stop.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crosswind_unwinder::Module;

/// QEMU's user-mode page size on the hosts crosswind runs on.
const PAGE: u64 = 4096;

/// Pages remembered as the guest's at most; past this the memory is
/// dropped and pages are confirmed again.
const MAX_CONFIRMED_PAGES: usize = 1 << 18;

/// A host mapping: `[start, end)`.
type HostRange = (u64, u64);

/// What a direct read came to.
#[derive(Debug, PartialEq, Eq)]
pub enum DirectRead {
    /// The bytes are in the buffer.
    Done,
    /// Some page of the range is not the guest's.
    Unmapped,
    /// QEMU's memory could not be read here: ask the gdbstub.
    Unavailable,
}

/// Reads a QEMU user-mode guest's memory through the QEMU process.
pub struct DirectReader {
    pid: libc::pid_t,
    guest_base: u64,
    /// Host mappings at this stop, sorted; read on first use after a stop.
    maps: Option<Vec<HostRange>>,
    /// Guest pages the gdbstub has read, with the host mapping holding each.
    confirmed: HashMap<u64, HostRange>,
    /// Pages the gdbstub refused at this stop.
    refused: HashSet<u64>,
    /// Guest pages read whole at this stop: a walk reads the same stack
    /// and heap pages many times, a word at a time, and one system call
    /// per page costs less than one per word.
    pages: HashMap<u64, Box<[u8]>>,
}

impl DirectReader {
    /// A reader for QEMU process `pid` running `node`, whose executable the
    /// guest has loaded as `exe`. `None` when QEMU's mapping of the
    /// executable cannot be found (another QEMU build, another namespace):
    /// the caller then reads through the gdbstub alone.
    pub fn attach(pid: u32, node: &Path, exe: &Module) -> Option<DirectReader> {
        let pid = libc::pid_t::try_from(pid).ok()?;
        let node = std::fs::canonicalize(node).ok()?;
        let guest_start = exe
            .segments
            .iter()
            .find(|s| s.offset == 0)
            .map(|s| exe.bias.wrapping_add(s.vaddr) & !(PAGE - 1))?;
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
        let host_start = maps.lines().find_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let offset = fields.nth(1)?;
            let path = fields.nth(2)?;
            (u64::from_str_radix(offset, 16).ok()? == 0 && Path::new(path) == node)
                .then(|| parse_range(range).map(|r| r.0))
                .flatten()
        })?;
        let reader = DirectReader {
            pid,
            guest_base: host_start.wrapping_sub(guest_start),
            maps: None,
            confirmed: HashMap::new(),
            refused: HashSet::new(),
            pages: HashMap::new(),
        };
        // One read proves process_vm_readv is allowed here.
        let mut probe = [0u8; 4];
        (reader.read_host(host_start, &mut probe) && probe == *b"\x7fELF").then_some(reader)
    }

    /// The guest ran: its mappings may have changed.
    pub fn resumed(&mut self) {
        self.maps = None;
        self.refused.clear();
        self.pages.clear();
    }

    /// Reads `buf.len()` bytes at guest address `addr`. `confirm` asks the
    /// gdbstub whether a guest page is readable.
    pub fn read(
        &mut self,
        addr: u64,
        buf: &mut [u8],
        confirm: &mut dyn FnMut(u64) -> bool,
    ) -> DirectRead {
        if buf.is_empty() {
            return DirectRead::Done;
        }
        if addr.checked_add(buf.len() as u64 - 1).is_none() {
            return DirectRead::Unmapped;
        }
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr.wrapping_add(done as u64);
            let page = at & !(PAGE - 1);
            let offset = (at - page) as usize;
            let n = (PAGE as usize - offset).min(buf.len() - done);
            if !self.pages.contains_key(&page) {
                match self.load_page(page, confirm) {
                    DirectRead::Done => {}
                    other => return other,
                }
            }
            let Some(bytes) = self.pages.get(&page) else {
                return DirectRead::Unavailable;
            };
            buf[done..done + n].copy_from_slice(&bytes[offset..offset + n]);
            done += n;
        }
        DirectRead::Done
    }

    /// Reads the guest page at `page` into this stop's pages, once the
    /// gdbstub has confirmed it is the guest's.
    fn load_page(&mut self, page: u64, confirm: &mut dyn FnMut(u64) -> bool) -> DirectRead {
        if self.maps.is_none() {
            self.maps = read_maps(self.pid);
        }
        let Some(maps) = &self.maps else {
            return DirectRead::Unavailable;
        };
        if self.confirmed.len() > MAX_CONFIRMED_PAGES {
            self.confirmed.clear();
        }
        let Some(host) = page.checked_add(self.guest_base) else {
            return DirectRead::Unmapped;
        };
        let Some(range) = containing(maps, host) else {
            return DirectRead::Unmapped;
        };
        if self.confirmed.get(&page) != Some(&range) {
            if self.refused.contains(&page) || !confirm(page) {
                self.refused.insert(page);
                return DirectRead::Unmapped;
            }
            self.confirmed.insert(page, range);
        }
        let mut bytes = vec![0u8; PAGE as usize].into_boxed_slice();
        if !self.read_host(host, &mut bytes) {
            return DirectRead::Unavailable;
        }
        self.pages.insert(page, bytes);
        DirectRead::Done
    }

    /// `process_vm_readv` of QEMU's memory at host address `host`.
    fn read_host(&self, host: u64, buf: &mut [u8]) -> bool {
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: host as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` covers exactly `buf`, which is borrowed mutably
        // for the call; the remote range is only read by the kernel.
        let n = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
        usize::try_from(n).is_ok_and(|n| n == buf.len())
    }
}

/// `start-end` of a `/proc/PID/maps` line.
fn parse_range(field: &str) -> Option<HostRange> {
    let (start, end) = field.split_once('-')?;
    Some((
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
    ))
}

/// The process's mappings, sorted by start as the kernel lists them.
fn read_maps(pid: libc::pid_t) -> Option<Vec<HostRange>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    Some(
        text.lines()
            .filter_map(|l| parse_range(l.split_whitespace().next()?))
            .collect(),
    )
}

/// The mapping holding `addr`.
fn containing(maps: &[HostRange], addr: u64) -> Option<HostRange> {
    let i = maps.partition_point(|&(start, _)| start <= addr);
    let range = *maps.get(i.checked_sub(1)?)?;
    (addr < range.1).then_some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_mapping_holding_an_address() {
        let maps = [(0x1000, 0x3000), (0x5000, 0x6000)];
        assert_eq!(containing(&maps, 0x1000), Some((0x1000, 0x3000)));
        assert_eq!(containing(&maps, 0x2fff), Some((0x1000, 0x3000)));
        assert_eq!(containing(&maps, 0x3000), None);
        assert_eq!(containing(&maps, 0xfff), None);
        assert_eq!(containing(&maps, 0x5800), Some((0x5000, 0x6000)));
        assert_eq!(parse_range("7f00-7f80"), Some((0x7f00, 0x7f80)));
        assert_eq!(parse_range("zz-1"), None);
    }

    /// Read-only data of this test binary: a file mapping that stays put.
    static DATA: [u8; 3 * PAGE as usize] = [0x5a; 3 * PAGE as usize];

    /// This test process's own memory, read through a reader whose guest
    /// is the process itself: confirmed pages are asked once per mapping.
    #[test]
    fn reads_confirmed_pages_and_refuses_the_rest() {
        let data = &DATA[..];
        let mut reader = DirectReader {
            pid: std::process::id() as libc::pid_t,
            guest_base: 0,
            maps: None,
            confirmed: HashMap::new(),
            refused: HashSet::new(),
            pages: HashMap::new(),
        };
        let addr = data.as_ptr() as u64;
        let asked = std::cell::Cell::new(0);
        let mut buf = vec![0u8; data.len()];
        let mut yes = |_| {
            asked.set(asked.get() + 1);
            true
        };
        assert_eq!(reader.read(addr, &mut buf, &mut yes), DirectRead::Done);
        assert_eq!(buf, data);
        let first = asked.get();
        assert!((3..=4).contains(&first));
        reader.resumed();
        assert_eq!(reader.read(addr, &mut buf, &mut yes), DirectRead::Done);
        assert_eq!(asked.get(), first, "confirmed pages are not asked again");
        // A page the stub refuses is unmapped, whatever the host holds.
        let mut fresh = DirectReader {
            confirmed: HashMap::new(),
            refused: HashSet::new(),
            pages: HashMap::new(),
            maps: None,
            ..reader
        };
        assert_eq!(
            fresh.read(addr, &mut buf, &mut |_| false),
            DirectRead::Unmapped
        );
        assert_eq!(
            fresh.read(8, &mut [0u8; 8], &mut |_| true),
            DirectRead::Unmapped
        );
    }
}
