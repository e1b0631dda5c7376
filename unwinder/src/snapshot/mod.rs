//! Snapshots: a captured stack made small and self-contained. A snapshot
//! holds each thread's registers, the memory pages the unwinder read, and
//! for each module only the answers it gave (symbols, CFI rows, named
//! values, file bytes), plus provenance and the frames the original unwind
//! produced.
//!
//! [`format`] owns the data and its bytes (`docs/snapshot.md`), [`record`]
//! wraps a stopped process so that every read and every module query is
//! kept, and [`replay`] rebuilds a process from the snapshot alone.

pub mod format;
pub mod record;
pub mod replay;

pub use crate::memory::PAGE;
pub use format::{Snapshot, SnapshotModule, MAGIC, META_PROCESS, PROCESS_RUNNING, VERSION};
pub use record::{finish_recording, record, record_threads, RecordingProcess};
pub use replay::{read_ranges, RangeMemory, SnapshotProcess};
