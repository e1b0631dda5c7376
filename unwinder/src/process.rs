//! A stopped process reconstructed from a core: the core's memory plus the
//! module files it maps, found through `NT_FILE` or, for QEMU cores that
//! lack it, the dynamic linker's `r_debug`/`link_map` list.

use std::path::{Path, PathBuf};

use object::read::elf::{FileHeader, ProgramHeader};
use object::{elf, Endianness};

use crate::coredump::CoreFile;
use crate::error::{Error, Result};
use crate::memory::Memory;
use crate::module::Module;

/// Where to find module files named in a core.
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
const AT_PHDR: u64 = 3;
const AT_BASE: u64 = 7;
const AT_EXECFN: u64 = 31;
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

/// A core with its modules: the [`Memory`] the unwinder reads.
pub struct CoreProcess {
    /// The parsed core.
    pub core: CoreFile,
    /// Modules opened for it, executable first.
    pub modules: Vec<Module>,
    /// Modules the core names but that could not be opened; unwinding goes
    /// on without them and the report says which.
    pub missing: Vec<String>,
    exe_start: u64,
}

impl CoreProcess {
    /// Opens a core and the modules it maps.
    pub fn open(core_path: &Path, resolver: &ModuleResolver) -> Result<CoreProcess> {
        let core = CoreFile::open(core_path)?;
        let mut proc = CoreProcess {
            core,
            modules: Vec::new(),
            missing: Vec::new(),
            exe_start: 0,
        };
        let exe = proc.load_executable(resolver)?;
        if !proc.core.files.is_empty() {
            proc.load_from_nt_file(resolver, &exe)?;
        } else {
            proc.load_from_link_map(resolver)?;
        }
        proc.modules.sort_by_key(|m| m.start);
        Ok(proc)
    }

    /// Finds and opens the main executable: `--exe`, else the path the core
    /// names (`AT_EXECFN` or the first `NT_FILE` entry).
    fn load_executable(&mut self, resolver: &ModuleResolver) -> Result<PathBuf> {
        let path = match &resolver.exe {
            Some(p) => p.clone(),
            None => {
                let guest = self
                    .core
                    .auxv_value(AT_EXECFN)
                    .and_then(|a| self.read_cstr(a, 4096).ok())
                    .or_else(|| self.core.files.first().map(|f| f.path.clone()))
                    .ok_or_else(|| {
                        Error::Other(format!(
                            "{}: core does not name its executable; pass --exe",
                            self.core.path.display()
                        ))
                    })?;
                resolver.resolve(&guest)?
            }
        };
        // Bias from AT_PHDR: the runtime address of the program headers
        // minus their file address.
        let probe = Module::open("[exe]", &path, 0)?;
        if probe.arch != self.core.arch {
            return Err(Error::ArchMismatch {
                path: self.core.path.clone(),
                core_arch: self.core.arch.name().into(),
                exe: path,
                exe_arch: probe.arch.name().into(),
            });
        }
        let bias = match self.core.auxv_value(AT_PHDR) {
            Some(phdr) => {
                let phdr_vaddr =
                    phdr_file_vaddr(probe.file_bytes()).ok_or_else(|| Error::BadElf {
                        path: path.clone(),
                        what: "cannot locate program headers".into(),
                    })?;
                phdr.wrapping_sub(phdr_vaddr)
            }
            None => 0,
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "[exe]".into());
        let mut exe = probe.rebased(bias);
        exe.name = name;
        self.exe_start = exe.start;
        self.modules.push(exe);
        Ok(path)
    }

    fn load_from_nt_file(&mut self, resolver: &ModuleResolver, exe: &Path) -> Result<()> {
        let exe_start = self.modules.first().map(|m| m.start);
        let mut seen = std::collections::HashSet::new();
        for f in self.core.files.clone() {
            // Only real files: not anon_inode:[...], /dev/zero (deleted), ...
            if f.file_offset != 0 || !f.path.starts_with('/') || !seen.insert(f.path.clone()) {
                continue;
            }
            if Some(f.start) == exe_start || Path::new(&f.path) == exe {
                continue;
            }
            self.open_module(resolver, &f.path, |m| f.start.wrapping_sub(first_vaddr(m)));
        }
        Ok(())
    }

    fn load_from_link_map(&mut self, resolver: &ModuleResolver) -> Result<()> {
        let exe = &self.modules[0];
        let Some(r_debug) = r_debug_address(self, exe)? else {
            return Ok(()); // static executable: nothing else is loaded
        };
        if r_debug == 0 {
            return Err(Error::Other(format!(
                "{}: no NT_FILE note and the dynamic linker's r_debug is not set; cannot list modules",
                self.core.path.display()
            )));
        }
        let entries = link_map_entries(self, r_debug)?;
        // The dynamic linker is in the list under its PT_INTERP path; if not,
        // AT_BASE still gives its bias.
        let _ = AT_BASE;
        for (l_addr, name) in entries {
            if name.is_empty() || name.starts_with("linux-vdso") || name.starts_with("linux-gate") {
                continue;
            }
            self.open_module(resolver, &name, |_| l_addr);
        }
        Ok(())
    }

    fn open_module(
        &mut self,
        resolver: &ModuleResolver,
        guest: &str,
        bias: impl Fn(&Module) -> u64,
    ) {
        let opened = resolver
            .resolve(guest)
            .and_then(|p| Module::open(guest, &p, 0))
            .and_then(|probe| {
                if probe.arch != self.core.arch {
                    return Err(Error::ArchMismatch {
                        path: self.core.path.clone(),
                        core_arch: self.core.arch.name().into(),
                        exe: probe.path.clone(),
                        exe_arch: probe.arch.name().into(),
                    });
                }
                let b = bias(&probe);
                Ok(probe.rebased(b))
            });
        match opened {
            Ok(m) => self.modules.push(m),
            Err(e) => self.missing.push(e.to_string()),
        }
    }

    /// The module containing `addr`.
    pub fn module_for(&self, addr: u64) -> Option<&Module> {
        crate::module::module_containing(&self.modules, addr)
    }

    /// The main executable.
    pub fn executable(&self) -> Option<&Module> {
        self.modules.iter().find(|m| m.start == self.exe_start)
    }
}

impl Memory for CoreProcess {
    fn mapping_at(&self, addr: u64) -> Option<(u64, u64)> {
        self.core
            .segments
            .iter()
            .find(|s| addr >= s.vaddr && addr - s.vaddr < s.memsz)
            .map(|s| (s.vaddr, s.vaddr.saturating_add(s.memsz)))
    }
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        if self.core.read_dumped(addr, buf) {
            return Ok(());
        }
        if let Some(m) = self.module_for(addr) {
            if m.read(addr, buf) {
                return Ok(());
            }
        }
        Err(Error::Unmapped {
            addr,
            len: buf.len(),
        })
    }
}

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

/// Auxv key of the program headers' address.
pub const AUXV_PHDR: u64 = AT_PHDR;

fn first_vaddr(m: &Module) -> u64 {
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
