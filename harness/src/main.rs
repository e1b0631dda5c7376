//! The `crosswind` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crosswind_harness::{output, provision};

#[derive(Parser)]
#[command(
    name = "crosswind",
    version,
    about = "Mixed native/V8 stacks of Node.js on arm64 and x86-64"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Print every thread's stack from an ELF core.
    Unwind {
        /// The core file.
        core: PathBuf,
        /// The Node.js executable that wrote the core.
        #[arg(long)]
        exe: Option<PathBuf>,
        /// Directory that stands for `/` when resolving library paths
        /// (as `qemu-aarch64 -L`).
        #[arg(long)]
        sysroot: Option<PathBuf>,
        /// Extra directory searched for modules by file name (repeatable).
        #[arg(long = "search-dir")]
        search_dirs: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Install what crosswind needs: QEMU, the aarch64 toolchain and
    /// sysroot, gdb-multiarch, and the official Node.js packages.
    Setup {
        /// Node.js version to provision (repeatable); default: every supported version.
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// Only check; install nothing.
        #[arg(long)]
        check: bool,
        /// Skip the system packages (apt).
        #[arg(long)]
        no_apt: bool,
    },
    /// Print the path of a provisioned Node.js package, provisioning it if needed.
    NodePath {
        #[arg(long, default_value = provision::DEFAULT_NODE)]
        node: String,
        #[arg(long, default_value = "arm64")]
        arch: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Unwind {
            core,
            exe,
            sysroot,
            search_dirs,
            format,
        } => output::unwind_command(
            &core,
            exe,
            sysroot,
            search_dirs,
            matches!(format, Format::Json),
        ),
        Command::Setup {
            nodes,
            check,
            no_apt,
        } => provision::setup_command(&nodes, check, no_apt),
        Command::NodePath { node, arch } => provision::NodePackage::ensure(&node, &arch).map(|p| {
            println!("{}", p.root.display());
            0
        }),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("crosswind: {e:#}");
            ExitCode::from(2)
        }
    }
}
