//! A stopped process reconstructed from a core: the core's memory plus the
//! module files it maps, found through `NT_FILE` or, for QEMU cores that
//! lack it, the dynamic linker's `r_debug`/`link_map` list.

use std::path::{Path, PathBuf};

use super::modules::{first_vaddr, link_map_entries, open_executable, open_module};
use super::modules::{r_debug_address, ModuleResolver, AT_EXECFN, AT_PHDR};
use crate::arch::Arch;
use crate::coredump::CoreFile;
use crate::error::{Error, Result};
use crate::memory::Memory;
use crate::module::Module;
use crate::unwind::Process;

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
        let exe = open_executable(&path, self.core.auxv_value(AT_PHDR))?;
        if exe.arch != self.core.arch {
            return Err(Error::ArchMismatch {
                path: self.core.path.clone(),
                core_arch: self.core.arch.name().into(),
                exe: path,
                exe_arch: exe.arch.name().into(),
            });
        }
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
        // The dynamic linker is in the list under its PT_INTERP path.
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
        let opened = open_module(resolver, guest, &self.core.path, self.core.arch, bias);
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

impl Process for CoreProcess {
    fn arch(&self) -> &'static dyn Arch {
        self.core.arch.arch()
    }
    fn module_at(&self, addr: u64) -> Option<&Module> {
        self.module_for(addr)
    }
    fn modules(&self) -> &[Module] {
        &self.modules
    }
    fn executable(&self) -> Option<&Module> {
        CoreProcess::executable(self)
    }
}
