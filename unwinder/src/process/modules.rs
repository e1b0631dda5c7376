//! Finding and opening a process's modules: where their files are
//! ([`ModuleResolver`]), the dynamic linker's list of what is loaded, and
//! load biases from auxv or from where a file's first page is mapped.

use std::path::{Path, PathBuf};

use object::read::elf::{FileHeader, ProgramHeader};
use object::{elf, Endianness};

use crate::arch::ArchKind;
use crate::error::{Error, Result};
use crate::memory::Memory;
use crate::module::Module;

/// Where to find the module files a process names.
#[derive(Debug, Clone, Default)]
pub struct ModuleResolver {
    /// The main executable (`--exe`).
    pub exe: Option<PathBuf>,
    /// A directory that stands for `/` when resolving guest paths
    /// (`--sysroot`), as with `qemu-aarch64 -L`.
    pub sysroot: Option<PathBuf>,
    /// Extra directories searched by file name (addons, test builds).
    pub search_dirs: Vec<PathBuf>,
}

impl ModuleResolver {
    /// The local path for a module the process knows as `guest_path`.
    pub fn resolve(&self, guest_path: &str) -> Result<PathBuf> {
        let mut looked = Vec::new();
        let rel = guest_path.trim_start_matches('/');
        let file_name = Path::new(guest_path).file_name();
        let mut candidates = Vec::new();
        if let Some(root) = &self.sysroot {
            candidates.push(root.join(rel));
        }
        candidates.push(PathBuf::from(guest_path));
        if let Some(name) = file_name {
            for d in &self.search_dirs {
                candidates.push(d.join(name));
            }
        }
        for c in candidates {
            if c.is_file() {
                return Ok(c);
            }
            looked.push(c.display().to_string());
        }
        Err(Error::ModuleNotFound {
            name: guest_path.to_string(),
            looked: looked.join(", "),
        })
    }
}

// auxv keys (linux/include/uapi/linux/auxvec.h).
pub(super) const AT_PHDR: u64 = 3;
pub(super) const AT_EXECFN: u64 = 31;
// Dynamic tag for the r_debug pointer.
const DT_DEBUG: u64 = 21;
const DT_NULL: u64 = 0;
// struct r_debug { int r_version; struct link_map *r_map; ... } and
// struct link_map { l_addr, l_name, l_ld, l_next, l_prev } on LP64.
const R_DEBUG_MAP: u64 = 8;
const LINK_MAP_NAME: u64 = 8;
const LINK_MAP_NEXT: u64 = 24;
const MAX_LINK_MAP: usize = 4096;
const MAX_DYNAMIC: usize = 4096;

/// The address of the dynamic linker's `r_debug`, from the executable's
/// `DT_DEBUG` entry (0 until the linker has set it); `None` for a static
/// executable.
pub fn r_debug_address(mem: &dyn Memory, exe: &Module) -> Result<Option<u64>> {
    let Some(dynamic) = dynamic_vaddr(exe.file_bytes()) else {
        return Ok(None);
    };
    let dynamic = dynamic.wrapping_add(exe.bias);
    for i in 0..MAX_DYNAMIC as u64 {
        let tag = mem.read_u64(dynamic + i * 16)?;
        if tag == DT_NULL {
            break;
        }
        if tag == DT_DEBUG {
            return Ok(Some(mem.read_u64(dynamic + i * 16 + 8)?));
        }
    }
    Ok(Some(0))
}

/// The loaded objects the dynamic linker lists: (load bias, name). The
/// executable's entry has an empty name.
pub fn link_map_entries(mem: &dyn Memory, r_debug: u64) -> Result<Vec<(u64, String)>> {
    let mut lm = mem.read_u64(r_debug + R_DEBUG_MAP)?;
    let mut visited = std::collections::HashSet::new();
    let mut entries = Vec::new();
    while lm != 0 && entries.len() < MAX_LINK_MAP && visited.insert(lm) {
        let l_addr = mem.read_u64(lm)?;
        let name_ptr = mem.read_u64(lm + LINK_MAP_NAME)?;
        let name = if name_ptr == 0 {
            String::new()
        } else {
            mem.read_cstr(name_ptr, 4096).unwrap_or_default()
        };
        entries.push((l_addr, name));
        lm = mem.read_u64(lm + LINK_MAP_NEXT)?;
    }
    Ok(entries)
}

/// Opens the executable at `path` loaded so that its program headers are
/// at `at_phdr` (auxv `AT_PHDR`).
pub fn open_executable(path: &Path, at_phdr: Option<u64>) -> Result<Module> {
    let probe = Module::open("[exe]", path, 0)?;
    let bias = match at_phdr {
        Some(phdr) => {
            let phdr_vaddr = phdr_file_vaddr(probe.file_bytes()).ok_or_else(|| Error::BadElf {
                path: path.to_path_buf(),
                what: "cannot locate program headers".into(),
            })?;
            phdr.wrapping_sub(phdr_vaddr)
        }
        None => 0,
    };
    let mut exe = probe.rebased(bias);
    exe.name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "[exe]".into());
    Ok(exe)
}

/// Opens a shared library the process knows as `guest`, loaded at `bias`.
pub fn open_library(resolver: &ModuleResolver, guest: &str, bias: u64) -> Result<Module> {
    let path = resolver.resolve(guest)?;
    Ok(Module::open(guest, &path, 0)?.rebased(bias))
}

/// Opens the module a process (`owner`, for errors) knows as `guest`,
/// checking it is for the process's `arch`, and rebases it to `bias` of
/// the file as opened.
pub(super) fn open_module(
    resolver: &ModuleResolver,
    guest: &str,
    owner: &Path,
    arch: ArchKind,
    bias: impl Fn(&Module) -> u64,
) -> Result<Module> {
    let probe = Module::open(guest, &resolver.resolve(guest)?, 0)?;
    if probe.arch != arch {
        return Err(Error::ArchMismatch {
            path: owner.to_path_buf(),
            core_arch: arch.name().into(),
            exe: probe.path.clone(),
            exe_arch: probe.arch.name().into(),
        });
    }
    let b = bias(&probe);
    Ok(probe.rebased(b))
}

/// Auxv key of the program headers' address.
pub const AUXV_PHDR: u64 = AT_PHDR;

/// The page-aligned address of a module's first segment in its file: its
/// load bias is where that page is mapped minus this.
pub(super) fn first_vaddr(m: &Module) -> u64 {
    m.segments.iter().map(|s| s.vaddr).min().unwrap_or(0) & !0xfff
}

fn phdr_file_vaddr(data: &[u8]) -> Option<u64> {
    let header = elf::FileHeader64::<Endianness>::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let phdrs = header.program_headers(endian, data).ok()?;
    if let Some(p) = phdrs.iter().find(|p| p.p_type(endian) == elf::PT_PHDR) {
        return Some(p.p_vaddr(endian));
    }
    // No PT_PHDR: the headers sit at e_phoff inside the segment that maps
    // file offset 0.
    let phoff = header.e_phoff(endian);
    phdrs
        .iter()
        .find(|p| {
            p.p_type(endian) == elf::PT_LOAD
                && p.p_offset(endian) <= phoff
                && phoff - p.p_offset(endian) < p.p_filesz(endian)
        })
        .map(|p| p.p_vaddr(endian) + (phoff - p.p_offset(endian)))
}

fn dynamic_vaddr(data: &[u8]) -> Option<u64> {
    let header = elf::FileHeader64::<Endianness>::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let phdrs = header.program_headers(endian, data).ok()?;
    phdrs
        .iter()
        .find(|p| p.p_type(endian) == elf::PT_DYNAMIC)
        .map(|p| p.p_vaddr(endian))
}
