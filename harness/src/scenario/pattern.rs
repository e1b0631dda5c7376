//! Frame patterns: the small language of `expect.frames`, `expect.absent`,
//! `expect.seen`, `expect.any_of` and `capture.start_at`
//! (`KIND[: NAME][ @ FILE[:LINE[:COL]]]`), and matching a sequence of
//! patterns against a stack.

use crosswind_unwinder::{Frame, FrameKind};

/// The NAME that matches only frames of anonymous functions and
/// top-level code.
pub const ANONYMOUS: &str = "(anonymous)";

/// One frame pattern: `any*`, `any`, or `KIND[: NAME][ @ FILE[:LINE[:COL]]]`
/// where KIND is `native`, `js`, `builtin`, `stub`, `wasm`, `unknown` or
/// `any`, or several joined by `|`; a `*` after KIND matches zero or more
/// consecutive frames (`js*: fib @ main.js:1`, `native|builtin|stub*`).
/// NAME may use `*` as a wildcard; `(anonymous)` matches only anonymous
/// functions and top-level code. NAME is matched against the
/// symbol of native frames, and the function or `Builtins_*` symbol of V8
/// frames; FILE against the end of the script or module name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    AnyRun,
    Frame {
        /// Kinds allowed (`native|builtin`); empty for `any`.
        kinds: Vec<FrameKind>,
        /// `KIND*`: zero or more consecutive frames like this.
        repeat: bool,
        /// `[TIER]`: the tier the frame must report.
        tier: Option<crosswind_unwinder::v8::Tier>,
        name: Option<String>,
        file: Option<String>,
        line: Option<u32>,
        column: Option<u32>,
    },
}

impl Pattern {
    /// Parses a pattern.
    pub fn parse(text: &str) -> std::result::Result<Pattern, String> {
        let t = text.trim();
        if t == "any*" {
            return Ok(Pattern::AnyRun);
        }
        // A trailing `[TIER]` asks for the tier the frame reports.
        // (after a space: `wasm-function[2]` is a name).
        let (t, tier) = match t
            .strip_suffix(']')
            .and_then(|r| r.rsplit_once('['))
            .filter(|(rest, _)| rest.ends_with(' '))
        {
            Some((rest, name)) => {
                let tier: crosswind_unwinder::v8::Tier =
                    serde_json::from_value(serde_json::Value::String(name.trim().to_string()))
                        .map_err(|_| {
                            format!(
                                "'{text}': unknown tier '{name}' (interpreted, baseline, maglev, turbofan, builtin)"
                            )
                        })?;
                (rest.trim(), Some(tier))
            }
            None => (t, None),
        };
        let (head, loc) = match t.split_once(" @ ") {
            Some((h, l)) => (h.trim(), Some(l.trim())),
            None => (t, None),
        };
        let (kind_text, name) = match head.split_once(':') {
            Some((k, n)) => (
                k.trim(),
                Some(n.trim().to_string()).filter(|n| !n.is_empty()),
            ),
            None => (head, None),
        };
        let (kind_text, repeat) = match kind_text.strip_suffix('*') {
            Some(k) => (k, true),
            None => (kind_text, false),
        };
        let mut kinds = Vec::new();
        for k in kind_text.split('|') {
            kinds.push(match k.trim() {
                "any" => continue,
                "native" => FrameKind::Native,
                "js" => FrameKind::Js,
                "builtin" => FrameKind::Builtin,
                "stub" => FrameKind::Stub,
                "wasm" => FrameKind::Wasm,
                "unknown" => FrameKind::Unknown,
                other => {
                    return Err(format!(
                        "'{text}': unknown frame kind '{other}' (expected any, native, js, builtin, stub, wasm or unknown, joined by | and optionally followed by *)"
                    ))
                }
            });
        }
        if kind_text.split('|').any(|k| k.trim() == "any") {
            kinds.clear();
        }
        let (mut file, mut line, mut column) = (None, None, None);
        if let Some(loc) = loc {
            // FILE may start with a scheme (`node:internal/timers`,
            // `file:///app/x.mjs`): only trailing numbers are LINE and
            // COLUMN.
            let mut rest = loc;
            let mut numbers = Vec::new();
            while numbers.len() < 2 {
                match rest.rsplit_once(':') {
                    Some((head, tail)) if tail.parse::<u32>().is_ok() => {
                        numbers.insert(0, tail.parse::<u32>().ok());
                        rest = head;
                    }
                    _ => break,
                }
            }
            let unschemed = ["node:", "file:", "wasm:"]
                .iter()
                .find_map(|scheme| rest.strip_prefix(scheme))
                .unwrap_or(rest);
            if rest.is_empty() || unschemed.contains(':') {
                return Err(format!("'{text}': location must be FILE[:LINE[:COLUMN]]"));
            }
            file = Some(rest.to_string());
            line = numbers.first().copied().flatten();
            column = numbers.get(1).copied().flatten();
        }
        Ok(Pattern::Frame {
            kinds,
            repeat,
            tier,
            name,
            file,
            line,
            column,
        })
    }

    /// Whether one frame matches (never true for `any*`).
    pub fn matches(&self, f: &Frame) -> bool {
        let Pattern::Frame {
            kinds,
            name,
            file,
            line,
            column,
            tier,
            ..
        } = self
        else {
            return false;
        };
        if !kinds.is_empty() && !kinds.contains(&f.kind) {
            return false;
        }
        if tier.is_some() && *tier != f.tier {
            return false;
        }
        if name.as_deref() == Some(ANONYMOUS) {
            if f.function.as_deref() != Some("") {
                return false;
            }
        } else if let Some(n) = name {
            // Natives by symbol; V8 frames by function or by their
            // `Builtins_*` symbol.
            let by_function =
                f.kind != FrameKind::Native && f.function.as_deref().is_some_and(|s| glob(n, s));
            let by_symbol = f.symbol.as_deref().is_some_and(|s| glob(n, s));
            if !(by_function || by_symbol) {
                return false;
            }
        }
        if let Some(want) = file {
            let have = f.file.as_deref().or(f.module.as_deref()).unwrap_or("");
            // `*` stands for any text (`wasm://wasm/*`: the hash of the
            // module's bytes).
            if !(glob(want, have) || have.ends_with(&format!("/{want}"))) {
                return false;
            }
        }
        if line.is_some() && *line != f.line {
            return false;
        }
        if column.is_some() && *column != f.column {
            return false;
        }
        true
    }
}

/// `*`-wildcard match.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

impl Pattern {
    /// The pattern as it applies to V8's own stack, which has no native
    /// frames: a pattern for native frames only may match none.
    pub fn natives_optional(&self) -> Pattern {
        match self {
            Pattern::Frame { kinds, .. } if kinds.as_slice() == [FrameKind::Native] => {
                let mut p = self.clone();
                if let Pattern::Frame { repeat, .. } = &mut p {
                    *repeat = true;
                }
                p
            }
            other => other.clone(),
        }
    }
}

/// Whether `frames` match `patterns` from first to last frame.
pub fn sequence_matches(patterns: &[Pattern], frames: &[Frame]) -> bool {
    // reach[j]: the first i patterns can consume exactly the first j frames.
    let mut reach = vec![false; frames.len() + 1];
    reach[0] = true;
    for p in patterns {
        let mut next = vec![false; frames.len() + 1];
        match p {
            Pattern::AnyRun => {
                let mut any = false;
                for j in 0..=frames.len() {
                    any |= reach[j];
                    next[j] = any;
                }
            }
            Pattern::Frame { repeat: true, .. } => {
                for j in 0..=frames.len() {
                    next[j] = reach[j] || (j > 0 && next[j - 1] && p.matches(&frames[j - 1]));
                }
            }
            Pattern::Frame { .. } => {
                for j in 0..frames.len() {
                    if reach[j] && p.matches(&frames[j]) {
                        next[j + 1] = true;
                    }
                }
            }
        }
        reach = next;
    }
    reach[frames.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crosswind_unwinder::Method;

    fn js(name: &str, file: &str, line: u32) -> Frame {
        let mut f = Frame::new(FrameKind::Js, 0, Method::V8);
        f.function = Some(name.into());
        f.file = Some(file.into());
        f.line = Some(line);
        f.column = Some(1);
        f
    }

    fn native(sym: &str) -> Frame {
        let mut f = Frame::new(FrameKind::Native, 0, Method::Cfi);
        f.symbol = Some(sym.into());
        f.module = Some("addon.node".into());
        f
    }

    #[test]
    fn patterns_parse_and_match() {
        let p = Pattern::parse("js: leaf @ main.js:3").unwrap();
        assert!(p.matches(&js("leaf", "/tmp/x/main.js", 3)));
        assert!(!p.matches(&js("leaf", "/tmp/x/main.js", 4)));
        assert!(!p.matches(&js("leaf", "/tmp/x/notmain.js", 3)));
        assert!(Pattern::parse("native: my_*")
            .unwrap()
            .matches(&native("my_addon_call")));
        assert!(Pattern::parse("bogus: x").is_err());
        assert!(Pattern::parse("js: f @ a.js:x").is_err());
        let p = Pattern::parse("js: listOnTimeout @ node:internal/timers:581:17").unwrap();
        let mut f = js("listOnTimeout", "node:internal/timers", 581);
        f.column = Some(17);
        assert!(p.matches(&f));
        assert!(Pattern::parse("js @ node:internal/timers").is_ok());
        let mut hot = js("hot", "/a/main.js", 3);
        hot.tier = Some(crosswind_unwinder::v8::Tier::Turbofan);
        assert!(Pattern::parse("js: hot @ main.js:3 [turbofan]")
            .unwrap()
            .matches(&hot));
        assert!(!Pattern::parse("js: hot [interpreted]")
            .unwrap()
            .matches(&hot));
        assert!(Pattern::parse("js: hot [fast]").is_err());
    }

    #[test]
    fn anchored_sequences() {
        let frames = vec![
            native("abort"),
            native("boom"),
            js("leaf", "main.js", 3),
            js("", "main.js", 9),
        ];
        let ps = |v: &[&str]| {
            v.iter()
                .map(|p| Pattern::parse(p).unwrap())
                .collect::<Vec<_>>()
        };
        assert!(sequence_matches(
            &ps(&["any*", "native: boom", "js: leaf", "any*"]),
            &frames
        ));
        assert!(!sequence_matches(
            &ps(&["native: boom", "js: leaf", "any*"]),
            &frames
        ));
        assert!(sequence_matches(
            &ps(&["any", "native: boom", "any", "js"]),
            &frames
        ));
        assert!(!sequence_matches(
            &ps(&["any*", "js: leaf", "native: boom", "any*"]),
            &frames
        ));
        // Repeated and alternative kinds.
        assert!(sequence_matches(
            &ps(&["native|builtin*", "js*: leaf", "js @ main.js:9"]),
            &frames
        ));
        assert!(sequence_matches(
            &ps(&["native*", "js*: * @ main.js"]),
            &frames
        ));
        assert!(!sequence_matches(&ps(&["native*", "js"]), &frames[..2]));
        assert!(sequence_matches(&ps(&["builtin*", "any*"]), &[]));
        assert!(Pattern::parse("jsx*: f").is_err());
    }
}
