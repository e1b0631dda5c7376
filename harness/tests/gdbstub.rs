//! The GDB remote client against QEMU's real gdbstub: ARM64 Node.js runs a
//! hot loop under `qemu-aarch64 -g PORT`; the test reads the stop state,
//! interrupts it with SIGUSR2 (the way the sampler does) and reads
//! registers and stack memory at each stop.

use std::time::Duration;

use crosswind_harness::live::gdb_remote::{GdbClient, Stop};
use crosswind_harness::provision::{NodePackage, AARCH64_SYSROOT, DEFAULT_NODE, QEMU_CPU_ARGS};

/// Kills the QEMU process when the test ends, however it ends.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn samples_through_the_gdbstub() {
    let node =
        NodePackage::ensure(DEFAULT_NODE, "arm64").expect("Node.js package (run `just setup`)");
    // The free port is handed to QEMU after it is found, so a parallel
    // test can take it in between: start again on another port then, as
    // the sampler does.
    let mut attempts = 0;
    let (qemu, mut c, features) = loop {
        attempts += 1;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("port").port();
        drop(listener);
        let child = std::process::Command::new("qemu-aarch64")
            .args(QEMU_CPU_ARGS)
            .args(["-g", &port.to_string(), "-L", AARCH64_SYSROOT])
            .arg(node.node())
            .args(["-e", "let x = 0; for (;;) { x = (x + 1) | 0; }"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("qemu-aarch64 (run `just setup`)");
        let qemu = Reap(child);
        let addr = format!("127.0.0.1:{port}").parse().expect("address");
        let handshake = GdbClient::connect(addr, Duration::from_secs(10))
            .and_then(|mut c| c.supported().map(|features| (c, features)));
        match handshake {
            Ok((c, features)) => break (qemu, c, features),
            Err(e) if attempts < 3 => eprintln!("port {port}: {e}; starting again"),
            Err(e) => panic!("connecting to the gdbstub: {e}"),
        }
    };
    assert!(features.contains("PacketSize"));
    c.no_ack_mode().expect("no-ack mode");
    assert!(matches!(
        c.halt_reason().expect("?"),
        Stop::Signal { signal: 5, .. }
    ));
    // aarch64 `g`: x0..x30, sp, pc (8 bytes each), cpsr (4).
    let regs = c.registers().expect("g");
    assert_eq!(regs.len(), 33 * 8 + 4);
    assert_eq!(c.threads().expect("threads").len(), 1);
    c.resume().expect("continue");
    std::thread::sleep(Duration::from_millis(2500));
    for _ in 0..3 {
        let pid = libc::pid_t::try_from(qemu.0.id()).expect("a pid");
        // SAFETY: kill(2) takes plain integers and touches no memory.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGUSR2) },
            0,
            "SIGUSR2 to QEMU"
        );
        let stop = c
            .wait_stop(Duration::from_secs(10))
            .expect("a stop after SIGUSR2");
        assert!(
            matches!(stop, Stop::Signal { signal: 0x1f, .. }),
            "{stop:?}"
        );
        let regs = c.registers().expect("g");
        let word =
            |i: usize| u64::from_le_bytes(regs[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let (sp, pc) = (word(31), word(32));
        assert!(sp != 0 && pc != 0);
        let stack = c.memory(sp, 256).expect("stack memory");
        assert_eq!(stack.len(), 256);
        c.resume().expect("continue");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A script in a fresh directory, for the sampler.
fn script(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir()
        .join("crosswind-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("main.js");
    std::fs::write(&path, text).expect("script");
    path
}

fn launch(path: &std::path::Path) -> crosswind_harness::live::LiveGuest {
    let node =
        NodePackage::ensure(DEFAULT_NODE, "arm64").expect("Node.js package (run `just setup`)");
    crosswind_harness::live::LiveGuest::launch(&crosswind_harness::live::Launch {
        node,
        flags: Vec::new(),
        script: path.to_path_buf(),
        args: Vec::new(),
        cwd: None,
        every_insn: false,
        log: Some(path.with_extension("log")),
        search_dirs: Vec::new(),
        backend: Default::default(),
    })
    .expect("qemu-aarch64 under the gdbstub (run `just setup`)")
}

fn plan() -> crosswind_harness::live::sample::SamplingPlan {
    crosswind_harness::live::sample::SamplingPlan {
        count: 100_000,
        interval_ms: 10,
        start_when: None,
        ready: None,
        min_stop: Duration::ZERO,
        max_warmup: 0,
        deadline: Some(std::time::Instant::now() + Duration::from_secs(120)),
        progress: false,
    }
}

#[test]
fn sampling_ends_cleanly_when_the_script_exits() {
    let path = script(
        "sample-exit",
        "const end = Date.now() + 1500; while (Date.now() < end) {}\n",
    );
    let mut guest = launch(&path);
    let run =
        crosswind_harness::live::sample::sample_guest(&mut guest, &plan(), &mut |_, _, _| Ok(()))
            .expect("sampling");
    assert!(!run.samples.is_empty(), "no samples before the exit");
    assert!(!run.guest_lost);
    let why = run.ended_early.expect("a reason for ending early");
    assert!(why.contains("exited"), "{why}");
}

#[test]
fn sampling_ends_cleanly_when_qemu_dies() {
    let path = script(
        "sample-kill",
        "const end = Date.now() + 600000; while (Date.now() < end) {}\n",
    );
    let mut guest = launch(&path);
    let pid = guest.pid().expect("a local QEMU");
    let mut taken = 0usize;
    let run = crosswind_harness::live::sample::sample_guest(&mut guest, &plan(), &mut |_, _, _| {
        taken += 1;
        if taken == 20 {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: kill(2) takes plain integers and touches no memory.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        Ok(())
    })
    .expect("sampling ends with what it captured, not an error");
    assert!(run.guest_lost, "{:?}", run.ended_early);
    assert!(run.samples.len() >= 20);
    assert!(run.ended_early.is_some());
}

/// The chain V8 prints for `leaf`'s callers: `name@line:column`, innermost
/// first, from the `Error.stack` lines the script wrote to its log.
fn v8_callers(log: &str, file: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("at "))
        .filter(|l| l.contains(file))
        .map(|l| {
            let (name, place) = match l.split_once(" (") {
                Some((name, place)) => (name, place.trim_end_matches(')')),
                None => ("", l),
            };
            let mut parts = place.rsplitn(3, ':');
            let column = parts.next().unwrap_or("");
            let line = parts.next().unwrap_or("");
            let name = if name == "Object.<anonymous>" {
                ""
            } else {
                name
            };
            format!("{name}@{line}:{column}")
        })
        .collect()
}

/// Sampling as fast as stops can be made: memory comes from QEMU's own
/// address space, the call chain shows at V8's positions, and the pprof
/// profile written from the samples decodes back to them.
#[test]
fn fast_sampling_reads_qemu_memory_and_writes_pprof() {
    let path = script(
        "sample-fast",
        "'use strict';\n\
         let printed = false;\n\
         function leaf(n) { let s = 0; for (let i = 0; i < n; i++) s += Math.sqrt(i); if (!printed) { printed = true; Error.stackTraceLimit = Infinity; console.error(new Error().stack); } return s; }\n\
         function middle(n) { return leaf(n) + 1; }\n\
         function outer(n) { return middle(n) * 2; }\n\
         const end = Date.now() + 600000;\n\
         let total = 0;\n\
         while (Date.now() < end) total += outer(1000);\n",
    );
    let mut guest = launch(&path);
    assert!(
        guest.process().reads_directly(),
        "QEMU's memory is not read directly"
    );
    // Samples count from the first stop in leaf once V8's stack is in the
    // log (the first console.error loads much of Node.js under QEMU).
    let log = path.with_extension("log");
    let plan = crosswind_harness::live::sample::SamplingPlan {
        ready: Some(Box::new(move || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("at leaf"))
        })),
        count: 1500,
        interval_ms: 0,
        start_when: Some(Box::new(|frames: &[crosswind_unwinder::Frame]| {
            frames.iter().any(|f| f.function.as_deref() == Some("leaf"))
        })),
        max_warmup: 20_000,
        ..plan()
    };
    let run =
        crosswind_harness::live::sample::sample_guest(&mut guest, &plan, &mut |_, _, _| Ok(()))
            .expect("sampling");
    drop(guest);
    assert_eq!(run.samples.len(), 1500, "{:?}", run.ended_early);
    assert!(run.costs.direct_memory);
    let log = std::fs::read_to_string(path.with_extension("log")).expect("the script's log");
    let truth = v8_callers(&log, "main.js");
    assert_eq!(truth.len(), 4, "V8's stack: {log}");
    let chains: Vec<Vec<String>> = run
        .samples
        .iter()
        .map(|s| {
            s.frames
                .iter()
                .filter(|f| f.kind == crosswind_unwinder::FrameKind::Js)
                .filter(|f| f.file.as_deref().is_some_and(|p| p.ends_with("main.js")))
                .map(|f| {
                    format!(
                        "{}@{}:{}",
                        f.function.as_deref().unwrap_or(""),
                        f.line.unwrap_or(0),
                        f.column.unwrap_or(0)
                    )
                })
                .collect()
        })
        .collect();
    // Samples in leaf: its callers as V8 printed them.
    let in_leaf: Vec<_> = chains
        .iter()
        .filter(|c| c.first().is_some_and(|f| f.starts_with("leaf@")))
        .collect();
    assert!(in_leaf.len() >= 50, "{} samples in leaf", in_leaf.len());
    for c in &in_leaf {
        assert_eq!(c[1..], truth[1..], "callers of leaf");
    }
    let complete = run
        .samples
        .iter()
        .filter(|s| {
            s.frames
                .iter()
                .all(|f| f.kind != crosswind_unwinder::FrameKind::Unknown)
        })
        .count();
    assert!(
        complete * 1000 >= run.samples.len() * 995,
        "{complete} complete"
    );

    let pprof = path.with_extension("pb.gz");
    let stacks = run.samples.iter().map(|s| (s.tid, s.frames.as_slice()));
    crosswind_harness::live::pprof::write(stacks, 0, run.elapsed_s, &pprof).expect("pprof");
    let p = crosswind_harness::live::pprof::read(&pprof).expect("decoding the pprof");
    assert_eq!(p.sample.len(), run.samples.len());
    let name_of = |loc: u64| {
        let l = &p.location[loc as usize - 1];
        let f = &p.function[l.line[0].function_id as usize - 1];
        format!(
            "{}@{}:{}",
            p.string_table[f.name as usize], l.line[0].line, l.line[0].column
        )
    };
    for (s, ps) in run.samples.iter().zip(&p.sample) {
        assert_eq!(ps.location_id.len(), s.frames.len());
        for (f, &loc) in s.frames.iter().zip(&ps.location_id) {
            if f.kind == crosswind_unwinder::FrameKind::Js {
                let want = format!(
                    "{}@{}:{}",
                    f.function
                        .as_deref()
                        .filter(|n| !n.is_empty())
                        .unwrap_or("(anonymous)"),
                    f.line.unwrap_or(0),
                    f.column.unwrap_or(0)
                );
                assert_eq!(name_of(loc), want);
            }
        }
    }
}
