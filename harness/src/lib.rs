//! crosswind-harness: provisioning of Node.js builds and toolchains, and
//! the commands of the `crosswind` binary. The unwinder itself lives in
//! `crosswind-unwinder`; this crate never reaches into its internals.
//!
//! The flow of `crosswind run`: a [`scenario`] is expanded into jobs and
//! [`run`] on a [`backend`] (to a core, [`capture`]), or sampled [`live`];
//! what the unwinder makes of it is checked against the scenario's
//! expectations ([`scenario::expect`]) and V8's own stack
//! ([`capture::verify`]), and the results go to the [`report`].
//! [`provision`], [`images`] and [`addon`] fetch and build what runs;
//! [`doctor`] says what is missing; [`repro`] turns a reporter's script
//! into a scenario.

pub mod addon;
pub mod backend;
pub mod capture;
pub mod doctor;
pub mod images;
pub mod live;
pub mod provision;
pub mod report;
pub mod repro;
pub mod run;
pub mod scenario;
pub mod target;
