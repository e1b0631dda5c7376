//! Snapshots: a captured stack made small and self-contained. A snapshot
//! holds each thread's registers, the memory pages the unwinder read, and
//! for each module only the answers it gave (symbols, CFI rows, named
//! values, file bytes), plus provenance and the frames the original unwind
//! produced. The byte format is in `docs/snapshot.md`.
//!
//! Recording wraps a core's process so that every read and every module
//! query is kept; replay rebuilds a process from the snapshot alone.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use crate::address::FrameAddress;
use crate::arch::{Arch, ArchKind, Regs, MAX_REGS};
use crate::cfi::{CompiledRow, RegRule};
use crate::coredump::CoreThread;
use crate::error::{Error, Result};
use crate::memory::Memory;
use crate::module::{LoadSegment, Module};
use crate::process::CoreProcess;
use crate::recorded::ModuleAnswers;
use crate::unwind::Process;
use crate::{unwind_threads, CoreReport};

/// File magic.
pub const MAGIC: &[u8; 8] = b"CWSNAP\r\n";
/// Format version this build writes and reads.
pub const VERSION: u32 = 1;
pub use crate::memory::PAGE;
/// Granule for partly readable pages.
const CHUNK: u64 = 64;
/// Largest body a snapshot may declare (decompressed).
const MAX_BODY: u64 = 1 << 30;
/// Bytes of code kept after every frame's pc (for emulation).
const CODE_AFTER_PC: u64 = 2 * PAGE;
/// Bytes of JIT code kept before a frame's pc.
const JIT_CODE_BEFORE_PC: u64 = 4 * PAGE;
/// Functions longer than this keep only the code around the pc.
const MAX_FUNCTION_CODE: u64 = 256 << 10;

// Record tags.
const TAG_META: u8 = 1;
const TAG_THREAD: u8 = 2;
const TAG_MEMORY: u8 = 3;
const TAG_MODULE: u8 = 4;
const TAG_EXPECTED: u8 = 5;
const TAG_ORACLE: u8 = 6;

/// A module as a snapshot keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotModule {
    /// Name as the process knew it.
    pub name: String,
    /// Path of the file when the snapshot was recorded.
    pub path: String,
    /// Load bias: runtime address minus file address.
    pub bias: u64,
    /// Architecture of the file.
    pub arch: ArchKind,
    /// Whether this is the main executable.
    pub is_exe: bool,
    /// GNU build id of the module file (empty when it has none).
    pub build_id: Vec<u8>,
    /// Its `PT_LOAD` segments.
    pub segments: Vec<LoadSegment>,
    /// What the unwinder asked of the module, and its answers.
    pub answers: ModuleAnswers,
}

/// A decoded snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Architecture of the process.
    pub arch: ArchKind,
    /// Provenance: `node_version`, `v8_version`, `scenario`, `capture`,
    /// `source`, `source_size`, ...
    pub meta: BTreeMap<String, String>,
    /// Threads and their registers.
    pub threads: Vec<CoreThread>,
    /// Recorded memory: start -> bytes (page-granular where possible).
    pub memory: BTreeMap<u64, Vec<u8>>,
    /// Modules, with what was recorded from them.
    pub modules: Vec<SnapshotModule>,
    /// The original unwind's threads, as JSON.
    pub expected: Option<String>,
    /// V8's own stack printed by the program, if any.
    pub oracle: Option<String>,
}

impl PartialEq for LoadSegment {
    fn eq(&self, o: &Self) -> bool {
        (
            self.vaddr,
            self.memsz,
            self.offset,
            self.filesz,
            self.executable,
        ) == (o.vaddr, o.memsz, o.offset, o.filesz, o.executable)
    }
}
impl Eq for LoadSegment {}

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
}

/// Unwinds a core while recording, and returns the snapshot with the
/// report of that unwind. `meta` is added to the provenance.
pub fn record(
    process: &CoreProcess,
    meta: BTreeMap<String, String>,
    oracle: Option<String>,
) -> (Snapshot, CoreReport) {
    let mut meta = meta;
    meta.insert("source".into(), process.core.path.display().to_string());
    meta.insert("source_size".into(), process.core.file_len().to_string());
    record_threads(
        process,
        process.executable(),
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
    exe: Option<&Module>,
    threads: &[CoreThread],
    warnings: Vec<String>,
    mut meta: BTreeMap<String, String>,
    oracle: Option<String>,
) -> (Snapshot, CoreReport) {
    let rec = RecordingProcess::new(process);
    let report = unwind_threads(&rec, exe, threads, warnings, None);
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
    let exe_start = exe.map(|e| e.start);
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
    let snapshot = Snapshot {
        arch: process.arch().kind(),
        meta,
        threads: threads.to_vec(),
        memory: rec.pages.into_inner(),
        modules,
        expected: serde_json::to_string(&report.threads).ok(),
        oracle,
    };
    (snapshot, report)
}

/// A process rebuilt from a snapshot: its memory (in Unicorn when the
/// `unicorn` feature is on) and its modules' recorded answers.
pub struct SnapshotProcess {
    /// Architecture of the process.
    pub arch: ArchKind,
    /// Threads and their registers.
    pub threads: Vec<CoreThread>,
    /// Modules answering from their recordings.
    pub modules: Vec<Module>,
    exe: Option<usize>,
    memory: Box<dyn Memory>,
}

impl SnapshotProcess {
    /// Builds the process. With the `unicorn` feature the memory is mapped
    /// into a Unicorn instance and read from there.
    pub fn new(s: &Snapshot) -> Result<SnapshotProcess> {
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
        Ok(SnapshotProcess {
            arch: s.arch,
            threads: s.threads.clone(),
            modules,
            exe,
            memory: replay_memory(s)?,
        })
    }

    /// The main executable.
    pub fn executable(&self) -> Option<&Module> {
        self.exe.and_then(|i| self.modules.get(i))
    }

    /// Unwinds every thread, as the original unwind did; `trace`, when
    /// given, receives one line per unwind step.
    pub fn unwind(&self, trace: Option<crate::unwind::TraceSink>) -> CoreReport {
        unwind_threads(self, self.executable(), &self.threads, Vec::new(), trace)
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
    Ok(Box::new(RangeMemory {
        ranges: s.memory.clone(),
    }))
}

/// Memory made of recorded ranges: reads must lie inside what was kept.
pub struct RangeMemory {
    /// Recorded memory: start -> bytes.
    pub ranges: BTreeMap<u64, Vec<u8>>,
}

impl Memory for RangeMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        read_ranges(&self.ranges, addr, buf)
    }
}

/// Reads `buf` from ranges, possibly across adjacent ones.
pub fn read_ranges(ranges: &BTreeMap<u64, Vec<u8>>, addr: u64, buf: &mut [u8]) -> Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let at = addr.wrapping_add(done as u64);
        let Some((&s, bytes)) = ranges.range(..=at).next_back() else {
            return Err(Error::Unmapped {
                addr,
                len: buf.len(),
            });
        };
        let off = (at - s) as usize;
        if off >= bytes.len() {
            return Err(Error::Unmapped {
                addr,
                len: buf.len(),
            });
        }
        let n = (bytes.len() - off).min(buf.len() - done);
        buf[done..done + n].copy_from_slice(&bytes[off..off + n]);
        done += n;
    }
    Ok(())
}

impl Memory for SnapshotProcess {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        self.memory.read(addr, buf)
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
}

// ---------------------------------------------------------------- encoding

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn record(&mut self, tag: u8, body: Writer) {
        self.u8(tag);
        self.u64(body.0.len() as u64);
        self.0.extend_from_slice(&body.0);
    }
}

fn arch_code(a: ArchKind) -> u8 {
    match a {
        ArchKind::Aarch64 => 1,
        ArchKind::X86_64 => 2,
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Snapshot {
    /// Encodes the snapshot (header plus zstd-compressed body).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut body = Writer(Vec::new());
        let mut meta = Writer(Vec::new());
        meta.u8(arch_code(self.arch));
        meta.u32(self.meta.len() as u32);
        for (k, v) in &self.meta {
            meta.str(k);
            meta.str(v);
        }
        body.record(TAG_META, meta);
        for t in &self.threads {
            let mut w = Writer(Vec::new());
            w.u32(t.tid);
            w.u16(t.signal);
            let regs: Vec<(u16, u64)> = (0..MAX_REGS as u16)
                .filter_map(|r| t.regs.get(r).map(|v| (r, v)))
                .collect();
            w.u16(regs.len() as u16);
            for (r, v) in regs {
                w.u16(r);
                w.u64(v);
            }
            body.record(TAG_THREAD, w);
        }
        for (addr, bytes) in &self.memory {
            let mut w = Writer(Vec::new());
            w.u64(*addr);
            w.bytes(bytes);
            body.record(TAG_MEMORY, w);
        }
        for m in &self.modules {
            body.record(TAG_MODULE, encode_module(m));
        }
        if let Some(e) = &self.expected {
            let mut w = Writer(Vec::new());
            w.str(e);
            body.record(TAG_EXPECTED, w);
        }
        if let Some(o) = &self.oracle {
            let mut w = Writer(Vec::new());
            w.str(o);
            body.record(TAG_ORACLE, w);
        }
        let compressed =
            zstd::bulk::compress(&body.0, 19).map_err(|e| Error::Other(format!("zstd: {e}")))?;
        let mut out = Vec::with_capacity(compressed.len() + 28);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(body.0.len() as u64).to_le_bytes());
        out.extend_from_slice(&fnv1a(&body.0).to_le_bytes());
        out.extend_from_slice(&compressed);
        Ok(out)
    }

    /// Writes the snapshot to `path`.
    pub fn write(&self, path: &Path) -> Result<u64> {
        let bytes = self.encode()?;
        std::fs::write(path, &bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(bytes.len() as u64)
    }

    /// Whether `data` starts like a snapshot.
    pub fn is_snapshot(data: &[u8]) -> bool {
        data.starts_with(MAGIC)
    }

    /// Reads and decodes a snapshot file.
    pub fn read(path: &Path) -> Result<Snapshot> {
        let data = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::decode(&data)
            .map_err(|what| Error::Other(format!("{}: corrupt snapshot: {what}", path.display())))
    }

    /// Decodes snapshot bytes. Errors say what is wrong, never panic.
    pub fn decode(data: &[u8]) -> std::result::Result<Snapshot, String> {
        if data.len() < 28 || !data.starts_with(MAGIC) {
            return Err("not a crosswind snapshot (bad magic)".into());
        }
        let version = u32::from_le_bytes(data[8..12].try_into().map_err(|_| "header")?);
        if version != VERSION {
            return Err(format!(
                "format version {version}, this crosswind reads {VERSION}"
            ));
        }
        let body_len = u64::from_le_bytes(data[12..20].try_into().map_err(|_| "header")?);
        let checksum = u64::from_le_bytes(data[20..28].try_into().map_err(|_| "header")?);
        if body_len > MAX_BODY {
            return Err(format!("declares a {body_len}-byte body"));
        }
        let body = zstd::bulk::decompress(&data[28..], body_len as usize)
            .map_err(|e| format!("body does not decompress: {e}"))?;
        if body.len() as u64 != body_len {
            return Err(format!(
                "body is {} bytes, header says {body_len}",
                body.len()
            ));
        }
        if fnv1a(&body) != checksum {
            return Err("checksum mismatch".into());
        }
        let mut r = Reader { data: &body, at: 0 };
        let mut arch = None;
        let mut s = Snapshot {
            arch: ArchKind::Aarch64,
            meta: BTreeMap::new(),
            threads: Vec::new(),
            memory: BTreeMap::new(),
            modules: Vec::new(),
            expected: None,
            oracle: None,
        };
        while !r.done() {
            let tag = r.u8("record tag")?;
            let len = r.u64("record length")?;
            let payload = r.take(len, "record")?;
            let mut p = Reader {
                data: payload,
                at: 0,
            };
            match tag {
                TAG_META => {
                    arch = Some(match p.u8("arch")? {
                        1 => ArchKind::Aarch64,
                        2 => ArchKind::X86_64,
                        other => return Err(format!("unknown architecture code {other}")),
                    });
                    let n = p.count(8, "meta entries")?;
                    for _ in 0..n {
                        let k = p.str("meta key")?;
                        let v = p.str("meta value")?;
                        s.meta.insert(k, v);
                    }
                }
                TAG_THREAD => {
                    let tid = p.u32("tid")?;
                    let signal = p.u16("signal")?;
                    let n = p.u16("register count")? as usize;
                    let mut regs = Regs::default();
                    for _ in 0..n {
                        let reg = p.u16("register")?;
                        let v = p.u64("register value")?;
                        if reg as usize >= MAX_REGS {
                            return Err(format!("register number {reg} out of range"));
                        }
                        regs.set(reg, v);
                    }
                    s.threads.push(CoreThread { tid, signal, regs });
                }
                TAG_MEMORY => {
                    let addr = p.u64("memory address")?;
                    let bytes = p.bytes("memory bytes")?;
                    s.memory.insert(addr, bytes.to_vec());
                }
                TAG_MODULE => s.modules.push(decode_module(&mut p)?),
                TAG_EXPECTED => s.expected = Some(p.str("expected frames")?),
                TAG_ORACLE => s.oracle = Some(p.str("oracle")?),
                _ => {} // unknown records are skipped: later versions may add some
            }
        }
        s.arch = arch.ok_or("no META record")?;
        if s.threads.is_empty() {
            return Err("no THREAD record".into());
        }
        Ok(s)
    }
}

fn encode_module(m: &SnapshotModule) -> Writer {
    let mut w = Writer(Vec::new());
    w.str(&m.name);
    w.str(&m.path);
    w.u64(m.bias);
    w.u8(arch_code(m.arch));
    w.u8(m.is_exe as u8);
    w.bytes(&m.build_id);
    w.u32(m.segments.len() as u32);
    for s in &m.segments {
        w.u64(s.vaddr);
        w.u64(s.memsz);
        w.u64(s.offset);
        w.u64(s.filesz);
        w.u8(s.executable as u8);
    }
    let a = &m.answers;
    w.u32(a.symbols.len() as u32);
    for (addr, (size, name)) in &a.symbols {
        w.u64(*addr);
        w.u64(*size);
        w.str(name);
    }
    w.u32(a.names.len() as u32);
    for (name, hit) in &a.names {
        w.str(name);
        w.u8(hit.is_some() as u8);
        let (addr, size) = hit.unwrap_or((0, 0));
        w.u64(addr);
        w.u64(size);
    }
    w.u32(a.prefixes.len() as u32);
    for (prefix, list) in &a.prefixes {
        w.str(prefix);
        w.u32(list.len() as u32);
        for (name, addr, size) in list {
            w.str(name);
            w.u64(*addr);
            w.u64(*size);
        }
    }
    w.u32(a.ranges.len() as u32);
    for (prefix, list) in &a.ranges {
        w.str(prefix);
        w.u32(list.len() as u32);
        for (start, end, name) in list {
            w.u64(*start);
            w.u64(*end);
            w.str(name);
        }
    }
    w.u32(a.cfi.len() as u32);
    for (addr, (end, row)) in &a.cfi {
        w.u64(*addr);
        w.u64(*end);
        match row {
            None => w.u8(0),
            Some(r) => {
                w.u8(1);
                w.u16(r.cfa_reg);
                w.i64(r.cfa_offset);
                w.u16(r.rules.len() as u16);
                for (reg, rule) in &r.rules {
                    w.u16(*reg);
                    let (kind, v) = match rule {
                        RegRule::Same => (0, 0),
                        RegRule::Undefined => (1, 0),
                        RegRule::AtCfa(o) => (2, *o),
                        RegRule::ValCfa(o) => (3, *o),
                        RegRule::InReg(r) => (4, *r as i64),
                    };
                    w.u8(kind);
                    w.i64(v);
                }
            }
        }
    }
    w.u32(a.bytes.len() as u32);
    for (addr, bytes) in &a.bytes {
        w.u64(*addr);
        w.bytes(bytes);
    }
    w
}

fn decode_module(p: &mut Reader) -> std::result::Result<SnapshotModule, String> {
    let name = p.str("module name")?;
    let path = p.str("module path")?;
    let bias = p.u64("module bias")?;
    let arch = match p.u8("module arch")? {
        1 => ArchKind::Aarch64,
        2 => ArchKind::X86_64,
        other => return Err(format!("module {name}: unknown architecture code {other}")),
    };
    let is_exe = p.u8("module exe flag")? != 0;
    let build_id = p.bytes("module build id")?.to_vec();
    let mut segments = Vec::new();
    for _ in 0..p.count(33, "segments")? {
        segments.push(LoadSegment {
            vaddr: p.u64("segment")?,
            memsz: p.u64("segment")?,
            offset: p.u64("segment")?,
            filesz: p.u64("segment")?,
            executable: p.u8("segment")? != 0,
        });
    }
    let mut a = ModuleAnswers::default();
    for _ in 0..p.count(20, "symbols")? {
        let addr = p.u64("symbol")?;
        let size = p.u64("symbol")?;
        let n = p.str("symbol name")?;
        a.symbols.insert(addr, (size, n));
    }
    for _ in 0..p.count(21, "names")? {
        let n = p.str("name")?;
        let present = p.u8("name")? != 0;
        let addr = p.u64("name")?;
        let size = p.u64("name")?;
        a.names.insert(n, present.then_some((addr, size)));
    }
    for _ in 0..p.count(8, "prefix queries")? {
        let prefix = p.str("prefix")?;
        let mut list = Vec::new();
        for _ in 0..p.count(20, "prefix results")? {
            list.push((p.str("symbol name")?, p.u64("symbol")?, p.u64("symbol")?));
        }
        a.prefixes.insert(prefix, list);
    }
    for _ in 0..p.count(8, "range queries")? {
        let prefix = p.str("prefix")?;
        let mut list = Vec::new();
        for _ in 0..p.count(20, "range results")? {
            list.push((p.u64("range")?, p.u64("range")?, p.str("range name")?));
        }
        a.ranges.insert(prefix, list);
    }
    for _ in 0..p.count(17, "CFI rows")? {
        let addr = p.u64("CFI row")?;
        let end = p.u64("CFI row")?;
        let row = if p.u8("CFI row")? == 0 {
            None
        } else {
            let cfa_reg = p.u16("CFI row")?;
            let cfa_offset = p.i64("CFI row")?;
            let mut rules = Vec::new();
            for _ in 0..p.u16("CFI rules")? {
                let reg = p.u16("CFI rule")?;
                let kind = p.u8("CFI rule")?;
                let v = p.i64("CFI rule")?;
                rules.push((
                    reg,
                    match kind {
                        0 => RegRule::Same,
                        1 => RegRule::Undefined,
                        2 => RegRule::AtCfa(v),
                        3 => RegRule::ValCfa(v),
                        4 => RegRule::InReg(v as u16),
                        k => return Err(format!("module {name}: unknown CFI rule kind {k}")),
                    },
                ));
            }
            Some(CompiledRow {
                cfa_reg,
                cfa_offset,
                rules,
            })
        };
        a.cfi.insert(addr, (end, row));
    }
    for _ in 0..p.count(12, "file byte ranges")? {
        let addr = p.u64("file bytes")?;
        a.bytes.insert(addr, p.bytes("file bytes")?.to_vec());
    }
    Ok(SnapshotModule {
        name,
        path,
        bias,
        arch,
        is_exe,
        build_id,
        segments,
        answers: a,
    })
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.at >= self.data.len()
    }
    fn take(&mut self, n: u64, what: &str) -> std::result::Result<&'a [u8], String> {
        let end = (self.at as u64)
            .checked_add(n)
            .filter(|&e| e <= self.data.len() as u64)
            .ok_or_else(|| format!("{what} truncated at byte {}", self.at))?;
        let s = &self.data[self.at..end as usize];
        self.at = end as usize;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> std::result::Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> std::result::Result<u16, String> {
        Ok(u16::from_le_bytes(
            self.take(2, what)?
                .try_into()
                .map_err(|_| what.to_string())?,
        ))
    }
    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?
                .try_into()
                .map_err(|_| what.to_string())?,
        ))
    }
    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?
                .try_into()
                .map_err(|_| what.to_string())?,
        ))
    }
    fn i64(&mut self, what: &str) -> std::result::Result<i64, String> {
        Ok(self.u64(what)? as i64)
    }
    fn bytes(&mut self, what: &str) -> std::result::Result<&'a [u8], String> {
        let n = self.u32(what)?;
        self.take(n as u64, what)
    }
    fn str(&mut self, what: &str) -> std::result::Result<String, String> {
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
    /// A count of items at least `min_size` bytes each, checked against
    /// the bytes left so a corrupt count cannot make us loop or allocate.
    fn count(&mut self, min_size: u64, what: &str) -> std::result::Result<u32, String> {
        let n = self.u32(what)?;
        let left = (self.data.len() - self.at) as u64;
        if n as u64 * min_size > left {
            return Err(format!("{what}: count {n} exceeds the {left} bytes left"));
        }
        Ok(n)
    }
}
