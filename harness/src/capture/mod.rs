//! Capture: runs a JavaScript program in official Node.js (ARM64 under
//! `qemu-aarch64` on an x86 host, the host's own architecture natively),
//! collects the core it leaves when it aborts, and the V8 stack (the
//! oracle) it printed just before.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::backend::RunRequest;
use crate::provision::NodePackage;

pub mod verify;

/// The oracle helper programs `require('./oracle')`: `crash()` and
/// `record()`; the harness writes it next to every program it runs.
pub const ORACLE_JS: &str = include_str!("../../assets/oracle.js");

/// Markers the oracle helper prints around `new Error().stack`.
pub const ORACLE_BEGIN: &str = "CROSSWIND-ORACLE-BEGIN";
pub const ORACLE_END: &str = "CROSSWIND-ORACLE-END";

/// The result of running a program to its abort.
#[derive(Debug)]
pub struct CapturedCore {
    pub core: PathBuf,
    pub stderr: String,
    pub workdir: PathBuf,
}

/// Node flags a program asks for with a `// Flags: ...` line.
pub fn program_flags(source: &str) -> Vec<String> {
    source
        .lines()
        .take(10)
        .filter_map(|l| l.trim().strip_prefix("// Flags:"))
        .flat_map(|f| f.split_whitespace().map(str::to_string))
        .collect()
}

/// Runs `script` (inside `workdir`) with the backend for the package's
/// architecture (`backend::default_for`: native on a host of that
/// architecture, qemu-user otherwise), blocking, and returns the core.
pub fn run_to_core(
    node: &NodePackage,
    workdir: &Path,
    script: &str,
    flags: &[String],
    timeout: Duration,
) -> Result<CapturedCore> {
    let backend = crate::backend::default_for(&node.arch);
    if let Some(why) = backend.unavailable(&node.arch) {
        bail!("{why}");
    }
    let req = RunRequest {
        node: node.clone(),
        workdir: workdir.to_path_buf(),
        script: script.to_string(),
        flags: flags.to_vec(),
        timeout,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let out = rt.block_on(backend.run(&req))?;
    match out.core {
        Some(core) => Ok(CapturedCore {
            core,
            stderr: out.stderr,
            workdir: workdir.to_path_buf(),
        }),
        None => bail!(
            "{script}: no core written ({}); stderr:\n{}",
            out.status,
            out.stderr.lines().take(30).collect::<Vec<_>>().join("\n")
        ),
    }
}

/// One frame of V8's own stack trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OracleFrame {
    /// The name as printed, e.g. `Polygon.measure`, `new Foo`, `Array.map`.
    pub printed_name: String,
    /// Script name; empty for eval code; `None` for `<anonymous>` (builtins).
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub is_eval: bool,
    /// For a WebAssembly frame, its function index (V8 prints
    /// `URL:wasm-function[N]:0xOFFSET`; `line` is then 1 and `column` the
    /// module byte offset plus one, as V8's CallSite reports them).
    pub wasm_function: Option<u32>,
    /// An awaiting caller (`at async ...`).
    pub is_async: bool,
    /// A promise combinator's element index (`at async Promise.all
    /// (index 2)`).
    pub promise_index: Option<u32>,
}

impl OracleFrame {
    /// The bare function name as crosswind reports it: no `new `/`async `,
    /// no `[as alias]`, no receiver type. A WebAssembly function's name is
    /// taken whole (name-section names are free text), `wasm-function[N]`
    /// when V8 printed none.
    pub fn bare_name(&self) -> String {
        if let Some(index) = self.wasm_function {
            return if self.printed_name.is_empty() {
                format!("wasm-function[{index}]")
            } else {
                self.printed_name.clone()
            };
        }
        let n = bare_name(&self.printed_name);
        if self.is_eval && n == "eval" {
            String::new()
        } else {
            n
        }
    }
}

/// A function name without `new `/`async `, `[as alias]` and receiver type
/// (`Module._compile` -> `_compile`); symbol keys (`[a.b]`) stay whole,
/// unless a symbol-keyed receiver prefixes a method (`[Symbol.iterator].next`,
/// as V8 14 names generator builtins) -> `next`; `<anonymous>` is the empty
/// name.
pub fn bare_name(printed: &str) -> String {
    if printed.starts_with('[') {
        return match printed.find(']').map(|i| &printed[i + 1..]) {
            Some(rest) if rest.len() > 1 && rest.starts_with('.') => bare_name(&rest[1..]),
            _ => printed.to_string(),
        };
    }
    let mut n = printed;
    for p in ["new ", "async "] {
        n = n.strip_prefix(p).unwrap_or(n);
    }
    if let Some(i) = n.find(" [as ") {
        n = &n[..i];
    }
    let n = match n.rfind('.') {
        Some(i) if !n.ends_with('.') => &n[i + 1..],
        _ => n,
    };
    if n == "<anonymous>" {
        String::new()
    } else {
        n.to_string()
    }
}

/// The last oracle block of a program's stderr, markers included, as a
/// snapshot keeps it.
pub fn oracle_block(stderr: &str) -> Option<String> {
    let start = stderr.rfind(ORACLE_BEGIN)?;
    let end = start + stderr[start..].find(ORACLE_END)? + ORACLE_END.len();
    Some(stderr[start..end].to_string())
}

/// Parses the last oracle block from a program's stderr, awaiting callers
/// (`at async f (...)`, `at async Promise.all (index 2)`) included.
pub fn parse_oracle(stderr: &str) -> Option<Vec<OracleFrame>> {
    let start = stderr.rfind(ORACLE_BEGIN)? + ORACLE_BEGIN.len();
    let end = start + stderr[start..].find(ORACLE_END)?;
    let mut frames = Vec::new();
    for line in stderr[start..end].lines() {
        let Some(rest) = line.trim_start().strip_prefix("at ") else {
            continue;
        };
        let (is_async, rest) = match rest.strip_prefix("async ") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if let Some((name, index)) = rest
            .strip_suffix(')')
            .and_then(|r| r.split_once(" (index "))
        {
            frames.push(OracleFrame {
                printed_name: name.to_string(),
                file: None,
                line: None,
                column: None,
                is_eval: false,
                wasm_function: None,
                is_async,
                promise_index: index.parse().ok(),
            });
            continue;
        }
        let (name, loc) = match rest.strip_suffix(')').and_then(|r| r.split_once(" (")) {
            Some((n, l)) if !rest.starts_with("eval at") => (n.to_string(), l.to_string()),
            _ => (String::new(), rest.to_string()),
        };
        if let Some((file, index, offset)) = parse_wasm_location(&loc) {
            frames.push(OracleFrame {
                printed_name: name,
                file: Some(file),
                line: Some(1),
                column: offset.checked_add(1),
                is_eval: false,
                wasm_function: Some(index),
                is_async,
                promise_index: None,
            });
            continue;
        }
        let is_eval = loc.starts_with("eval at ");
        let pos_part = if is_eval {
            loc.rsplit(", ").next().unwrap_or("").to_string()
        } else {
            loc.clone()
        };
        let (file, line, column) = if pos_part == "<anonymous>" || pos_part == "native" {
            (None, None, None)
        } else {
            let mut it = pos_part.rsplitn(3, ':');
            let col = it.next().and_then(|c| c.parse().ok());
            let ln = it.next().and_then(|c| c.parse().ok());
            let file = it.next().unwrap_or("").to_string();
            let file = if is_eval && file == "<anonymous>" {
                String::new()
            } else {
                file
            };
            (Some(file), ln, col)
        };
        frames.push(OracleFrame {
            printed_name: name,
            file,
            line,
            column,
            is_eval,
            wasm_function: None,
            is_async,
            promise_index: None,
        });
    }
    Some(frames)
}

/// `URL:wasm-function[N]:0xOFFSET` as (URL, N, OFFSET)
/// (src/objects/call-site-info.cc, AppendWasmToString).
fn parse_wasm_location(loc: &str) -> Option<(String, u32, u32)> {
    let (file, rest) = loc.rsplit_once(":wasm-function[")?;
    let (index, rest) = rest.split_once(']')?;
    let offset = rest.strip_prefix(":0x")?;
    Some((
        file.to_string(),
        index.parse().ok()?,
        u32::from_str_radix(offset, 16).ok()?,
    ))
}

/// One frame of `gdb-multiarch`'s backtrace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GdbFrame {
    pub pc: u64,
    /// Function name without parameters; `None` for `??`.
    pub name: Option<String>,
}

/// Runs `gdb-multiarch -batch ... bt` on a core and parses the frames it
/// shows for the crashed thread.
pub fn gdb_backtrace(node: &Path, core: &Path, sysroot: &str) -> Result<Vec<GdbFrame>> {
    // gdb is given what crosswind reads (symbols and CFI): with separate
    // debug info (libc6-dbg on the host) it adds frames for tail calls
    // from DWARF call-site data, which are on no stack.
    let out = Command::new("gdb-multiarch")
        .args(["-nx", "-batch"])
        .args(["-ex", "set debug-file-directory /nonexistent"])
        .args(["-ex", "set debuginfod enabled off", "-ex"])
        .arg(format!("set sysroot {sysroot}"))
        .arg("-ex")
        .arg(format!("file {}", node.display()))
        .arg("-ex")
        .arg(format!("core-file {}", core.display()))
        .args(["-ex", "bt"])
        .stdin(Stdio::null())
        .output()
        .context("running gdb-multiarch (run `just setup`)")?;
    Ok(parse_gdb_bt(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `#N  0xADDR in NAME (ARGS) from LIB` lines (frame #0 may lack
/// the address when it equals the pc).
pub fn parse_gdb_bt(text: &str) -> Vec<GdbFrame> {
    let mut frames: Vec<GdbFrame> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let mut parts = rest.splitn(2, ' ');
        let Some(idx) = parts.next().and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        if idx != frames.len() {
            continue; // the "#0" echoed before `bt` when the core loads
        }
        let body = parts.next().unwrap_or("").trim_start();
        let Some(addr) = body
            .split_whitespace()
            .next()
            .and_then(|a| a.strip_prefix("0x"))
        else {
            continue;
        };
        let Ok(pc) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        let name = body
            .split_once(" in ")
            .map(|(_, n)| strip_params(n.split(" (").next().unwrap_or("").trim()).to_string())
            .filter(|n| n != "??");
        frames.push(GdbFrame { pc, name });
    }
    frames
}

/// Removes a trailing C++ parameter list: `node::Abort(v8::Foo const&)`
/// becomes `node::Abort`; `(anonymous namespace)` inside a name stays.
pub fn strip_params(name: &str) -> &str {
    if !name.ends_with(')') {
        return name;
    }
    let mut depth = 0i32;
    for (i, c) in name.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return &name[..i];
                }
            }
            _ => {}
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracle_forms() {
        let s = "x\nCROSSWIND-ORACLE-BEGIN\nError: e\n    at crash (/a/o.js:8:17)\n    at Function.executeUserEntryPoint [as runMain] (node:internal/modules/run_main:171:5)\n    at /a/x.js:4:29\n    at Array.map (<anonymous>)\n    at eval (eval at runEval (/a/e.js:6:10), <anonymous>:1:44)\n    at async main (/a/x.js:3:1)\n    at async Promise.allSettled (index 12)\n    at new Foo (/a/x.js:1:2)\nCROSSWIND-ORACLE-END\n";
        let f = parse_oracle(s).unwrap();
        assert_eq!(f.len(), 8);
        assert_eq!(f[1].bare_name(), "executeUserEntryPoint");
        assert_eq!(f[1].file.as_deref(), Some("node:internal/modules/run_main"));
        assert_eq!(f[2].bare_name(), "");
        assert_eq!((f[2].line, f[2].column), (Some(4), Some(29)));
        assert_eq!(f[3].file, None);
        assert_eq!(f[3].bare_name(), "map");
        assert!(f[4].is_eval);
        assert_eq!(f[4].file.as_deref(), Some(""));
        assert_eq!((f[4].line, f[4].column), (Some(1), Some(44)));
        assert!(f[5].is_async && !f[4].is_async);
        assert_eq!(f[5].bare_name(), "main");
        assert_eq!((f[5].line, f[5].column), (Some(3), Some(1)));
        assert!(f[6].is_async);
        assert_eq!(f[6].bare_name(), "allSettled");
        assert_eq!((f[6].file.as_deref(), f[6].promise_index), (None, Some(12)));
        assert_eq!(f[7].bare_name(), "Foo");
        assert!(!f[7].is_async);
    }

    #[test]
    fn gdb_lines() {
        let t = "#0  0x0000005500c40990 in ?? () from /x/libc.so.6\n[Current thread is 1]\n#0  0x0000005500c40990 in ?? () from /x/libc.so.6\n#1  0x0000005500bfa76c in raise () from /x/libc.so.6\n#3  0x0000000000fc98e0 in node::Abort(v8::FunctionCallbackInfo<v8::Value> const&) ()\n";
        let f = parse_gdb_bt(t);
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].name.as_deref(), Some("raise"));
        assert_eq!(
            strip_params("node::Abort(v8::FunctionCallbackInfo<v8::Value> const&)"),
            "node::Abort"
        );
        assert_eq!(
            strip_params("v8::(anonymous namespace)::Invoke(int)"),
            "v8::(anonymous namespace)::Invoke"
        );
    }
}
