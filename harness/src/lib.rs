//! crosswind-harness: provisioning of Node.js builds and toolchains, and
//! the commands of the `crosswind` binary. The unwinder itself lives in
//! `crosswind-unwinder`; this crate never reaches into its internals.

pub mod addon;
pub mod backend;
pub mod capture;
pub mod doctor;
pub mod gdb_remote;
pub mod images;
pub mod live;
pub mod output;
pub mod provision;
pub mod report;
pub mod runner;
pub mod sample;
pub mod scenario;
pub mod sweep;
pub mod verify;
