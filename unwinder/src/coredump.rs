//! ELF core files: threads and their registers, auxv, `NT_FILE`, and the
//! memory segments the kernel or QEMU dumped.

use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

use crate::arch::ArchKind;
use crate::error::{Error, Result};
use crate::session::{crashed_index, StoppedThread};

/// A file mapping from the `NT_FILE` note.
#[derive(Debug, Clone)]
pub struct FileMapping {
    /// Start of the mapping (runtime address).
    pub start: u64,
    /// End of the mapping (exclusive).
    pub end: u64,
    /// Offset into the file, in bytes.
    pub file_offset: u64,
    /// Path of the mapped file, as the process saw it.
    pub path: String,
}

/// A `PT_LOAD` segment of the core.
#[derive(Debug, Clone, Copy)]
pub struct CoreSegment {
    /// Address the segment is loaded at.
    pub vaddr: u64,
    /// Bytes of memory it covers.
    pub memsz: u64,
    /// Offset of its bytes in the core file.
    pub offset: u64,
    /// Bytes of it present in the file (the rest was not dumped).
    pub filesz: u64,
}

/// A parsed core file. The bytes stay memory-mapped; nothing is copied.
pub struct CoreFile {
    /// Path of the core file.
    pub path: PathBuf,
    /// Architecture of the process.
    pub arch: ArchKind,
    /// Every thread, in note order.
    pub threads: Vec<StoppedThread>,
    /// The auxiliary vector: (type, value) pairs.
    pub auxv: Vec<(u64, u64)>,
    /// File mappings from the `NT_FILE` note.
    pub files: Vec<FileMapping>,
    /// The `PT_LOAD` segments: the memory the core holds.
    pub segments: Vec<CoreSegment>,
    data: crate::module::FileBytes,
}

// Byte offsets inside `struct elf_prstatus` on 64-bit Linux (see
// linux/include/uapi/linux/elfcore.h): the registers start after the
// signal info, pids and four `struct timeval`s.
const PRSTATUS_CURSIG: usize = 12;
const PRSTATUS_PID: usize = 32;
const PRSTATUS_REGS: usize = 112;

// Bounds that keep hostile notes from making us allocate without limit.
const MAX_THREADS: usize = 65_536;
const MAX_FILE_MAPPINGS: u64 = 1_000_000;

impl CoreFile {
    /// Opens and parses a core file.
    pub fn open(path: &Path) -> Result<CoreFile> {
        CoreFile::parse(path, crate::module::FileBytes::open(path)?)
    }

    /// Parses a core's bytes; `path` names it in errors.
    pub fn parse(path: &Path, data: crate::module::FileBytes) -> Result<CoreFile> {
        let bytes = data.bytes();
        let bad = |what: String| Error::BadElf {
            path: path.to_path_buf(),
            what,
        };
        if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
            return Err(Error::NotElf {
                path: path.to_path_buf(),
            });
        }
        let header = elf::FileHeader64::<Endianness>::parse(bytes)
            .map_err(|e| bad(format!("header: {e}")))?;
        let endian = header
            .endian()
            .map_err(|e| bad(format!("endianness: {e}")))?;
        if header.e_type(endian) != elf::ET_CORE {
            return Err(Error::NotCore {
                path: path.to_path_buf(),
            });
        }
        let arch = ArchKind::from_e_machine(header.e_machine(endian)).ok_or_else(|| {
            Error::UnsupportedArch {
                path: path.to_path_buf(),
                arch: format!("e_machine {}", header.e_machine(endian)),
            }
        })?;
        let phdrs = header
            .program_headers(endian, bytes)
            .map_err(|e| bad(format!("program headers: {e}")))?;

        let mut threads = Vec::new();
        let mut auxv = Vec::new();
        let mut files = Vec::new();
        let mut segments = Vec::new();
        for ph in phdrs {
            match ph.p_type(endian) {
                elf::PT_LOAD => {
                    let seg = CoreSegment {
                        vaddr: ph.p_vaddr(endian),
                        memsz: ph.p_memsz(endian),
                        offset: ph.p_offset(endian),
                        filesz: ph.p_filesz(endian),
                    };
                    let end = seg.offset.saturating_add(seg.filesz);
                    if seg.filesz > 0 && end > bytes.len() as u64 {
                        return Err(Error::Truncated {
                            path: path.to_path_buf(),
                            vaddr: seg.vaddr,
                            offset: seg.offset,
                            end,
                            file_len: bytes.len() as u64,
                        });
                    }
                    segments.push(seg);
                }
                elf::PT_NOTE => {
                    let notes = ph
                        .notes(endian, bytes)
                        .map_err(|e| bad(format!("note segment: {e}")))?;
                    let Some(mut notes) = notes else { continue };
                    while let Some(note) = notes.next().map_err(|e| bad(format!("note: {e}")))? {
                        if note.name() != b"CORE" {
                            continue;
                        }
                        let desc = note.desc();
                        match note.n_type(endian) {
                            elf::NT_PRSTATUS => {
                                if threads.len() >= MAX_THREADS {
                                    return Err(bad("too many NT_PRSTATUS notes".into()));
                                }
                                threads.push(parse_prstatus(arch, desc).ok_or_else(|| {
                                    bad(format!(
                                        "NT_PRSTATUS note of {} bytes is too short",
                                        desc.len()
                                    ))
                                })?);
                            }
                            elf::NT_AUXV => {
                                auxv = desc
                                    .chunks_exact(16)
                                    .map(|c| (le64(c, 0), le64(c, 8)))
                                    .take_while(|&(k, _)| k != 0)
                                    .collect();
                            }
                            elf::NT_FILE => files = parse_nt_file(desc).map_err(bad)?,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if threads.is_empty() {
            return Err(Error::NoThreads {
                path: path.to_path_buf(),
            });
        }
        segments.sort_by_key(|s| s.vaddr);
        Ok(CoreFile {
            path: path.to_path_buf(),
            arch,
            threads,
            auxv,
            files,
            segments,
            data,
        })
    }

    /// The value of an auxv entry (`AT_*`).
    pub fn auxv_value(&self, key: u64) -> Option<u64> {
        self.auxv.iter().find(|&&(k, _)| k == key).map(|&(_, v)| v)
    }

    /// Index of the thread that received the fatal signal (the first thread
    /// if no note says so).
    pub fn crashed_thread(&self) -> usize {
        crashed_index(&self.threads)
    }

    /// Reads memory that the core itself holds. Returns `false` when any byte
    /// of the range is not in the core's file data (absent, or a segment
    /// with `p_filesz` 0 such as QEMU's text segments).
    pub fn read_dumped(&self, addr: u64, buf: &mut [u8]) -> bool {
        let bytes = self.data.bytes();
        let idx = self.segments.partition_point(|s| s.vaddr <= addr);
        // Segments can overlap in odd cores, so look back a few.
        for seg in self.segments[..idx].iter().rev().take(4) {
            let Some(rel) = addr.checked_sub(seg.vaddr) else {
                continue;
            };
            let Some(end) = rel.checked_add(buf.len() as u64) else {
                continue;
            };
            if end > seg.filesz {
                continue;
            }
            let start = (seg.offset + rel) as usize;
            if let Some(src) = bytes.get(start..start + buf.len()) {
                buf.copy_from_slice(src);
                return true;
            }
        }
        false
    }

    /// Whether `addr` is inside any segment of the core (dumped or not).
    pub fn is_mapped(&self, addr: u64) -> bool {
        self.segments
            .iter()
            .any(|s| addr >= s.vaddr && addr - s.vaddr < s.memsz)
    }

    /// Size of the core file in bytes.
    pub fn file_len(&self) -> u64 {
        self.data.bytes().len() as u64
    }
}

fn le64(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

fn parse_prstatus(arch: ArchKind, desc: &[u8]) -> Option<StoppedThread> {
    let signal = u16::from_le_bytes(
        desc.get(PRSTATUS_CURSIG..PRSTATUS_CURSIG + 2)?
            .try_into()
            .ok()?,
    );
    let tid = u32::from_le_bytes(desc.get(PRSTATUS_PID..PRSTATUS_PID + 4)?.try_into().ok()?);
    let regs = arch.arch().regs_from_prstatus(desc.get(PRSTATUS_REGS..)?)?;
    Some(StoppedThread { tid, signal, regs })
}

/// Parses `NT_FILE`: count, page size, `count` (start, end, page offset)
/// triples, then `count` NUL-terminated paths.
fn parse_nt_file(desc: &[u8]) -> std::result::Result<Vec<FileMapping>, String> {
    let count = le64(desc, 0);
    let page_size = le64(desc, 8);
    if count > MAX_FILE_MAPPINGS {
        return Err(format!("NT_FILE claims {count} mappings"));
    }
    let table_end = 16 + count as usize * 24;
    if table_end > desc.len() {
        return Err("NT_FILE note is truncated".into());
    }
    let mut names = desc[table_end..].split(|&c| c == 0);
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let at = 16 + i * 24;
        let name = names
            .next()
            .ok_or_else(|| "NT_FILE note has fewer names than mappings".to_string())?;
        out.push(FileMapping {
            start: le64(desc, at),
            end: le64(desc, at + 8),
            file_offset: le64(desc, at + 16).saturating_mul(page_size),
            path: String::from_utf8_lossy(name).into_owned(),
        });
    }
    Ok(out)
}
