//! The snapshot format: what a snapshot holds ([`Snapshot`],
//! [`SnapshotModule`]) and its bytes, encoded and decoded with checks so
//! that damaged input gives an error, never a panic. The byte layout is
//! documented in `docs/snapshot.md`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::arch::{ArchKind, Regs, MAX_REGS};
use crate::cfi::{CompiledRow, RegRule};
use crate::error::{Error, Result};
use crate::module::LoadSegment;
use crate::recorded::ModuleAnswers;
use crate::session::StoppedThread;

/// File magic.
pub const MAGIC: &[u8; 8] = b"CWSNAP\r\n";
/// Format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Provenance key saying what kind of process was captured.
pub const META_PROCESS: &str = "process";
/// [`META_PROCESS`] of a running process captured a thread at a time
/// (`snapshot --pid`): no thread crashed.
pub const PROCESS_RUNNING: &str = "running";
/// Largest body a snapshot may declare (decompressed).
const MAX_BODY: u64 = 1 << 30;

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
    pub threads: Vec<StoppedThread>,
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
                    s.threads.push(StoppedThread { tid, signal, regs });
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
