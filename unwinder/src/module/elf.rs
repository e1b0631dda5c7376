//! A module's ELF file as the source of its answers: bytes by file
//! address, symbols (with the PLT's stubs named; the tables themselves are
//! read in `symbols.rs`), named values and DWARF call-frame rows, each
//! parsed once and cached. Addresses here are file addresses (before the
//! load bias); [`super::Module`] adds the bias and the recording.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, EndianSlice, LittleEndian, ParsedEhFrameHdr,
    RegisterRule, UnwindContext, UnwindSection,
};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{elf, Endianness, Object, ObjectSection, ObjectSymbol};

use super::symbols::{self, MadeSymbol, SymbolIndex};

use super::{FileBytes, LoadSegment};
use crate::arch::ArchKind;
use crate::cfi::{CompiledRow, RegRule};
use crate::error::{Error, Result};

// Bound on how many compiled rows one module caches, so a long sampling
// session cannot grow without limit.
const CFI_CACHE_LIMIT: usize = 1 << 16;

/// Bound on the rows one function's FDE may contribute to a recording.
const MAX_RECORDED_ROWS: usize = 4096;

/// A symbol found by name: (name, file address, size).
type NamedSymbol = (String, u64, u64);

/// What an ELF file's headers say, read once when it is opened.
pub(super) struct ElfHeaders {
    pub arch: ArchKind,
    pub segments: Vec<LoadSegment>,
    pub build_id: Option<Vec<u8>>,
}

/// An ELF file answering by file address.
pub(super) struct ElfSource {
    bytes: FileBytes,
    segments: Vec<LoadSegment>,
    arch: ArchKind,
    symbols: OnceLock<SymbolIndex>,
    /// Answers to look-ups by exact name, and by name prefix.
    named: RefCell<HashMap<String, Option<(u64, u64)>>>,
    prefixed: RefCell<HashMap<String, Vec<NamedSymbol>>>,
    eh_frame: Option<(u64, std::ops::Range<usize>)>,
    eh_frame_hdr: Option<(u64, std::ops::Range<usize>)>,
    text_addr: u64,
    /// The dynamic linker's entry point, named `_start` where no symbol
    /// names it (distributions strip `ld.so`'s `.symtab`; glibc's entry is
    /// `_start`, sysdeps/<arch>/dl-start.S or RTLD_START in dl-machine.h):
    /// a thread stopped before the executable runs ends its stack there.
    linker_entry: Option<u64>,
    /// Compiled rows by file address.
    cfi_cache: RefCell<HashMap<u64, Option<CompiledRow>>>,
    unwind_ctx: RefCell<UnwindContext<usize>>,
}

impl ElfSource {
    /// Opens and checks the ELF file at `path`.
    pub fn open(path: &Path) -> Result<(ElfSource, ElfHeaders)> {
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
        let is_linker = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ld-"));
        let linker_entry = (is_linker && file.entry() != 0).then(|| file.entry());
        drop(file);
        let headers = ElfHeaders {
            arch,
            segments: segments.clone(),
            build_id,
        };
        let source = ElfSource {
            bytes,
            segments,
            arch,
            symbols: OnceLock::new(),
            named: RefCell::new(HashMap::new()),
            prefixed: RefCell::new(HashMap::new()),
            eh_frame,
            eh_frame_hdr,
            text_addr,
            linker_entry,
            cfi_cache: RefCell::new(HashMap::new()),
            unwind_ctx: RefCell::new(UnwindContext::new()),
        };
        Ok((source, headers))
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.bytes()
    }

    /// Fills `buf` from the file at file address `a`; false outside the
    /// file-backed part of a segment.
    pub fn read(&self, a: u64, buf: &mut [u8]) -> bool {
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

    /// The text symbol covering file address `a`: (start, size it covers,
    /// mangled name). A symbol of size 0 (an assembly label) covers up to
    /// the next symbol.
    pub fn symbol_at(&self, a: u64) -> Option<(u64, u64, &str)> {
        self.symbols().at(self.bytes.bytes(), a)
    }

    /// The symbol named exactly `name` (code or data): (file address,
    /// size).
    pub fn symbol(&self, name: &str) -> Option<(u64, u64)> {
        if let Some(hit) = self.named.borrow().get(name) {
            return *hit;
        }
        let hit = symbols::named(self.bytes.bytes(), name);
        self.named.borrow_mut().insert(name.to_string(), hit);
        hit
    }

    /// Symbols (code and data) whose names start with `prefix`: (name, file
    /// address, size), sorted by name.
    pub fn symbols_with_prefix(&self, prefix: &str) -> Vec<NamedSymbol> {
        if let Some(hit) = self.prefixed.borrow().get(prefix) {
            return hit.clone();
        }
        let hit = symbols::with_prefix(self.bytes.bytes(), prefix);
        self.prefixed
            .borrow_mut()
            .insert(prefix.to_string(), hit.clone());
        hit
    }

    /// The text symbols by address, indexed on first use. Imports of a
    /// non-PIE executable carry their PLT stub's address, so the stubs are
    /// named `NAME@plt` here; the dynamic linker's entry is named `_start`.
    fn symbols(&self) -> &SymbolIndex {
        self.symbols.get_or_init(|| {
            let mut made = plt_symbols(self.bytes.bytes());
            if let Some(entry) = self.linker_entry {
                made.push(MadeSymbol {
                    addr: entry,
                    size: 0,
                    name: "_start".into(),
                });
            }
            SymbolIndex::build(self.bytes.bytes(), made)
        })
    }

    /// File address ranges of the text symbols whose names start with
    /// `prefix`, sorted by start: (start, end, name).
    pub fn symbol_ranges(&self, prefix: &str) -> Vec<(u64, u64, String)> {
        self.symbols().ranges(self.bytes.bytes(), prefix)
    }

    /// The compiled CFI row at file address `a`, cached; `None` where no
    /// FDE covers it or the row uses DWARF expressions.
    pub fn cfi_row(&self, a: u64) -> Option<CompiledRow> {
        if let Some(hit) = self.cfi_cache.borrow().get(&a) {
            return hit.clone();
        }
        let row = self.with_fde(a, |eh, bases, ctx, fde| {
            compile_row(fde.unwind_info_for_address(eh, bases, ctx, a).ok()?)
        });
        let row = row.flatten();
        let mut cache = self.cfi_cache.borrow_mut();
        if cache.len() >= CFI_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(a, row.clone());
        row
    }

    /// Every row of the function whose FDE covers file address `a`:
    /// (start, end, row). A recording keeps them all, so a snapshot
    /// answers for any instruction of the function, not only the one
    /// looked up.
    pub fn function_rows(&self, a: u64) -> Vec<(u64, u64, Option<CompiledRow>)> {
        self.with_fde(a, |eh, bases, ctx, fde| {
            let mut rows = Vec::new();
            if let Ok(mut table) = gimli::UnwindTable::new(eh, bases, ctx, fde) {
                while let Ok(Some(row)) = table.next_row() {
                    rows.push((row.start_address(), row.end_address(), compile_row(row)));
                    if rows.len() > MAX_RECORDED_ROWS {
                        break;
                    }
                }
            }
            rows
        })
        .unwrap_or_default()
    }

    /// Runs `f` on the FDE covering file address `a`, found through
    /// `.eh_frame_hdr` when the file has one.
    fn with_fde<T>(
        &self,
        a: u64,
        f: impl FnOnce(&Eh<'_>, &BaseAddresses, &mut UnwindContext<usize>, &Fde<'_>) -> T,
    ) -> Option<T> {
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
        let mut ctx = self.unwind_ctx.borrow_mut();
        let fde = match self.eh_frame_hdr.clone() {
            Some((hdr_addr, hdr_range)) => {
                bases = bases.set_eh_frame_hdr(hdr_addr);
                let hdr = EhFrameHdr::new(data.get(hdr_range)?, LittleEndian);
                let parsed: ParsedEhFrameHdr<_> = hdr.parse(&bases, 8).ok()?;
                parsed
                    .table()?
                    .fde_for_address(&eh, &bases, a, EhFrame::cie_from_offset)
                    .ok()?
            }
            None => eh
                .fde_for_address(&bases, a, EhFrame::cie_from_offset)
                .ok()?,
        };
        Some(f(&eh, &bases, &mut ctx, &fde))
    }
}

type Eh<'a> = EhFrame<EndianSlice<'a, LittleEndian>>;
type Fde<'a> = gimli::FrameDescriptionEntry<EndianSlice<'a, LittleEndian>, usize>;

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

/// Names for the PLT's stubs, as gdb and objdump print them
/// (`malloc@plt`): `.rela.plt` lists the imported functions in stub
/// order, after the PLT's header. No crate reads these, so they are read
/// here with `object`'s ELF structures.
fn plt_symbols(data: &[u8]) -> Vec<MadeSymbol> {
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
            Some(MadeSymbol {
                addr: plt.address() + header + i as u64 * stub,
                size: stub,
                name: format!("{name}@plt"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dynamic linker as distributions ship it, stripped of `.symtab`
    /// (the arm64 one of the cross sysroot `just setup` installs, else the
    /// host's own): its entry point is named, and a real symbol elsewhere
    /// keeps its name.
    #[test]
    fn the_dynamic_linkers_entry_is_named_start() {
        let linkers = [
            "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1",
            "/lib/ld-linux-aarch64.so.1",
            "/lib64/ld-linux-x86-64.so.2",
        ];
        let Some((elf, _)) = linkers
            .iter()
            .find_map(|p| ElfSource::open(Path::new(p)).ok())
        else {
            panic!("no dynamic linker at {linkers:?}: run `just setup`");
        };
        let entry = elf.linker_entry.expect("ld.so has an entry point");
        let (start, _, name) = elf.symbol_at(entry).expect("a symbol at the entry");
        assert_eq!((start, name), (entry, "_start"));
        let (addr, _) = elf
            .symbol("_dl_catch_exception")
            .expect("an exported symbol");
        assert_eq!(
            elf.symbol_at(addr).map(|s| s.2),
            Some("_dl_catch_exception")
        );
    }
}
