//! What a module answered during one unwind: the symbols, CFI rows, named
//! values and file bytes the unwinder asked a module for. Recording them
//! is how a snapshot carries "only the parts of the modules it reads";
//! replaying them answers the same questions with no file present.
//! Addresses here are file addresses (before the load bias).

use std::collections::BTreeMap;

use crate::cfi::CompiledRow;

/// Recorded answers of one module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleAnswers {
    /// Symbols that named an address: start -> (size the lookup honoured,
    /// mangled name).
    pub symbols: BTreeMap<u64, (u64, String)>,
    /// `symbol_address` queries: name -> (address, size), or none.
    pub names: BTreeMap<String, Option<(u64, u64)>>,
    /// `lookup_data_symbols` queries: prefix -> (name, address, size).
    pub prefixes: BTreeMap<String, Vec<(String, u64, u64)>>,
    /// `symbol_ranges` queries: prefix -> (start, end, name).
    pub ranges: BTreeMap<String, Vec<(u64, u64, String)>>,
    /// CFI rows: start -> (end, row); `None` where no row applies.
    pub cfi: BTreeMap<u64, (u64, Option<CompiledRow>)>,
    /// File-backed bytes read: start -> bytes.
    pub bytes: BTreeMap<u64, Vec<u8>>,
}

impl ModuleAnswers {
    /// The recorded symbol covering `addr`: (start, mangled name).
    pub fn symbol_at(&self, addr: u64) -> Option<(u64, &str)> {
        let (&start, (size, name)) = self.symbols.range(..=addr).next_back()?;
        (addr - start < *size).then_some((start, name.as_str()))
    }

    /// The recorded CFI row covering `addr`.
    pub fn cfi_at(&self, addr: u64) -> Option<CompiledRow> {
        let (_, (end, row)) = self.cfi.range(..=addr).next_back()?;
        if addr < *end {
            row.clone()
        } else {
            None
        }
    }

    /// Fills `buf` from recorded bytes, if one recorded read covers it.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        // Reads may nest inside a larger earlier read; look back a little.
        for (&start, bytes) in self.bytes.range(..=addr).rev().take(64) {
            let off = (addr - start) as usize;
            if let Some(src) = bytes.get(off..off + buf.len()) {
                buf.copy_from_slice(src);
                return true;
            }
        }
        false
    }

    /// Keeps `bytes` read at `addr`, unless an earlier read covers them.
    pub fn add_bytes(&mut self, addr: u64, bytes: &[u8]) {
        let mut probe = vec![0u8; bytes.len()];
        if !self.read(addr, &mut probe) {
            self.bytes.insert(addr, bytes.to_vec());
        }
    }
}
