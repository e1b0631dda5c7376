//! The `v8dbg_*` postmortem symbols of one V8 binary: the raw integers
//! (offsets, instance types, bit fields) that describe its heap layout.

use std::collections::HashMap;

use crate::memory::Memory;
use crate::module::Module;

/// Raw `v8dbg_*` values of one binary, keyed without the prefix.
pub struct PostmortemSymbols {
    pub(super) values: HashMap<String, i64>,
}

impl PostmortemSymbols {
    /// Reads every `v8dbg_*` int. The process's memory is read first:
    /// some values are filled in by static initializers at startup.
    pub fn read(exe: &Module, mem: &dyn Memory) -> PostmortemSymbols {
        let mut values = HashMap::new();
        for (name, addr, _size) in exe.lookup_data_symbols("v8dbg_") {
            let at = addr.wrapping_add(exe.bias);
            let mut b = [0u8; 4];
            let ok = mem.read(at, &mut b).is_ok() || exe.read(at, &mut b);
            // Symbols in .bss read as zero, which is their value.
            let v = if ok { i32::from_le_bytes(b) } else { 0 };
            values.insert(name["v8dbg_".len()..].to_string(), v as i64);
        }
        PostmortemSymbols { values }
    }

    /// Number of symbols found.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the binary has none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// A value by name (without `v8dbg_`).
    pub fn get(&self, name: &str) -> Option<i64> {
        self.values.get(name).copied()
    }

    /// The value of the first `class_<Class>__<field>__*` symbol: the type
    /// suffix differs between V8 versions.
    pub fn field(&self, class: &str, field: &str) -> Option<i64> {
        let prefix = format!("class_{class}__{field}__");
        let exact = format!("class_{class}__{field}");
        self.values
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) || **k == exact)
            .map(|(_, v)| *v)
            .min()
    }

    /// The instance type whose `type_<Class>__<TYPE>` symbol exists.
    pub fn instance_type(&self, ty: &str) -> Option<u16> {
        let suffix = format!("__{ty}");
        self.values
            .iter()
            .find(|(k, _)| k.starts_with("type_") && k.ends_with(&suffix))
            .map(|(_, v)| *v as u16)
    }
}
