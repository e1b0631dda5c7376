//! The GDB remote client against QEMU's real gdbstub: ARM64 Node.js runs a
//! hot loop under `qemu-aarch64 -g PORT`; the test reads the stop state,
//! interrupts it with SIGUSR2 (the way the sampler does) and reads
//! registers and stack memory at each stop.

use std::time::Duration;

use crosswind_harness::gdb_remote::{GdbClient, Stop};
use crosswind_harness::provision::{NodePackage, AARCH64_SYSROOT, DEFAULT_NODE};

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
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("port").port();
    drop(listener);
    let child = std::process::Command::new("qemu-aarch64")
        .args(["-g", &port.to_string(), "-L", AARCH64_SYSROOT])
        .arg(node.node())
        .args(["-e", "let x = 0; for (;;) { x = (x + 1) | 0; }"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("qemu-aarch64 (run `just setup`)");
    let qemu = Reap(child);
    let addr = format!("127.0.0.1:{port}").parse().expect("address");
    let mut c = GdbClient::connect(addr, Duration::from_secs(10)).expect("connect to the gdbstub");
    assert!(c.supported().expect("qSupported").contains("PacketSize"));
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
        let status = std::process::Command::new("kill")
            .args(["-USR2", &qemu.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
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
