//! Bug reports turned into tests: a reporter's script into a scenario
//! ([`script`]), a reporter's snapshot into a fixture ([`fixture`]).

pub mod fixture;
pub mod script;

pub use fixture::{check_fixture_frames, snapshot_fixture, META_EXPECT, REPORTS_FAMILY};
pub use script::{repro_command, ReproOptions};
