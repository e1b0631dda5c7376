//! A module's symbol tables as the walk asks them: the text symbol at an
//! address, from an index sorted by address, and symbols by name or name
//! prefix, from a scan of the raw tables. While the index is built no name
//! is copied, measured or checked as UTF-8: a Node.js binary has some
//! 200,000 symbols and a stack needs a few dozen of their names. `object`'s
//! symbol iterator reads every name (a NUL search and a UTF-8 check each),
//! so the tables are read here from its raw ELF structures instead.

use std::ops::Range;

use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::{elf, Endianness};

/// Where a symbol's name is.
#[derive(Debug, Clone, Copy)]
enum NameRef {
    /// In a string table, starting at this file offset.
    File(usize),
    /// One crosswind made (a PLT stub's, the dynamic linker's entry): an
    /// index into [`SymbolIndex::made`].
    Made(usize),
}

/// One text symbol: file address, size and where its name is.
#[derive(Debug, Clone, Copy)]
struct TextSymbol {
    addr: u64,
    size: u64,
    name: NameRef,
    /// Lower is preferred among aliases: global, weak, local, made.
    rank: u8,
    /// Position in the table (then the made ones), which decides among
    /// aliases alike in all else.
    order: u32,
}

/// A symbol crosswind names itself, for [`SymbolIndex::build`].
pub(super) struct MadeSymbol {
    pub addr: u64,
    pub size: u64,
    pub name: String,
}

/// The text symbols of one file, sorted by address, one per address.
#[derive(Debug, Default)]
pub(super) struct SymbolIndex {
    symbols: Vec<TextSymbol>,
    made: Vec<String>,
}

/// The symbol table of the file (`.symtab` or `.dynsym`): its entries and
/// the file range of its string table.
struct RawTable<'data> {
    entries: &'data [elf::Sym64<Endianness>],
    strings: Range<usize>,
}

/// The file's symbol table: `.symtab`, else `.dynsym`; none if the headers
/// are malformed. The static linker writes every dynamic symbol to
/// `.symtab` too, so where both exist `.dynsym` adds nothing but a third
/// more entries to read (89,000 beside 222,000 in Node.js 22's binary).
fn raw_table(data: &[u8]) -> Option<(Endianness, RawTable<'_>)> {
    let header = elf::FileHeader64::<Endianness>::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let sections = header.sections(endian, data).ok()?;
    [elf::SHT_SYMTAB, elf::SHT_DYNSYM].iter().find_map(|&kind| {
        let section = sections.iter().find(|s| s.sh_type(endian) == kind)?;
        let entries = section
            .data_as_array::<elf::Sym64<Endianness>, _>(endian, data)
            .ok()?;
        let strtab = sections
            .section(object::SectionIndex(section.sh_link(endian) as usize))
            .ok()?;
        let (offset, size) = strtab.file_range(endian)?;
        let start = usize::try_from(offset).ok()?;
        let strings = start..start.checked_add(usize::try_from(size).ok()?)?;
        (strings.end <= data.len()).then_some((endian, RawTable { entries, strings }))
    })
}

/// The file offset where entry `sym`'s name starts, if it has one.
fn name_start(
    table: &RawTable<'_>,
    endian: Endianness,
    sym: &elf::Sym64<Endianness>,
) -> Option<usize> {
    let at = table
        .strings
        .start
        .checked_add(sym.st_name(endian) as usize)?;
    (at < table.strings.end).then_some(at)
}

/// The NUL-terminated name starting at file offset `at`.
fn name_at(data: &[u8], at: usize) -> Option<&[u8]> {
    let rest = data.get(at..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    Some(&rest[..len])
}

/// Whether the name at file offset `at` starts with `prefix` (bytes only,
/// no search for its end).
fn name_starts_with(data: &[u8], at: usize, prefix: &[u8]) -> bool {
    let Some(name) = at
        .checked_add(prefix.len())
        .and_then(|end| data.get(at..end))
    else {
        return false;
    };
    // Most names differ from the prefix in their first bytes: those are
    // compared inline, and `memcmp` is called only for the rest (a scan
    // spent most of its time in calls to it).
    let head = prefix.len().min(8);
    name.iter().zip(prefix).take(head).all(|(a, b)| a == b) && name[head..] == prefix[head..]
}

impl SymbolIndex {
    /// Indexes the text symbols of the ELF file `data` and the `made`
    /// ones, which rank below any symbol of the file at the same address.
    pub fn build(data: &[u8], made: Vec<MadeSymbol>) -> SymbolIndex {
        let mut symbols = Vec::new();
        if let Some((endian, table)) = raw_table(data) {
            for sym in table.entries {
                let kind = sym.st_type();
                if !(kind == elf::STT_FUNC || kind == elf::STT_GNU_IFUNC)
                    || sym.st_shndx(endian) == elf::SHN_UNDEF
                    || sym.st_value(endian) == 0
                {
                    continue;
                }
                let Some(at) = name_start(&table, endian, sym) else {
                    continue;
                };
                // Empty names, and aarch64's mapping symbols ($x code, $d data).
                if data.get(at).is_none_or(|&b| b == 0)
                    || name_starts_with(data, at, b"$x")
                    || name_starts_with(data, at, b"$d")
                {
                    continue;
                }
                let rank = match sym.st_bind() {
                    elf::STB_WEAK => 1,
                    elf::STB_LOCAL => 2,
                    _ => 0,
                };
                symbols.push(TextSymbol {
                    addr: sym.st_value(endian),
                    size: sym.st_size(endian),
                    name: NameRef::File(at),
                    rank,
                    order: symbols.len() as u32,
                });
            }
        }
        let mut names = Vec::with_capacity(made.len());
        for (i, m) in made.into_iter().enumerate() {
            symbols.push(TextSymbol {
                addr: m.addr,
                size: m.size,
                name: NameRef::Made(i),
                rank: 3,
                order: symbols.len() as u32,
            });
            names.push(m.name);
        }
        // Among aliases at one address keep the one gdb would show: strong
        // global first, then weak, then local, the larger first, and in
        // table order after that. The order makes every key distinct, so
        // the faster unstable sort gives the stable sort's result.
        symbols.sort_unstable_by_key(|s| (s.addr, s.rank, std::cmp::Reverse(s.size), s.order));
        symbols.dedup_by_key(|s| s.addr);
        SymbolIndex {
            symbols,
            made: names,
        }
    }

    /// The name of `sym`, read from `data` for the file's own symbols.
    fn name<'a>(&'a self, data: &'a [u8], sym: &TextSymbol) -> Option<&'a str> {
        match sym.name {
            NameRef::File(at) => std::str::from_utf8(name_at(data, at)?).ok(),
            NameRef::Made(i) => self.made.get(i).map(String::as_str),
        }
    }

    /// How far symbol `i` reaches: its size, or up to the next symbol for
    /// a symbol of size 0 (an assembly label).
    fn extent(&self, i: usize) -> Option<u64> {
        let sym = self.symbols.get(i)?;
        Some(match sym.size {
            0 => self
                .symbols
                .get(i + 1)
                .map_or(u64::MAX - sym.addr, |n| n.addr - sym.addr),
            s => s,
        })
    }

    /// The text symbol covering file address `a`: (start, size it covers,
    /// mangled name).
    pub fn at<'a>(&'a self, data: &'a [u8], a: u64) -> Option<(u64, u64, &'a str)> {
        let i = self
            .symbols
            .partition_point(|s| s.addr <= a)
            .checked_sub(1)?;
        let sym = self.symbols.get(i)?;
        let size = self.extent(i)?;
        if a - sym.addr >= size {
            return None;
        }
        Some((sym.addr, size, self.name(data, sym)?))
    }

    /// File address ranges of the text symbols whose names start with
    /// `prefix`, sorted by start: (start, end, name). A symbol of size 0
    /// ends where the next one starts.
    pub fn ranges(&self, data: &[u8], prefix: &str) -> Vec<(u64, u64, String)> {
        let mut out = Vec::new();
        for (i, s) in self.symbols.iter().enumerate() {
            let matches = match s.name {
                NameRef::File(at) => name_starts_with(data, at, prefix.as_bytes()),
                NameRef::Made(m) => self.made.get(m).is_some_and(|n| n.starts_with(prefix)),
            };
            if !matches {
                continue;
            }
            let Some(name) = self.name(data, s) else {
                continue;
            };
            let end = if s.size != 0 {
                s.addr.saturating_add(s.size)
            } else {
                self.symbols.get(i + 1).map_or(s.addr, |n| n.addr)
            };
            out.push((s.addr, end, name.to_string()));
        }
        out
    }
}

/// Calls `visit` with (file offset of the name, file address, size) for
/// every symbol of the ELF file `data` (code or data) with a nonzero
/// address, until it returns `false`.
fn scan_by_name(data: &[u8], mut visit: impl FnMut(usize, u64, u64) -> bool) {
    let Some((endian, table)) = raw_table(data) else {
        return;
    };
    for sym in table.entries {
        let addr = sym.st_value(endian);
        if addr == 0 {
            continue;
        }
        let Some(at) = name_start(&table, endian, sym) else {
            continue;
        };
        if !visit(at, addr, sym.st_size(endian)) {
            return;
        }
    }
}

/// Every named symbol of the ELF file `data` (code and data, with a
/// nonzero address) whose name starts with `prefix`: (name, file address,
/// size), the first of each name, sorted by name. One pass over the raw
/// table; names are read only for the symbols that match.
pub(super) fn with_prefix(data: &[u8], prefix: &str) -> Vec<(String, u64, u64)> {
    let mut out: Vec<(String, u64, u64)> = Vec::new();
    scan_by_name(data, |at, addr, size| {
        if name_starts_with(data, at, prefix.as_bytes()) {
            if let Some(name) = name_at(data, at).and_then(|n| std::str::from_utf8(n).ok()) {
                if !name.is_empty() {
                    out.push((name.to_string(), addr, size));
                }
            }
        }
        true
    });
    // Stable: of two entries with one name the first stays.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|later, first| later.0 == first.0);
    out
}

/// The symbol named exactly `name` (code or data): (file address, size).
pub(super) fn named(data: &[u8], name: &str) -> Option<(u64, u64)> {
    let wanted = name.as_bytes();
    if wanted.is_empty() {
        return None;
    }
    let mut found = None;
    scan_by_name(data, |at, addr, size| {
        let hit = name_starts_with(data, at, wanted) && data.get(at + wanted.len()) == Some(&0);
        if hit {
            found = Some((addr, size));
        }
        !hit
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::{Object, ObjectSymbol};

    /// A stripped ELF file, with `.dynsym` only: the arm64 C library of
    /// the cross sysroot `just setup` installs, else the host's own.
    fn stripped_elf() -> Vec<u8> {
        let candidates = [
            "/usr/aarch64-linux-gnu/lib/libc.so.6",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/ld-linux-x86-64.so.2",
        ];
        candidates
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .unwrap_or_else(|| panic!("none of {candidates:?}: run `just setup`"))
    }

    /// Both symbol tables: this test program, with `.symtab` and `.dynsym`.
    fn unstripped_elf() -> Vec<u8> {
        let exe = std::env::current_exe().expect("the test program's path");
        std::fs::read(&exe).expect("the test program's bytes")
    }

    /// The raw tables give what `object`'s symbol iterator gives: every
    /// defined text symbol is found at its address under its own name or
    /// a preferred alias, and look-ups by prefix and by name agree.
    #[test]
    fn the_raw_tables_agree_with_objects_iterator() {
        agree_with_object(&stripped_elf(), "mem");
        agree_with_object(&unstripped_elf(), "_ZN4core3fmt");
    }

    fn agree_with_object(data: &[u8], prefix: &str) {
        let file = object::File::parse(data).expect("an ELF file");
        let index = SymbolIndex::build(data, Vec::new());
        let names_at: std::collections::HashSet<(u64, &str)> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter_map(|s| Some((s.address(), s.name().ok()?)))
            .collect();
        let mut text = 0;
        let mut by_name = std::collections::BTreeMap::new();
        for sym in file.symbols().chain(file.dynamic_symbols()) {
            let Ok(name) = sym.name() else { continue };
            if name.is_empty() || sym.address() == 0 {
                continue;
            }
            by_name
                .entry(name.to_string())
                .or_insert((sym.address(), sym.size()));
            if sym.kind() != object::SymbolKind::Text || sym.is_undefined() {
                continue;
            }
            text += 1;
            let (start, _, found) = index.at(data, sym.address()).expect("a symbol");
            assert_eq!(start, sym.address(), "{name}");
            assert!(
                names_at.contains(&(start, found)),
                "{found} is not a symbol at {start:#x} ({name} is)"
            );
        }
        assert!(text > 100, "only {text} text symbols");
        let expected: Vec<(String, u64, u64)> = by_name
            .range(prefix.to_string()..)
            .take_while(|(n, _)| n.starts_with(prefix))
            .map(|(n, &(a, s))| (n.clone(), a, s))
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(with_prefix(data, prefix), expected);
        for (name, addr, size) in &expected {
            assert_eq!(named(data, name), Some((*addr, *size)), "{name}");
        }
        assert_eq!(named(data, prefix), None);
        assert_eq!(named(data, ""), None);
    }
}
