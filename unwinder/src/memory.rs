//! The `Memory` trait: how the unwinder reads a stopped process, whatever
//! holds it (a core file, a snapshot, a live process through a debugger).

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
}
