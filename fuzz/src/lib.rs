//! Fuzz targets for every parser of untrusted input: ELF cores and their
//! notes, snapshots, scenario YAML and frame patterns, GDB remote packets,
//! and V8 heap objects read from a target (a committed snapshot whose
//! memory the input rewrites). Each target takes arbitrary bytes and must
//! return without panicking, hanging or allocating without bound; what it
//! returns is ignored.
//!
//! The targets are plain functions so that two engines drive them:
//! libFuzzer through `cargo fuzz` (nightly; `fuzz/libfuzzer/`), and the
//! stable `regressions` test, which replays the seed corpora and every
//! input a fuzzer ever found (`fuzz/regressions/<target>/`).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use crosswind_harness::live::gdb_remote::{decode_body, from_hex, parse_stop, GdbClient};
use crosswind_harness::scenario::pattern::{sequence_matches, Pattern};
use crosswind_harness::scenario::Scenario;
use crosswind_unwinder::snapshot::{Snapshot, SnapshotProcess};
use crosswind_unwinder::{CoreFile, FileBytes, Frame};

/// A target: arbitrary bytes in, nothing out.
pub type Target = fn(&[u8]);

/// Every target by name (the names of `fuzz/libfuzzer/fuzz_targets/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("core_file", core_file),
    ("snapshot", snapshot),
    ("v8_heap", v8_heap),
    ("scenario_yaml", scenario_yaml),
    ("pattern", pattern),
    ("gdb_reply", gdb_reply),
];

/// The committed snapshot the heap target rewrites: an async await chain
/// on arm64 Node.js 22, whose walk reads JavaScript frames, SharedFunctionInfos,
/// scripts, position tables and promise chains.
const BASE_SNAPSHOT: &[u8] =
    include_bytes!("../../scenarios/fixtures/async/await-class-methods.node-22.20.0.arm64.cwsnap");

/// Most bytes one heap patch writes.
const MAX_PATCH: usize = 64;

/// Parses a core, then asks it what an unwind asks first.
pub fn core_file(data: &[u8]) {
    let Ok(core) = CoreFile::parse(Path::new("fuzz.core"), FileBytes::from_vec(data.to_vec()))
    else {
        return;
    };
    let _ = core.crashed_thread();
    let _ = core.auxv_value(3);
    let arch = core.arch.arch();
    let mut buf = [0u8; 64];
    for t in core.threads.iter().take(8) {
        if let Some(sp) = t.regs.sp(arch) {
            let _ = core.read_dumped(sp, &mut buf);
        }
        if let Some(pc) = t.regs.pc(arch) {
            let _ = core.is_mapped(pc);
        }
    }
    for s in core.segments.iter().take(8) {
        let _ = core.read_dumped(s.vaddr, &mut buf);
    }
}

/// Decodes a snapshot and, when it decodes, replays its unwind.
pub fn snapshot(data: &[u8]) {
    let Ok(s) = Snapshot::decode(data) else {
        return;
    };
    if let Ok(process) = SnapshotProcess::from_recorded_ranges(&s) {
        let _ = process.unwind(None);
    }
}

fn base_snapshot() -> Option<&'static Snapshot> {
    static BASE: OnceLock<Option<Snapshot>> = OnceLock::new();
    BASE.get_or_init(|| Snapshot::decode(BASE_SNAPSHOT).ok())
        .as_ref()
}

/// Rewrites the base snapshot's memory and unwinds it, so that every V8
/// object the walk reads (frames, maps, functions, scripts, position
/// tables, promises) may be anything. The input is a list of patches:
/// a 4-byte little-endian offset into the recorded bytes (all ranges end
/// to end), a length byte, then that many bytes to write.
pub fn v8_heap(data: &[u8]) {
    let Some(base) = base_snapshot() else {
        return;
    };
    let mut s = base.clone();
    let total: usize = s.memory.values().map(Vec::len).sum();
    if total == 0 {
        return;
    }
    let mut rest = data;
    while rest.len() >= 5 {
        let offset = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize % total;
        let len = (rest[4] as usize % MAX_PATCH).min(rest.len() - 5);
        patch(&mut s, offset, &rest[5..5 + len]);
        rest = &rest[5 + len..];
    }
    if let Ok(process) = SnapshotProcess::from_recorded_ranges(&s) {
        let _ = process.unwind(None);
    }
}

/// Writes `bytes` at `offset` into the snapshot's ranges taken end to end.
fn patch(s: &mut Snapshot, mut offset: usize, bytes: &[u8]) {
    for range in s.memory.values_mut() {
        if offset < range.len() {
            let n = bytes.len().min(range.len() - offset);
            range[offset..offset + n].copy_from_slice(&bytes[..n]);
            return;
        }
        offset -= range.len();
    }
}

/// Parses a scenario file and expands it into jobs, as `crosswind run
/// --list` does.
pub fn scenario_yaml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(s) = Scenario::parse(Path::new("scenarios/fuzz/input.yaml"), &text) {
        let _ = crosswind_harness::run::job::jobs(&[std::sync::Arc::new(s)], &[], None);
    }
}

fn base_frames() -> &'static [Frame] {
    static FRAMES: OnceLock<Vec<Frame>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        base_snapshot()
            .and_then(|s| SnapshotProcess::from_recorded_ranges(s).ok())
            .map(|p| {
                p.unwind(None)
                    .threads
                    .into_iter()
                    .flat_map(|t| t.frames)
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Parses frame patterns, one a line, and matches them against a real
/// stack.
pub fn pattern(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let patterns: Vec<Pattern> = text
        .lines()
        .take(64)
        .filter_map(|l| Pattern::parse(l).ok())
        .collect();
    let frames = base_frames();
    for p in &patterns {
        let _ = p.natives_optional();
        for f in frames.iter().take(64) {
            let _ = p.matches(f);
        }
    }
    let _ = sequence_matches(&patterns, frames);
}

/// A stub whose replies are the input; what the client sends is dropped.
struct ScriptedStub<'a> {
    replies: &'a [u8],
}

impl Read for ScriptedStub<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Short reads, as TCP gives, so packets straddle reads.
        let n = buf.len().min(self.replies.len()).min(97);
        buf[..n].copy_from_slice(&self.replies[..n]);
        self.replies = &self.replies[n..];
        Ok(n)
    }
}

impl Write for ScriptedStub<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs the exchanges of a sampling stop against a stub answering with
/// the input, and the packet decoders on the input itself.
pub fn gdb_reply(data: &[u8]) {
    let _ = decode_body(data);
    let text = String::from_utf8_lossy(data);
    let _ = from_hex(&text);
    let _ = parse_stop(&text);
    let mut client = GdbClient::new(ScriptedStub { replies: data }, Duration::from_millis(5));
    let _ = client.supported();
    let _ = client.halt_reason();
    let _ = client.registers();
    let _ = client.register(32);
    let _ = client.memory(0x1000, 300);
    client.drain();
    let _ = client.request_raw("qXfer:auxv:read::0,1000");
}
