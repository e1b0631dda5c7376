//! The `crosswind` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crosswind_harness::live::{sample, sweep};
use crosswind_harness::report::output;
use crosswind_harness::target::TargetArch;
use crosswind_harness::{provision, run};

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

/// A core (or snapshot), or a running process, and where its modules are
/// found.
#[derive(clap::Args)]
struct CoreArgs {
    /// The core file (for `unwind`, also a snapshot).
    core: Option<PathBuf>,
    /// Read this running Node.js process of the host's architecture
    /// instead (ptrace): each thread is stopped only for its own walk,
    /// and the process goes on.
    #[arg(long, conflicts_with = "core")]
    pid: Option<u32>,
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
}

impl CoreArgs {
    /// What to read and how its modules are found.
    fn split(self) -> anyhow::Result<(output::Source, crosswind_unwinder::ModuleResolver)> {
        let source = match (self.pid, self.core) {
            (Some(pid), _) => output::Source::Pid(pid),
            (None, Some(core)) => output::Source::File(core),
            (None, None) => anyhow::bail!("give a core file or --pid"),
        };
        Ok((
            source,
            crosswind_unwinder::ModuleResolver {
                exe: self.exe,
                sysroot: self.sysroot,
                search_dirs: self.search_dirs,
            },
        ))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum SampleFormat {
    Json,
    Folded,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Print every thread's stack from an ELF core, a snapshot, or a
    /// running process (`--pid`).
    Unwind {
        #[command(flatten)]
        input: CoreArgs,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Leave out the awaiting callers V8 prints as `at async`.
        #[arg(long)]
        no_async: bool,
    },
    /// Record a small, self-contained snapshot of the stacks of a core or
    /// of a running process (`--pid`).
    Snapshot {
        #[command(flatten)]
        input: CoreArgs,
        /// Where to write the snapshot (`.cwsnap`).
        #[arg(short = 'o', long = "output", required_unless_present = "inspect")]
        output: Option<PathBuf>,
        /// Instead, list what the snapshot FILE holds: provenance, threads,
        /// memory, module answers, and the JavaScript functions and scripts
        /// it names.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["output", "pid", "core"])]
        inspect: Option<PathBuf>,
        /// Provenance to record, as KEY=VALUE (node_version, scenario, ...).
        #[arg(long = "meta", value_parser = parse_meta)]
        meta: Vec<(String, String)>,
    },
    /// Turn a reporter's script (unchanged) into a scenario: run it where
    /// asked until it calls process.abort(), record V8's stack there, write
    /// DIR/FAMILY/NAME.yaml expecting the script's frames, and run it.
    ///
    /// Given a snapshot (`.cwsnap`) instead, write it as a fixture
    /// (DIR/fixtures/reports/NAME.cwsnap) that `cargo test` replays and
    /// checks against the frames of `--expect`.
    Repro {
        /// The script, or a snapshot.
        script: PathBuf,
        /// For a snapshot: the expected frames, one pattern a line,
        /// innermost first (default: the frames it replays to now, to be
        /// corrected).
        #[arg(long)]
        expect: Option<PathBuf>,
        /// Node.js version(s) (default: every supported line).
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// Only this architecture (default: both).
        #[arg(long, value_enum)]
        arch: Option<TargetArch>,
        /// The scenario's name (default: from the script's file name).
        #[arg(long)]
        name: Option<String>,
        /// The scenario family (default: pure-js, or native-addon when the
        /// script loads a `.node` file).
        #[arg(long)]
        family: Option<String>,
        /// Where scenario families live.
        #[arg(long, default_value = "scenarios")]
        out: PathBuf,
    },
    /// Install what crosswind needs: QEMU, the aarch64 toolchain and
    /// sysroot, gdb-multiarch, and the official Node.js packages (the
    /// default line unless told otherwise).
    Setup {
        /// Node.js version to provision (repeatable); default: the default
        /// line only, which is all `just test` runs.
        #[arg(long = "node", conflicts_with = "all_lines")]
        nodes: Vec<String>,
        /// Provision every supported line (`just test-arm64`, `just test-x64`).
        #[arg(long)]
        all_lines: bool,
        /// Only this architecture's builds (default: arm64 and x64).
        #[arg(long, value_enum)]
        arch: Option<TargetArch>,
        /// Only check; install nothing.
        #[arg(long)]
        check: bool,
        /// Skip the system packages (apt).
        #[arg(long)]
        no_apt: bool,
    },
    /// Run YAML scenarios: real Node.js, a captured core, checked against
    /// V8's own stack and the scenario's expectations.
    Run(RunArgs),
    /// Sample a running ARM64 Node.js script through QEMU's gdbstub, as a
    /// profiler would: folded stacks (or JSON), statistics, a flame graph.
    Sample(SampleArgs),
    /// Single-step one function from its entry to its return, unwinding at
    /// every instruction; every step must show the same callers.
    Sweep {
        #[arg(long, default_value = provision::DEFAULT_NODE)]
        node: String,
        /// The guest's architecture: arm64 (under qemu-aarch64) or x64
        /// (under qemu-x86_64).
        #[arg(long, value_enum, default_value = "arm64")]
        arch: TargetArch,
        /// What to sweep: `js:NAME` (a JavaScript function, interpreted or
        /// optimized), `builtin:NAME` (a `Builtins_NAME` symbol), or
        /// `native:SYMBOL[@MODULE]`.
        #[arg(long)]
        function: String,
        /// Which call to sweep (the Nth time the function is entered).
        #[arg(long, default_value_t = 1)]
        hit: usize,
        /// For `js:` targets: wait until the function runs in this tier
        /// (interpreted, baseline, maglev, turbofan).
        #[arg(long, value_parser = parse_tier)]
        tier: Option<crosswind_unwinder::v8::Tier>,
        /// Step limit.
        #[arg(long = "max-steps", default_value_t = 20000)]
        max_steps: usize,
        /// Write each step's snapshot into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Node.js flags, then the script and its arguments (after `--`).
        #[arg(last = true, required = true)]
        script: Vec<String>,
    },
    /// A Markdown table of Node.js versions x architectures x scenario
    /// families with pass counts, from `crosswind run --report` files.
    Matrix {
        /// Put the table between the matrix markers in this Markdown file
        /// instead of printing it.
        #[arg(long)]
        update: Option<PathBuf>,
        /// Report files written by `crosswind run --report`.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
    /// What this machine can run: backends, QEMU, binfmt, Docker, tools, provisioned Node.js builds
    Doctor,
    /// Container images for the docker backend
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Print the path of a provisioned Node.js package, provisioning it if needed.
    NodePath {
        #[arg(long, default_value = provision::DEFAULT_NODE)]
        node: String,
        #[arg(long, default_value = "arm64")]
        arch: String,
        /// Print the supported versions instead, comma-separated (as the
        /// tests' CROSSWIND_NODE takes them); provisions nothing.
        #[arg(long)]
        list: bool,
    },
}

/// `crosswind run`'s arguments.
#[derive(clap::Args)]
struct RunArgs {
    /// Node.js version(s) to run (default: each scenario's list).
    #[arg(long = "node")]
    nodes: Vec<String>,
    /// Only this architecture.
    #[arg(long, value_enum)]
    arch: Option<TargetArch>,
    /// Backend: qemu-user, native or docker (default: native for the host's
    /// architecture, qemu-user otherwise).
    #[arg(long)]
    backend: Option<String>,
    /// Jobs run at once (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Write the full results as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Keep every run's directory (and core), not only failed ones.
    #[arg(long)]
    keep: bool,
    /// Refresh the committed snapshots (scenarios/fixtures/) from these
    /// runs, and say what changed.
    #[arg(long)]
    update_fixtures: bool,
    /// List the jobs the scenarios expand to (scenario x version x
    /// architecture x backend), one a line, without running anything.
    #[arg(long)]
    list: bool,
    /// Scenario files or directories (default: scenarios/).
    paths: Vec<PathBuf>,
}

/// `crosswind sample`'s arguments.
#[derive(clap::Args)]
struct SampleArgs {
    #[arg(long, default_value = provision::DEFAULT_NODE)]
    node: String,
    /// Number of samples.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Mean interval between samples (jittered). 0 samples as fast as
    /// it can while the program still runs as long as it is stopped.
    #[arg(long = "interval-ms", default_value_t = 10)]
    interval_ms: u64,
    /// Let every instruction be a sample point (QEMU one instruction
    /// per translation block; about 5x slower).
    #[arg(long)]
    every_insn: bool,
    /// Also sample Node.js's start-up: by default samples count from
    /// the first stop inside the script.
    #[arg(long)]
    include_startup: bool,
    #[arg(long, value_enum, default_value = "folded")]
    format: SampleFormat,
    /// Write an SVG flame graph.
    #[arg(long)]
    flamegraph: Option<PathBuf>,
    /// Write the samples as a gzipped pprof profile (`profile.proto`).
    #[arg(long)]
    pprof: Option<PathBuf>,
    /// Write every sample as a snapshot (`sample-NNNNN.cwsnap`) and
    /// all of them as `samples.json` into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Target architecture: arm64 (under qemu-aarch64) or x64 (under
    /// qemu-x86_64); either way QEMU's gdbstub stops the guest.
    #[arg(long, default_value = "arm64", value_enum)]
    arch: TargetArch,
    /// Backend: `qemu-user` (QEMU here) or `docker` (the
    /// `crosswind/node` image, its node under the binfmt handler's
    /// gdbstub; the script's directory is mounted as /work).
    #[arg(long, default_value = "qemu-user")]
    backend: String,
    /// Leave out the awaiting callers V8 prints as `at async`.
    #[arg(long)]
    no_async: bool,
    /// Node.js flags, then the script and its arguments (after `--`).
    #[arg(last = true, required = true)]
    script: Vec<String>,
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Build (or keep, when up to date) `crosswind/node:<ver>-<arch>` from the provisioned Node.js package, with no registry
    Build {
        /// Node.js version (repeatable); default: every supported version
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// Only this architecture (default: arm64 and x64)
        #[arg(long, value_enum)]
        arch: Option<TargetArch>,
    },
}

fn parse_meta(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))
}

/// Live capture runs the guest under QEMU's user-mode gdbstub: arm64 or
/// x64 guests (`--arch` takes no other), here (`qemu-user`) or in a
/// container (`docker`).
fn check_live_target(backend: &str) -> anyhow::Result<crosswind_harness::live::LiveBackend> {
    crosswind_harness::backend::registry::live_by_name(backend)
        .map_err(|e| anyhow::anyhow!("--backend {backend}: {e}"))
}

fn parse_tier(s: &str) -> Result<crosswind_unwinder::v8::Tier, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("'{s}' is not a tier (interpreted, baseline, maglev, turbofan)"))
}

/// `[NODE_FLAGS...] SCRIPT [ARGS...]` as given after `--`.
fn split_command(words: &[String]) -> anyhow::Result<(Vec<String>, PathBuf, Vec<String>)> {
    let first = words
        .iter()
        .position(|w| !w.starts_with('-'))
        .ok_or_else(|| anyhow::anyhow!("no script given after `--`"))?;
    Ok((
        words[..first].to_vec(),
        PathBuf::from(&words[first]),
        words[first + 1..].to_vec(),
    ))
}

fn main() -> ExitCode {
    match dispatch(Cli::parse().command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("crosswind: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, like `{:#}`, but without a cause
/// its parent's message already quotes (the unwinder's errors name their
/// source in their own text).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Runs one command to its exit code.
fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Unwind {
            input,
            format,
            no_async,
        } => {
            let (source, resolver) = input.split()?;
            output::unwind_command(&source, resolver, matches!(format, Format::Json), !no_async)
        }
        Command::Run(args) => run_scenarios(args),
        Command::Setup {
            nodes,
            all_lines,
            arch,
            check,
            no_apt,
        } => setup(nodes, all_lines, arch, check, no_apt),
        Command::Sample(args) => sample_script(args),
        Command::Sweep {
            node,
            arch,
            function,
            hit,
            tier,
            max_steps,
            out,
            format,
            script,
        } => split_command(&script).and_then(|(flags, script, args)| {
            sweep::sweep_command(sweep::SweepOptions {
                node,
                arch,
                target: function.parse()?,
                hit,
                tier,
                max_steps,
                out,
                json: matches!(format, Format::Json),
                flags,
                script,
                args,
            })
        }),
        Command::Snapshot {
            inspect: Some(file),
            ..
        } => crosswind_harness::report::inspect::inspect(&file)
            .and_then(|text| output::emit(&text))
            .map(|()| 0),
        Command::Snapshot {
            input,
            output,
            meta,
            inspect: None,
        } => {
            let (source, resolver) = input.split()?;
            let output = output.context("give -o FILE for the snapshot")?;
            output::snapshot_command(&source, resolver, &output, meta)
        }
        Command::Repro {
            script,
            expect,
            name,
            out,
            ..
        } if script.extension().is_some_and(|e| e == "cwsnap") => {
            let name = name.context("a snapshot becomes a fixture: give it --name")?;
            crosswind_harness::repro::snapshot_fixture(&script, &name, expect.as_deref(), &out)
        }
        Command::Repro {
            script,
            nodes,
            arch,
            name,
            family,
            out,
            expect: _,
        } => crosswind_harness::repro::repro_command(crosswind_harness::repro::ReproOptions {
            script,
            nodes,
            arch,
            name,
            family,
            out,
            jobs: default_jobs(),
        }),
        Command::Matrix { update, reports } => matrix(update, &reports),
        Command::Doctor => Ok(crosswind_harness::doctor::run()),
        Command::Images {
            command: ImagesCommand::Build { nodes, arch },
        } => images_build(nodes, arch),
        Command::NodePath { list: true, .. } => {
            println!("{}", provision::NODE_VERSIONS.join(","));
            Ok(0)
        }
        Command::NodePath { node, arch, .. } => {
            provision::NodePackage::ensure(&node, &arch).map(|p| {
                println!("{}", p.root.display());
                0
            })
        }
    }
}

/// `crosswind run`.
fn run_scenarios(a: RunArgs) -> anyhow::Result<u8> {
    run::run_command(run::RunOptions {
        nodes: a.nodes,
        arch: a.arch,
        backend: a.backend,
        jobs: a.jobs.unwrap_or_else(default_jobs),
        report: a.report,
        keep: a.keep,
        paths: if a.paths.is_empty() {
            vec![PathBuf::from("scenarios")]
        } else {
            a.paths
        },
        update_fixtures: a
            .update_fixtures
            .then(|| PathBuf::from("scenarios/fixtures")),
        list: a.list,
    })
}

/// `crosswind sample`.
fn sample_script(a: SampleArgs) -> anyhow::Result<u8> {
    let backend = check_live_target(&a.backend)?;
    let (flags, script, args) = split_command(&a.script)?;
    sample::sample_command(sample::SampleOptions {
        node: a.node,
        samples: a.samples,
        interval_ms: a.interval_ms,
        every_insn: a.every_insn,
        include_startup: a.include_startup,
        json: matches!(a.format, SampleFormat::Json),
        flamegraph: a.flamegraph,
        pprof: a.pprof,
        out: a.out,
        flags,
        script,
        args,
        backend,
        arch: a.arch.to_string(),
        no_async: a.no_async,
    })
}

/// `--jobs` when not given: the number of cores.
fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// `crosswind setup`: the versions and architectures asked for (the
/// default line, and both architectures, unless told otherwise).
fn setup(
    nodes: Vec<String>,
    all_lines: bool,
    arch: Option<TargetArch>,
    check: bool,
    no_apt: bool,
) -> anyhow::Result<u8> {
    let versions: Vec<String> = if all_lines {
        provision::NODE_VERSIONS
            .iter()
            .map(|v| v.to_string())
            .collect()
    } else if nodes.is_empty() {
        vec![provision::DEFAULT_NODE.to_string()]
    } else {
        nodes
    };
    let arches: Vec<&str> = match arch {
        Some(a) => vec![a.name()],
        None => TargetArch::ALL.iter().map(|a| a.name()).collect(),
    };
    provision::setup_command(&versions, &arches, check, no_apt)
}

/// `crosswind matrix`: the table printed, or put into a Markdown file.
fn matrix(update: Option<PathBuf>, reports: &[PathBuf]) -> anyhow::Result<u8> {
    crosswind_harness::report::matrix_table(reports).and_then(|table| match update {
        Some(md) => crosswind_harness::report::update_matrix(&md, &table).map(|()| 0),
        None => output::emit(&table).map(|()| 0),
    })
}

/// `crosswind images build`: every version asked for (default: all) for
/// each architecture asked for (default: both).
fn images_build(nodes: Vec<String>, arch: Option<TargetArch>) -> anyhow::Result<u8> {
    let versions: Vec<String> = if nodes.is_empty() {
        provision::NODE_VERSIONS
            .iter()
            .map(|v| v.to_string())
            .collect()
    } else {
        nodes
    };
    let arches: Vec<String> = match arch {
        Some(a) => vec![a.to_string()],
        None => TargetArch::ALL.iter().map(|a| a.to_string()).collect(),
    };
    versions
        .iter()
        .flat_map(|v| arches.iter().map(move |a| (v, a)))
        .try_for_each(|(v, a)| crosswind_harness::images::ensure(v, a, false).map(|_| ()))
        .map(|()| 0)
}
