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
pub use replay::{RangeMemory, SnapshotProcess};

use std::path::{Path, PathBuf};

/// The snapshot files (`*.cwsnap`) in the folders of `dir`, sorted: the
/// layout of the committed fixtures, `scenarios/fixtures/FAMILY/NAME.cwsnap`.
/// Folders that cannot be read are skipped.
pub fn files_in_families(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for family in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(family.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if f.path().extension().is_some_and(|e| e == "cwsnap") {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}
