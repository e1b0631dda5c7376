//! Backends: where a scenario's Node.js runs. One trait, one file each:
//! `qemu-user` (ARM64 Node.js under qemu-aarch64, the default on x86
//! hosts), `native` (the host's own architecture) and `docker` (the
//! `crosswind/node` images through testcontainers). `qemu-system` is not
//! built. The trait is in `api`, the one list of backends in [`registry`].

mod api;
mod docker;
mod native;
mod qemu_user;
pub mod registry;

pub use api::{die_with_parent, host_arch, Backend, BoxFuture, LiveBackend, RunOutput, RunRequest};
pub use docker::{binfmt_aarch64, engine_api, ContainerExit, Docker, GdbContainer};
pub use native::Native;
pub use qemu_user::QemuUser;
pub use registry::{by_name, default_for, live_unavailable, NAMES};
