//! One job: a scenario on one Node.js version and architecture, and
//! expanding scenarios into jobs (filtered by `--node` and `--arch`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use crate::scenario::{self, Scenario};
use crate::target::TargetArch;

/// One run: a scenario on one Node.js version and architecture.
#[derive(Clone)]
pub struct Job {
    pub scenario: Arc<Scenario>,
    pub node: String,
    pub arch: TargetArch,
}

impl Job {
    /// `family::name::node-VER::ARCH`, the trial name in `cargo test`.
    pub fn id(&self) -> String {
        format!(
            "{}::{}::node-{}::{}",
            self.scenario.family, self.scenario.name, self.node, self.arch
        )
    }
}

/// Loads every scenario under `paths`; a file that does not parse is an
/// error naming it.
pub fn load_scenarios(paths: &[PathBuf]) -> Result<Vec<Arc<Scenario>>> {
    scenario::discover(paths)?
        .iter()
        .map(|p| Scenario::load(p).map(Arc::new))
        .collect()
}

/// Expands scenarios into jobs, filtered by `--node` and `--arch`.
pub fn jobs(scenarios: &[Arc<Scenario>], nodes: &[String], arch: Option<TargetArch>) -> Vec<Job> {
    let mut out = Vec::new();
    for s in scenarios {
        for node in s.node_versions() {
            if !nodes.is_empty() && !nodes.contains(&node) {
                continue;
            }
            for a in s.arches() {
                if arch.is_some_and(|want| want != a) {
                    continue;
                }
                out.push(Job {
                    scenario: s.clone(),
                    node: node.clone(),
                    arch: a,
                });
            }
        }
    }
    out
}
