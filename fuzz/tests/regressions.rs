//! Replays every fuzz target's seed corpus and every input a fuzzer found
//! (`fuzz/regressions/<target>/`), on stable Rust: a finding once fixed
//! stays fixed, and the targets keep building and running without nightly.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

/// Inputs kept for a target: its regressions and its seed corpus.
fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("regressions").join(target),
        root.join("seeds").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        out.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
    }
    out.sort();
    out
}

fn main() {
    let args = Arguments::from_args();
    let trials = crosswind_fuzz::TARGETS
        .iter()
        .map(|&(name, target)| {
            Trial::test(name, move || {
                let inputs = inputs(name);
                if inputs.is_empty() {
                    return Err(Failed::from(format!("no seeds or regressions for {name}")));
                }
                for path in &inputs {
                    let data = std::fs::read(path)
                        .map_err(|e| Failed::from(format!("{}: {e}", path.display())))?;
                    target(&data);
                }
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
