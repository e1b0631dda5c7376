//! ELF modules (the executable and shared libraries): their bytes, load
//! segments, demangled symbol tables and DWARF call-frame information, with
//! per-module caches so a large binary is parsed once, not per frame.

mod elf;
mod symbols;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::arch::ArchKind;
use crate::cfi::CompiledRow;
use crate::error::{Error, Result};
use crate::recorded::ModuleAnswers;
use elf::ElfSource;

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

/// Where a module's answers come from.
enum ModuleSource {
    /// The ELF file on this machine.
    File(Box<ElfSource>),
    /// A snapshot's recorded answers, standing in for the file.
    Recorded(ModuleAnswers),
}

/// A loaded ELF module: its place in the process, and the answers of its
/// file or of a recording of them. While a recording is on, every answer
/// the file gives is also kept (what a snapshot carries of the module).
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
    source: ModuleSource,
    demangled: RefCell<HashMap<u64, String>>,
    /// Recording: what the file has answered so far.
    recording: RefCell<Option<ModuleAnswers>>,
}

impl Module {
    /// Opens the ELF file at `path` as a module loaded with `bias`.
    pub fn open(name: &str, path: &Path, bias: u64) -> Result<Module> {
        let (source, headers) = ElfSource::open(path)?;
        let (start, end) = runtime_range(&headers.segments, bias);
        Ok(Module {
            name: name.to_string(),
            path: path.to_path_buf(),
            bias,
            arch: headers.arch,
            segments: headers.segments,
            start,
            end,
            build_id: headers.build_id,
            source: ModuleSource::File(Box::new(source)),
            demangled: RefCell::new(HashMap::new()),
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
            source: ModuleSource::Recorded(answers),
            demangled: RefCell::new(HashMap::new()),
            recording: RefCell::new(None),
        }
    }

    /// Starts recording every answer this module's file gives (a module
    /// answering from a recording records nothing new).
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
        self
    }

    /// The module file's bytes (none for a module answering from a
    /// recording).
    pub fn file_bytes(&self) -> &[u8] {
        match &self.source {
            ModuleSource::File(f) => f.bytes(),
            ModuleSource::Recorded(_) => &[],
        }
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
        match &self.source {
            ModuleSource::Recorded(r) => r.read(a, buf),
            ModuleSource::File(f) => {
                let ok = f.read(a, buf);
                if ok {
                    self.record(|r| r.add_bytes(a, buf));
                }
                ok
            }
        }
    }

    /// Symbols whose names start with `prefix`: (name, file address, size).
    pub fn lookup_data_symbols(&self, prefix: &str) -> Vec<(String, u64, u64)> {
        match &self.source {
            ModuleSource::Recorded(r) => r.prefixes.get(prefix).cloned().unwrap_or_default(),
            ModuleSource::File(f) => {
                let out = f.symbols_with_prefix(prefix);
                self.record(|r| {
                    r.prefixes.insert(prefix.to_string(), out.clone());
                });
                out
            }
        }
    }

    /// The symbol containing the runtime address `addr`.
    pub fn symbolize(&self, addr: u64) -> Option<SymbolHit> {
        let a = addr.wrapping_sub(self.bias);
        let (start, raw) = match &self.source {
            ModuleSource::Recorded(r) => {
                let (start, raw) = r.symbol_at(a)?;
                (start, raw.to_string())
            }
            ModuleSource::File(f) => {
                let (start, size, raw) = f.symbol_at(a)?;
                self.record(|r| {
                    r.symbols.insert(start, (size, raw.to_string()));
                });
                (start, raw.to_string())
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
        let hit = match &self.source {
            ModuleSource::Recorded(r) => r.names.get(name).copied().flatten(),
            ModuleSource::File(f) => {
                let hit = f.symbol(name);
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
        let file_ranges = match &self.source {
            ModuleSource::Recorded(r) => r.ranges.get(prefix).cloned().unwrap_or_default(),
            ModuleSource::File(f) => {
                let out = f.symbol_ranges(prefix);
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
        let a = addr.wrapping_sub(self.bias);
        let f = match &self.source {
            ModuleSource::Recorded(r) => return r.cfi_at(a),
            ModuleSource::File(f) => f,
        };
        if self.recording.borrow().is_none() {
            return f.cfi_row(a);
        }
        // One FDE walk answers both: the row at `a` is among its
        // function's rows, unless the function has more rows than are kept.
        let rows = f.function_rows(a);
        let row = match rows
            .iter()
            .find(|(start, end, _)| (*start..*end).contains(&a))
        {
            Some((_, _, row)) => row.clone(),
            None if rows.is_empty() => None,
            None => f.cfi_row(a),
        };
        self.record(|r| {
            for (start, end, row) in rows {
                r.cfi.insert(start, (end, row));
            }
            // A lookup that found no FDE is recorded as a one-byte miss.
            if r.cfi_at(a).is_none() && row.is_none() {
                r.cfi.insert(a, (a + 1, None));
            }
        });
        row
    }
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
