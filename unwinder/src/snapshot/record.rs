//! Recording: unwinding a stopped process while keeping every page it
//! reads and every answer its modules give, so that the result replays
//! with nothing else.

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::format::{Snapshot, SnapshotModule};
use crate::address::FrameAddress;
use crate::arch::Arch;
use crate::error::Result;
use crate::memory::{Memory, PAGE};
use crate::module::Module;
use crate::process::CoreProcess;
use crate::session::{Session, StackReport, StoppedThread};
use crate::unwind::Process;

/// Granule for partly readable pages.
const CHUNK: u64 = 64;
/// Bytes of code kept after every frame's pc (for emulation).
const CODE_AFTER_PC: u64 = 2 * PAGE;
/// Bytes of JIT code kept before a frame's pc.
const JIT_CODE_BEFORE_PC: u64 = 4 * PAGE;
/// Functions longer than this keep only the code around the pc.
const MAX_FUNCTION_CODE: u64 = 256 << 10;

/// Memory that keeps a copy of every page the unwinder reads.
pub struct RecordingProcess<'a, P: Process> {
    inner: &'a P,
    pages: RefCell<BTreeMap<u64, Vec<u8>>>,
}

impl<'a, P: Process> RecordingProcess<'a, P> {
    /// Wraps a process; its modules start recording too.
    pub fn new(inner: &'a P) -> Self {
        for m in inner.modules() {
            m.start_recording();
        }
        RecordingProcess {
            inner,
            pages: RefCell::new(BTreeMap::new()),
        }
    }

    fn keep(&self, addr: u64, buf: &[u8]) {
        let end = addr.saturating_add(buf.len() as u64);
        let mut page = addr & !(PAGE - 1);
        let mut pages = self.pages.borrow_mut();
        while page < end {
            if !pages.contains_key(&page) {
                let mut whole = vec![0u8; PAGE as usize];
                if self.inner.read(page, &mut whole).is_ok() {
                    pages.insert(page, whole);
                } else {
                    // Part of the page is not readable (a segment ends in
                    // it): keep every readable chunk, and what was read.
                    let mut run: Option<(u64, Vec<u8>)> = None;
                    let mut chunk = [0u8; CHUNK as usize];
                    let mut at = page;
                    while at < page + PAGE {
                        if self.inner.read(at, &mut chunk).is_ok() {
                            match run.as_mut() {
                                Some((_, bytes)) => bytes.extend_from_slice(&chunk),
                                None => run = Some((at, chunk.to_vec())),
                            }
                        } else if let Some((s, bytes)) = run.take() {
                            pages.insert(s, bytes);
                        }
                        at += CHUNK;
                    }
                    if let Some((s, bytes)) = run.take() {
                        pages.insert(s, bytes);
                    }
                    let lo = page.max(addr);
                    let hi = (page + PAGE).min(end);
                    let slice = &buf[(lo - addr) as usize..(hi - addr) as usize];
                    if !covered(&pages, lo, slice.len()) {
                        pages.insert(lo, slice.to_vec());
                    }
                }
            }
            page += PAGE;
        }
    }
}

fn covered(map: &BTreeMap<u64, Vec<u8>>, addr: u64, len: usize) -> bool {
    map.range(..=addr)
        .next_back()
        .is_some_and(|(&s, b)| addr + len as u64 <= s + b.len() as u64)
}

impl<P: Process> Memory for RecordingProcess<'_, P> {
    fn mapping_at(&self, addr: u64) -> Option<(u64, u64)> {
        self.inner.mapping_at(addr)
    }
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.inner.read(addr, buf)?;
        self.keep(addr, buf);
        Ok(())
    }
}

impl<P: Process> Process for RecordingProcess<'_, P> {
    fn arch(&self) -> &'static dyn Arch {
        self.inner.arch()
    }
    fn module_at(&self, addr: u64) -> Option<&Module> {
        self.inner.module_at(addr)
    }
    fn modules(&self) -> &[Module] {
        self.inner.modules()
    }
    fn executable(&self) -> Option<&Module> {
        self.inner.executable()
    }
}

/// Unwinds a core while recording, and returns the snapshot with the
/// report of that unwind. `meta` is added to the provenance.
pub fn record(
    process: &CoreProcess,
    meta: BTreeMap<String, String>,
    oracle: Option<String>,
) -> (Snapshot, StackReport) {
    let mut meta = meta;
    meta.insert("source".into(), process.core.path.display().to_string());
    meta.insert("source_size".into(), process.core.file_len().to_string());
    record_threads(
        process,
        &process.core.threads,
        process.missing.clone(),
        meta,
        oracle,
    )
}

/// Unwinds `threads` of any stopped process (a core, a live guest) while
/// recording everything the unwind reads, and returns the snapshot with
/// the report of that unwind.
pub fn record_threads<P: Process>(
    process: &P,
    threads: &[StoppedThread],
    warnings: Vec<String>,
    meta: BTreeMap<String, String>,
    oracle: Option<String>,
) -> (Snapshot, StackReport) {
    let mut session = Session::new(RecordingProcess::new(process));
    let mut report = session.unwind_all(threads);
    report.warnings.splice(0..0, warnings);
    let snapshot = finish_recording(session.into_process(), &report, threads, meta, oracle);
    (snapshot, report)
}

/// Ends a recording after its unwind gave `report` from `threads`: keeps
/// every frame's code, then gathers the pages read and the modules'
/// answers into a snapshot. `meta` is its provenance.
pub fn finish_recording<P: Process>(
    rec: RecordingProcess<'_, P>,
    report: &StackReport,
    threads: &[StoppedThread],
    mut meta: BTreeMap<String, String>,
    oracle: Option<String>,
) -> Snapshot {
    let process = rec.inner;
    // Keep every frame's code from its function's start to a little past
    // the pc: enough to emulate it forward or step through its prologue.
    for t in &report.threads {
        for (i, f) in t.frames.iter().enumerate() {
            // Frames after the first count as return addresses, also those
            // the innermost step showed at its pc (inlined functions): the
            // lookup then at worst lands in the function before, whose
            // code is kept as well.
            let lookup = FrameAddress::at_depth(i, f.pc).lookup();
            // JIT code has no symbol: keep a window before the pc, which
            // holds the start of all but very large functions.
            let start = match process.module_at(lookup) {
                Some(m) => m
                    .symbolize(lookup)
                    .map(|s| s.start)
                    .filter(|&s| f.pc - s <= MAX_FUNCTION_CODE)
                    .unwrap_or(f.pc),
                None => f.pc.saturating_sub(JIT_CODE_BEFORE_PC),
            };
            let mut at = start & !(PAGE - 1);
            while at < f.pc.saturating_add(CODE_AFTER_PC) {
                let mut b = [0u8; 1];
                let _ = rec.read(at, &mut b);
                at += PAGE;
            }
        }
    }
    if let Some(v) = &report.v8_version {
        meta.insert("v8_version".into(), v.clone());
    }
    let exe_start = process.executable().map(|e| e.start);
    let modules = process
        .modules()
        .iter()
        .filter_map(|m| {
            let answers = m.take_recording()?;
            Some(SnapshotModule {
                name: m.name.clone(),
                path: m.path.display().to_string(),
                bias: m.bias,
                arch: m.arch,
                is_exe: Some(m.start) == exe_start,
                build_id: m.build_id.clone().unwrap_or_default(),
                segments: m.segments.clone(),
                answers,
            })
        })
        .collect();
    Snapshot {
        arch: process.arch().kind(),
        meta,
        threads: threads.to_vec(),
        memory: rec.pages.into_inner(),
        modules,
        expected: serde_json::to_string(&report.threads).ok(),
        oracle,
    }
}
