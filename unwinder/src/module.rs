//! ELF modules (the executable and shared libraries): their bytes, load
//! segments, demangled symbol tables and DWARF call-frame information, with
//! per-module caches so a large binary is parsed once, not per frame.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, LittleEndian, ParsedEhFrameHdr, RegisterRule,
    UnwindContext, UnwindSection,
};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{elf, Endianness, Object, ObjectSection, ObjectSymbol};

use crate::arch::ArchKind;
pub use crate::cfi::{CompiledRow, RegRule};
use crate::error::{Error, Result};
use crate::recorded::ModuleAnswers;

/// The bytes of a file: memory-mapped when possible.
pub struct FileBytes {
    map: Option<memmap2::Mmap>,
    owned: Vec<u8>,
}

impl FileBytes {
    /// Maps the file at `path`.
    pub fn open(path: &Path) -> Result<FileBytes> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Ok(FileBytes::from_vec(Vec::new()));
        }
        // SAFETY: the mapping is read-only and private. Inputs are cores and
        // binaries that nothing should modify while we read them; if they
        // are truncated underneath us the process may fault, which is the
        // documented caveat of every mmap-based reader (gdb, object, ...).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Ok(FileBytes {
            map: Some(map),
            owned: Vec::new(),
        })
    }

    /// Wraps bytes already in memory.
    pub fn from_vec(v: Vec<u8>) -> FileBytes {
        FileBytes {
            map: None,
            owned: v,
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.map {
            Some(m) => m,
            None => &self.owned,
        }
    }
}

/// A `PT_LOAD` segment of a module file, in file (unbiased) addresses.
#[derive(Debug, Clone, Copy)]
pub struct LoadSegment {
    /// File address of the segment.
    pub vaddr: u64,
    /// Bytes of memory it covers.
    pub memsz: u64,
    /// Offset of its bytes in the file.
    pub offset: u64,
    /// Bytes of it in the file.
    pub filesz: u64,
    /// Whether the segment is executable.
    pub executable: bool,
}

/// One symbol: file address, size and mangled name.
#[derive(Debug, Clone)]
struct Symbol {
    addr: u64,
    size: u64,
    name: String,
    /// Lower is preferred among aliases: global, weak, local.
    rank: u8,
}

/// A symbol found for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolHit {
    /// Demangled name.
    pub name: String,
    /// Mangled (raw) name.
    pub raw: String,
    /// Offset of the address from the symbol's start.
    pub offset: u64,
    /// Start address (biased).
    pub start: u64,
}

/// A loaded ELF module.
pub struct Module {
    /// Name as the process knows it (guest path, or `[exe]`).
    pub name: String,
    /// Resolved path on this machine.
    pub path: PathBuf,
    /// Load bias: runtime address minus file address.
    pub bias: u64,
    /// Architecture of the file.
    pub arch: ArchKind,
    /// Its `PT_LOAD` segments.
    pub segments: Vec<LoadSegment>,
    /// Runtime address range covered by the module's segments.
    pub start: u64,
    /// End of that range (exclusive).
    pub end: u64,
    /// The GNU build id, when the file has one.
    pub build_id: Option<Vec<u8>>,
    bytes: FileBytes,
    symbols: OnceLock<Vec<Symbol>>,
    by_name: OnceLock<std::collections::BTreeMap<String, (u64, u64)>>,
    eh_frame: Option<(u64, std::ops::Range<usize>)>,
    eh_frame_hdr: Option<(u64, std::ops::Range<usize>)>,
    text_addr: u64,
    cfi_cache: RefCell<HashMap<u64, Option<CompiledRow>>>,
    unwind_ctx: RefCell<UnwindContext<usize>>,
    demangled: RefCell<HashMap<u64, String>>,
    /// Replay: the answers a snapshot recorded stand in for the file.
    replay: Option<ModuleAnswers>,
    /// Recording: what the unwinder has asked so far.
    recording: RefCell<Option<ModuleAnswers>>,
}

// Bound on how many compiled rows one module caches, so a long sampling
// session cannot grow without limit.
const CFI_CACHE_LIMIT: usize = 1 << 16;

impl Module {
    /// Opens the ELF file at `path` as a module loaded with `bias`.
    pub fn open(name: &str, path: &Path, bias: u64) -> Result<Module> {
        let bytes = FileBytes::open(path)?;
        let data = bytes.bytes();
        let bad = |what: String| Error::BadElf {
            path: path.to_path_buf(),
            what,
        };
        if data.len() < 4 || &data[..4] != b"\x7fELF" {
            return Err(Error::NotElf {
                path: path.to_path_buf(),
            });
        }
        let header = elf::FileHeader64::<Endianness>::parse(data)
            .map_err(|e| bad(format!("header: {e}")))?;
        let endian = header.endian().map_err(|e| bad(e.to_string()))?;
        let arch = ArchKind::from_e_machine(header.e_machine(endian)).ok_or_else(|| {
            Error::UnsupportedArch {
                path: path.to_path_buf(),
                arch: format!("e_machine {}", header.e_machine(endian)),
            }
        })?;
        let mut segments = Vec::new();
        for ph in header
            .program_headers(endian, data)
            .map_err(|e| bad(format!("program headers: {e}")))?
        {
            if ph.p_type(endian) == elf::PT_LOAD {
                segments.push(LoadSegment {
                    vaddr: ph.p_vaddr(endian),
                    memsz: ph.p_memsz(endian),
                    offset: ph.p_offset(endian),
                    filesz: ph.p_filesz(endian),
                    executable: ph.p_flags(endian) & elf::PF_X != 0,
                });
            }
        }
        let (start, end) = runtime_range(&segments, bias);

        let file = object::File::parse(data).map_err(|e| bad(e.to_string()))?;
        let section_range = |name: &str| {
            let s = file.section_by_name(name)?;
            let (off, size) = s.file_range()?;
            let r = off as usize..(off as usize).checked_add(size as usize)?;
            data.get(r.clone())?;
            Some((s.address(), r))
        };
        let eh_frame = section_range(".eh_frame");
        let eh_frame_hdr = section_range(".eh_frame_hdr");
        let text_addr = file
            .section_by_name(".text")
            .map(|s| s.address())
            .unwrap_or(0);
        let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
        drop(file);
        Ok(Module {
            name: name.to_string(),
            path: path.to_path_buf(),
            bias,
            arch,
            segments,
            start,
            end,
            build_id,
            bytes,
            symbols: OnceLock::new(),
            by_name: OnceLock::new(),
            eh_frame,
            eh_frame_hdr,
            text_addr,
            cfi_cache: RefCell::new(HashMap::new()),
            unwind_ctx: RefCell::new(UnwindContext::new()),
            demangled: RefCell::new(HashMap::new()),
            replay: None,
            recording: RefCell::new(None),
        })
    }

    /// A module that answers from a snapshot's recording instead of a file.
    pub fn from_answers(
        name: &str,
        path: &Path,
        bias: u64,
        arch: ArchKind,
        segments: Vec<LoadSegment>,
        build_id: Option<Vec<u8>>,
        answers: ModuleAnswers,
    ) -> Module {
        let (start, end) = runtime_range(&segments, bias);
        Module {
            name: name.to_string(),
            path: path.to_path_buf(),
            bias,
            arch,
            segments,
            start,
            end,
            build_id,
            bytes: FileBytes::from_vec(Vec::new()),
            symbols: OnceLock::new(),
            by_name: OnceLock::new(),
            eh_frame: None,
            eh_frame_hdr: None,
            text_addr: 0,
            cfi_cache: RefCell::new(HashMap::new()),
            unwind_ctx: RefCell::new(UnwindContext::new()),
            demangled: RefCell::new(HashMap::new()),
            replay: Some(answers),
            recording: RefCell::new(None),
        }
    }

    /// Starts recording every answer this module gives.
    pub fn start_recording(&self) {
        *self.recording.borrow_mut() = Some(ModuleAnswers::default());
    }

    /// Stops recording and returns what was recorded.
    pub fn take_recording(&self) -> Option<ModuleAnswers> {
        self.recording.borrow_mut().take()
    }

    fn record(&self, f: impl FnOnce(&mut ModuleAnswers)) {
        if let Some(r) = self.recording.borrow_mut().as_mut() {
            f(r);
        }
    }

    /// The same module loaded at another bias (the file is not reopened).
    pub fn rebased(mut self, bias: u64) -> Module {
        self.start = self.start.wrapping_sub(self.bias).wrapping_add(bias);
        self.end = self.end.wrapping_sub(self.bias).wrapping_add(bias);
        self.bias = bias;
        self.cfi_cache.get_mut().clear();
        self
    }

    /// The module file's bytes.
    pub fn file_bytes(&self) -> &[u8] {
        self.bytes.bytes()
    }

    /// Whether the runtime address lies in one of the module's segments.
    pub fn contains(&self, addr: u64) -> bool {
        let a = addr.wrapping_sub(self.bias);
        self.segments
            .iter()
            .any(|s| a >= s.vaddr && a - s.vaddr < s.memsz)
    }

    /// Whether the runtime address lies in an executable segment.
    pub fn contains_code(&self, addr: u64) -> bool {
        let a = addr.wrapping_sub(self.bias);
        self.segments
            .iter()
            .any(|s| s.executable && a >= s.vaddr && a - s.vaddr < s.memsz)
    }

    /// Reads file-backed bytes at a runtime address. Fails for addresses in
    /// `.bss` or outside the module.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let a = addr.wrapping_sub(self.bias);
        if let Some(r) = &self.replay {
            return r.read(a, buf);
        }
        let ok = self.read_file(a, buf);
        if ok {
            self.record(|r| r.add_bytes(a, buf));
        }
        ok
    }

    fn read_file(&self, a: u64, buf: &mut [u8]) -> bool {
        for s in &self.segments {
            if a < s.vaddr {
                continue;
            }
            let rel = a - s.vaddr;
            let Some(end) = rel.checked_add(buf.len() as u64) else {
                continue;
            };
            if end > s.filesz {
                continue;
            }
            let start = (s.offset + rel) as usize;
            if let Some(src) = self.bytes.bytes().get(start..start + buf.len()) {
                buf.copy_from_slice(src);
                return true;
            }
        }
        false
    }

    fn symbols(&self) -> &[Symbol] {
        self.symbols.get_or_init(|| {
            let mut out = Vec::new();
            if let Ok(file) = object::File::parse(self.bytes.bytes()) {
                for sym in file.symbols().chain(file.dynamic_symbols()) {
                    // Imports of a non-PIE executable carry their PLT stub's
                    // address; the stub is named `NAME@plt` below instead.
                    if sym.kind() != object::SymbolKind::Text
                        || sym.address() == 0
                        || sym.is_undefined()
                    {
                        continue;
                    }
                    if let Ok(name) = sym.name() {
                        if name.is_empty() || name.starts_with("$x") || name.starts_with("$d") {
                            continue;
                        }
                        let rank = if sym.is_weak() {
                            1
                        } else if sym.is_global() {
                            0
                        } else {
                            2
                        };
                        out.push(Symbol {
                            addr: sym.address(),
                            size: sym.size(),
                            name: name.to_string(),
                            rank,
                        });
                    }
                }
            }
            out.extend(plt_symbols(self.bytes.bytes()));
            // Among aliases at one address keep the one gdb would show:
            // strong global first, then weak, then local.
            out.sort_by(|a, b| {
                a.addr
                    .cmp(&b.addr)
                    .then(a.rank.cmp(&b.rank))
                    .then(b.size.cmp(&a.size))
            });
            out.dedup_by_key(|s| s.addr);
            out
        })
    }

    /// Every named symbol (code and data, `.symtab` and `.dynsym`) by
    /// name, built once: V8's `v8dbg_*` constants and tables are looked up
    /// here many times per binary.
    fn names(&self) -> &std::collections::BTreeMap<String, (u64, u64)> {
        self.by_name.get_or_init(|| {
            let mut out = std::collections::BTreeMap::new();
            if let Ok(file) = object::File::parse(self.bytes.bytes()) {
                for sym in file.symbols().chain(file.dynamic_symbols()) {
                    if let Ok(name) = sym.name() {
                        if !name.is_empty() && sym.address() != 0 {
                            out.entry(name.to_string())
                                .or_insert((sym.address(), sym.size()));
                        }
                    }
                }
            }
            out
        })
    }

    /// Symbols whose names start with `prefix`: (name, file address, size).
    pub fn lookup_data_symbols(&self, prefix: &str) -> Vec<(String, u64, u64)> {
        if let Some(r) = &self.replay {
            return r.prefixes.get(prefix).cloned().unwrap_or_default();
        }
        let out: Vec<(String, u64, u64)> = self
            .names()
            .range(prefix.to_string()..)
            .take_while(|(n, _)| n.starts_with(prefix))
            .map(|(n, &(a, s))| (n.clone(), a, s))
            .collect();
        self.record(|r| {
            r.prefixes.insert(prefix.to_string(), out.clone());
        });
        out
    }

    /// The symbol containing the runtime address `addr`.
    pub fn symbolize(&self, addr: u64) -> Option<SymbolHit> {
        let a = addr.wrapping_sub(self.bias);
        let (start, raw) = match &self.replay {
            Some(r) => {
                let (start, raw) = r.symbol_at(a)?;
                (start, raw.to_string())
            }
            None => {
                let syms = self.symbols();
                let idx = syms.partition_point(|s| s.addr <= a);
                let sym = syms.get(idx.checked_sub(1)?)?;
                // Symbols of size 0 (assembly labels) cover up to the next symbol.
                let size = match sym.size {
                    0 => syms
                        .get(idx)
                        .map_or(u64::MAX - sym.addr, |n| n.addr - sym.addr),
                    s => s,
                };
                if a - sym.addr >= size {
                    return None;
                }
                self.record(|r| {
                    r.symbols.insert(sym.addr, (size, sym.name.clone()));
                });
                (sym.addr, sym.name.clone())
            }
        };
        let name = self.demangle(start, &raw);
        Some(SymbolHit {
            name,
            raw,
            offset: a - start,
            start: start.wrapping_add(self.bias),
        })
    }

    /// Runtime address of the symbol named exactly `name`.
    pub fn symbol_address(&self, name: &str) -> Option<u64> {
        let hit = match &self.replay {
            Some(r) => r.names.get(name).copied().flatten(),
            None => {
                let hit = self.names().get(name).copied();
                self.record(|r| {
                    r.names.insert(name.to_string(), hit);
                });
                hit
            }
        };
        hit.map(|(a, _)| a.wrapping_add(self.bias))
    }

    /// Runtime address ranges of all text symbols whose names start with
    /// `prefix`, sorted by start.
    pub fn symbol_ranges(&self, prefix: &str) -> Vec<(u64, u64, String)> {
        let file_ranges = match &self.replay {
            Some(r) => r.ranges.get(prefix).cloned().unwrap_or_default(),
            None => {
                let out = self.file_symbol_ranges(prefix);
                self.record(|r| {
                    r.ranges.insert(prefix.to_string(), out.clone());
                });
                out
            }
        };
        file_ranges
            .into_iter()
            .map(|(s, e, n)| (s.wrapping_add(self.bias), e.wrapping_add(self.bias), n))
            .collect()
    }

    fn file_symbol_ranges(&self, prefix: &str) -> Vec<(u64, u64, String)> {
        let syms = self.symbols();
        let mut out = Vec::new();
        for (i, s) in syms.iter().enumerate() {
            if !s.name.starts_with(prefix) {
                continue;
            }
            let end = if s.size != 0 {
                s.addr + s.size
            } else {
                syms.get(i + 1).map(|n| n.addr).unwrap_or(s.addr)
            };
            out.push((s.addr, end, s.name.clone()));
        }
        out
    }

    fn demangle(&self, key: u64, raw: &str) -> String {
        if let Some(d) = self.demangled.borrow().get(&key) {
            return d.clone();
        }
        let d = demangle(raw);
        self.demangled.borrow_mut().insert(key, d.clone());
        d
    }

    /// The compiled CFI row for runtime address `addr` (already adjusted
    /// for return addresses by the caller), or `None` when the module has no
    /// FDE for it or the row uses expressions.
    pub fn cfi_row(&self, addr: u64) -> Option<CompiledRow> {
        let file_addr = addr.wrapping_sub(self.bias);
        if let Some(r) = &self.replay {
            return r.cfi_at(file_addr);
        }
        let recording = self.recording.borrow().is_some();
        if !recording {
            if let Some(hit) = self.cfi_cache.borrow().get(&addr) {
                return hit.clone();
            }
        }
        let row = self.compute_cfi_row(addr);
        // A lookup that found no FDE is recorded as a one-byte miss.
        self.record(|r| {
            if r.cfi_at(file_addr).is_none() && row.is_none() {
                r.cfi.insert(file_addr, (file_addr + 1, None));
            }
        });
        let mut cache = self.cfi_cache.borrow_mut();
        if cache.len() >= CFI_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(addr, row.clone());
        row
    }

    fn compute_cfi_row(&self, addr: u64) -> Option<CompiledRow> {
        let (eh_addr, eh_range) = self.eh_frame.clone()?;
        let data = self.bytes.bytes();
        let mut eh = EhFrame::new(data.get(eh_range)?, LittleEndian);
        if self.arch == ArchKind::Aarch64 {
            // Opcode 0x2d is DW_CFA_AARCH64_negate_ra_state here, not
            // SPARC's DW_CFA_GNU_window_save.
            eh.set_vendor(gimli::Vendor::AArch64);
        }
        let mut bases = BaseAddresses::default()
            .set_eh_frame(eh_addr)
            .set_text(self.text_addr);
        let file_addr = addr.wrapping_sub(self.bias);
        let mut ctx = self.unwind_ctx.borrow_mut();
        let fde = match self.eh_frame_hdr.clone() {
            Some((hdr_addr, hdr_range)) => {
                bases = bases.set_eh_frame_hdr(hdr_addr);
                let hdr = EhFrameHdr::new(data.get(hdr_range)?, LittleEndian);
                let parsed: ParsedEhFrameHdr<_> = hdr.parse(&bases, 8).ok()?;
                parsed
                    .table()?
                    .fde_for_address(&eh, &bases, file_addr, EhFrame::cie_from_offset)
                    .ok()?
            }
            None => eh
                .fde_for_address(&bases, file_addr, EhFrame::cie_from_offset)
                .ok()?,
        };
        if self.recording.borrow().is_some() {
            // Keep every row of the function: a snapshot then answers for
            // any instruction of it, not only the one looked up.
            let mut rows = Vec::new();
            if let Ok(mut table) = gimli::UnwindTable::new(&eh, &bases, &mut ctx, &fde) {
                while let Ok(Some(row)) = table.next_row() {
                    rows.push((row.start_address(), row.end_address(), compile_row(row)));
                    if rows.len() > MAX_RECORDED_ROWS {
                        break;
                    }
                }
            }
            self.record(|r| {
                for (start, end, row) in rows {
                    r.cfi.insert(start, (end, row));
                }
            });
        }
        let row = fde
            .unwind_info_for_address(&eh, &bases, &mut ctx, file_addr)
            .ok()?;
        compile_row(row)
    }
}

/// Bound on the rows one function's FDE may contribute to a recording.
const MAX_RECORDED_ROWS: usize = 4096;

/// Compiles a gimli row into a [`CompiledRow`]; `None` for rows that use
/// DWARF expressions.
fn compile_row<S: gimli::UnwindContextStorage<usize>>(
    row: &gimli::UnwindTableRow<usize, S>,
) -> Option<CompiledRow> {
    let (cfa_reg, cfa_offset) = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => (register.0, *offset),
        CfaRule::Expression(_) => return None,
    };
    let mut rules = Vec::new();
    for (reg, rule) in row.registers() {
        let r = match rule {
            RegisterRule::Undefined => RegRule::Undefined,
            RegisterRule::SameValue => RegRule::Same,
            RegisterRule::Offset(o) => RegRule::AtCfa(*o),
            RegisterRule::ValOffset(o) => RegRule::ValCfa(*o),
            RegisterRule::Register(r) => RegRule::InReg(r.0),
            // The aarch64 return-address signing state: we strip PAC bits
            // from every return address, so the state is not needed.
            RegisterRule::Constant(_) => continue,
            _ => return None,
        };
        rules.push((reg.0, r));
    }
    Some(CompiledRow {
        cfa_reg,
        cfa_offset,
        rules,
    })
}

/// The runtime address range the segments cover when loaded at `bias`.
fn runtime_range(segments: &[LoadSegment], bias: u64) -> (u64, u64) {
    let start = segments.iter().map(|s| s.vaddr).min().unwrap_or(0);
    let end = segments
        .iter()
        .map(|s| s.vaddr.saturating_add(s.memsz))
        .max()
        .unwrap_or(0);
    (start.wrapping_add(bias), end.wrapping_add(bias))
}

/// The module containing `addr` among `modules` sorted by start.
pub fn module_containing(modules: &[Module], addr: u64) -> Option<&Module> {
    let idx = modules.partition_point(|m| m.start <= addr);
    // Mappings can interleave (a library inside another's gap): look back
    // a few modules, not just one.
    modules[..idx]
        .iter()
        .rev()
        .take(8)
        .find(|m| m.contains(addr))
}

/// Demangles an Itanium C++ name; other names are returned unchanged.
pub fn demangle(raw: &str) -> String {
    if raw.starts_with("_Z") {
        if let Ok(sym) = cpp_demangle::Symbol::new(raw) {
            let opts = cpp_demangle::DemangleOptions::new()
                .no_params()
                .no_return_type();
            if let Ok(s) = sym.demangle(&opts) {
                return s;
            }
        }
    }
    raw.to_string()
}

/// Names for the PLT's stubs, as gdb and objdump print them
/// (`malloc@plt`): `.rela.plt` lists the imported functions in stub
/// order, after the PLT's header. No crate reads these, so they are read
/// here with `object`'s ELF structures.
fn plt_symbols(data: &[u8]) -> Vec<Symbol> {
    use object::read::elf::{ElfFile64, SectionHeader};
    use object::ObjectSymbolTable;
    let Ok(file) = ElfFile64::<Endianness>::parse(data) else {
        return Vec::new();
    };
    let endian = file.endian();
    let (Some(plt), Some(rela)) = (
        file.section_by_name(".plt"),
        file.section_by_name(".rela.plt"),
    ) else {
        return Vec::new();
    };
    let Ok(entries) = rela
        .elf_section_header()
        .data_as_array::<elf::Rela64<Endianness>, _>(endian, data)
    else {
        return Vec::new();
    };
    let stub = plt.elf_section_header().sh_entsize(endian).max(16);
    let count = entries.len() as u64;
    let Some(header) = plt.size().checked_sub(count.saturating_mul(stub)) else {
        return Vec::new();
    };
    let dynamic = file.dynamic_symbol_table();
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let index = r.r_sym(endian, false);
            let name = dynamic
                .as_ref()?
                .symbol_by_index(object::SymbolIndex(index as usize))
                .ok()?
                .name()
                .ok()?
                .to_string();
            Some(Symbol {
                addr: plt.address() + header + i as u64 * stub,
                size: stub,
                name: format!("{name}@plt"),
                rank: 3,
            })
        })
        .collect()
}
