//! The `Memory` trait: how the unwinder reads a stopped process, whatever
//! holds it (a core file, a snapshot, a live process through a debugger).

use std::cell::RefCell;
use std::collections::HashMap;

use crate::error::{Error, Result};

/// Page size used for recorded and emulated memory.
pub const PAGE: u64 = 4096;

/// Read access to the address space of a stopped process.
///
/// Implementations must never panic on any address: an address that is not
/// backed returns [`Error::Unmapped`].
pub trait Memory {
    /// Fills `buf` with the bytes at `addr`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()>;

    /// The mapping `[start, end)` that holds `addr`, when the source knows
    /// the address space's layout (a core's segments, dumped or not).
    fn mapping_at(&self, _addr: u64) -> Option<(u64, u64)> {
        None
    }

    /// Reads a little-endian u64.
    fn read_u64(&self, addr: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a little-endian u32.
    fn read_u32(&self, addr: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian u16.
    fn read_u16(&self, addr: u64) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads one byte.
    fn read_u8(&self, addr: u64) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read(addr, &mut b)?;
        Ok(b[0])
    }

    /// Reads `len` bytes into a new vector.
    fn read_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; len];
        self.read(addr, &mut v)?;
        Ok(v)
    }

    /// Reads a NUL-terminated string of at most `max` bytes.
    fn read_cstr(&self, addr: u64, max: usize) -> Result<String> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 64];
        let mut at = addr;
        while out.len() < max {
            // Read byte-wise at the end of a mapping: a 64-byte read may cross
            // into an unmapped page even though the string ends before it.
            let n = if self.read(at, &mut chunk).is_ok() {
                chunk.len()
            } else {
                self.read(at, &mut chunk[..1])?;
                1
            };
            if let Some(pos) = chunk[..n].iter().position(|&c| c == 0) {
                out.extend_from_slice(&chunk[..pos]);
                return Ok(String::from_utf8_lossy(&out).into_owned());
            }
            out.extend_from_slice(&chunk[..n]);
            at = at.wrapping_add(n as u64);
        }
        Err(Error::Other(format!(
            "string at {addr:#x} is longer than {max} bytes"
        )))
    }
}

// Every method is forwarded: a default here would hide what the referent
// knows (a core's mappings locate V8's copy of its builtins).
impl<M: Memory + ?Sized> Memory for &M {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read(addr, buf)
    }
    fn mapping_at(&self, addr: u64) -> Option<(u64, u64)> {
        (**self).mapping_at(addr)
    }
    fn read_u64(&self, addr: u64) -> Result<u64> {
        (**self).read_u64(addr)
    }
    fn read_u32(&self, addr: u64) -> Result<u32> {
        (**self).read_u32(addr)
    }
    fn read_u16(&self, addr: u64) -> Result<u16> {
        (**self).read_u16(addr)
    }
    fn read_u8(&self, addr: u64) -> Result<u8> {
        (**self).read_u8(addr)
    }
}

/// Whole pages read once and served from then on, for scans that read a
/// region word by word: one read per page rather than one per word, which
/// matters when each read is a round trip to a debugger. A page that cannot
/// be read whole (the end of a mapping, a snapshot holding only some of
/// its bytes) is read as asked, so every read succeeds exactly when it
/// would without the cache. Meant to live for one scan.
pub struct PageCache<'a> {
    inner: &'a dyn Memory,
    pages: RefCell<HashMap<u64, Option<Box<[u8]>>>>,
}

impl<'a> PageCache<'a> {
    /// An empty cache over `inner`.
    pub fn new(inner: &'a dyn Memory) -> PageCache<'a> {
        PageCache {
            inner,
            pages: RefCell::new(HashMap::new()),
        }
    }

    /// The bytes of the page at `page`, when it reads whole.
    fn with_page<R>(&self, page: u64, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let mut pages = self.pages.borrow_mut();
        let entry = pages.entry(page).or_insert_with(|| {
            self.inner
                .read_vec(page, PAGE as usize)
                .ok()
                .map(Vec::into_boxed_slice)
        });
        entry.as_deref().map(f)
    }
}

impl Memory for PageCache<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
        let page = addr & !(PAGE - 1);
        let offset = (addr - page) as usize;
        let fits = offset + buf.len() <= PAGE as usize;
        if fits
            && self
                .with_page(page, |bytes| {
                    buf.copy_from_slice(&bytes[offset..offset + buf.len()])
                })
                .is_some()
        {
            return Ok(());
        }
        self.inner.read(addr, buf)
    }
    fn mapping_at(&self, addr: u64) -> Option<(u64, u64)> {
        self.inner.mapping_at(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Two readable pages at 0x10000, of which the second only in part,
    /// counting reads.
    struct Counted {
        reads: Cell<usize>,
    }

    impl Memory for Counted {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<()> {
            self.reads.set(self.reads.get() + 1);
            let end = addr
                .checked_add(buf.len() as u64)
                .ok_or(Error::Other("wrap".into()))?;
            if addr < 0x10000 || end > 0x11800 {
                return Err(Error::Unmapped {
                    addr,
                    len: buf.len(),
                });
            }
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (addr as usize + i) as u8;
            }
            Ok(())
        }
    }

    #[test]
    fn page_cache_reads_a_page_once_and_agrees_with_its_source() {
        let source = Counted {
            reads: Cell::new(0),
        };
        let cache = PageCache::new(&source);
        for at in (0x10000..0x10800u64).step_by(8) {
            assert_eq!(cache.read_u64(at).ok(), source.read_u64(at).ok());
        }
        // 256 reads of the source itself, one page read by the cache.
        assert_eq!(source.reads.get(), 256 + 1);
        // The partly readable page: read as asked, same answers.
        for at in [0x11000u64, 0x117f8, 0x11800, 0x11ffc] {
            assert_eq!(cache.read_u32(at).ok(), source.read_u32(at).ok());
        }
        // A read across pages goes to the source.
        assert_eq!(cache.read_u64(0x10ffc).ok(), source.read_u64(0x10ffc).ok());
    }
}
