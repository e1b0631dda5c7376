//! WebAssembly frames: from a wasm frame's instance to its module's
//! `wasm::NativeModule` (C++, which no `v8dbg_*` symbol describes), the
//! `WasmCode` whose instructions hold the pc, and from there the function
//! index, the tier and the source position; from the module's wire bytes
//! (parsed with `wasmparser`) each function body's offset and its
//! name-section name. Names and offsets come out as V8's stack traces
//! print them (src/objects/call-site-info.cc).

use std::collections::HashMap;
use std::rc::Rc;

use super::heap::Heap;
use super::positions::{self, PositionEntry, PositionTableEncoding};
use super::versions::WasmLayout;
use super::Tier;
use crate::address::FrameAddress;

/// A wasm frame as V8's stack trace shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmFrame {
    /// The name-section name, or `wasm-function[N]`.
    pub function: String,
    /// The function's index in its module.
    pub index: u32,
    /// The module's script name, `wasm://wasm/<hash>`.
    pub url: String,
    /// Module-relative byte offset of the call (or of the leaf's pc).
    pub offset: Option<u32>,
    /// The tier that compiled it (Liftoff or TurboFan).
    pub tier: Tier,
}

/// What crosswind keeps of a module: its script name, and per function
/// index the body offset and name.
#[derive(Debug)]
pub struct ModuleInfo {
    /// Where the wire bytes were and how long: a module freed and another
    /// allocated at the same `NativeModule` address is noticed.
    key: (u64, u64),
    bodies: Vec<Option<u32>>,
    names: HashMap<u32, String>,
}

/// Most WasmCode objects looked at for one pc (tree depth plus the list of
/// code not yet moved into the tree).
const MAX_CODE_VISITS: usize = 1 << 16;
/// Largest wire bytes read (V8's own limit is 1 GiB; modules that big are
/// not what a profile can parse per frame).
const MAX_WIRE_BYTES: u64 = 256 << 20;
/// Largest WasmCode instruction area believed.
const MAX_INSTRUCTIONS: u64 = 64 << 20;

/// libstdc++'s red-black tree (bits/stl_tree.h): the header follows the
/// (empty, padded) comparator; nodes hold color, parent, left, right, then
/// the value (here `std::pair<const Address, std::unique_ptr<WasmCode>>`).
mod rb_tree {
    pub const HEADER: u64 = 8;
    pub const ROOT: u64 = 8;
    pub const COUNT: u64 = 32;
    pub const LEFT: u64 = 16;
    pub const RIGHT: u64 = 24;
    pub const KEY: u64 = 32;
    pub const VALUE: u64 = 40;
    /// Bytes of a `std::map`: comparator (padded) plus header.
    pub const SIZE: u64 = 48;
}

/// One `WasmCode`: what the frame needs of it.
struct Code {
    start: u64,
    index: u32,
    tier: Tier,
    positions: Vec<PositionEntry>,
}

/// What naming a wasm frame needs: the heap, the line's C++ layout, and
/// the heap facts v8dbg gives.
pub struct WasmNamer<'a, 'h> {
    /// The heap.
    pub heap: &'a Heap<'h>,
    /// The line's wasm C++ layout.
    pub layout: &'a WasmLayout,
    /// The architecture (some C++ offsets differ).
    pub arch: crate::arch::ArchKind,
    /// How position tables are encoded.
    pub encoding: PositionTableEncoding,
    /// Instance type of WasmInstanceObject.
    pub instance_object_type: Option<u16>,
    /// Instance type of WasmModuleObject.
    pub module_object_type: Option<u16>,
    /// Instance type of Script.
    pub script_type: Option<u16>,
    /// Script's name field.
    pub script_name: i64,
    /// `Script::wasm_managed_native_module` (v8dbg), else the module
    /// object's `managed_native_module`.
    pub script_managed_native_module: Option<i64>,
}

impl WasmNamer<'_, '_> {
    /// Names the wasm frame whose frame pointer is `fp` and which is at
    /// `address`.
    pub fn describe(
        &self,
        fp: u64,
        address: FrameAddress,
        modules: &std::cell::RefCell<HashMap<u64, Rc<ModuleInfo>>>,
    ) -> Option<WasmFrame> {
        let heap = self.heap;
        let mem = heap.mem;
        let instance = mem
            .read_u64(fp.wrapping_add_signed(self.layout.frame_instance))
            .ok()?;
        let module_object = self.module_object(instance)?;
        let script = heap
            .field(module_object, self.layout.module_object_script)
            .filter(|&s| heap.has_type(s, self.script_type))?;
        let url = heap
            .field(script, self.script_name)
            .and_then(|n| heap.read_string(n))
            .unwrap_or_default();
        let managed = match self.script_managed_native_module {
            Some(off) => heap.field(script, off),
            None => heap.field(module_object, self.layout.module_object_native_module),
        }?;
        let native_module = self.native_module(managed)?;
        let code = self.code_at(native_module, address.pc())?;
        let info = self.module_info(native_module, modules);
        let in_function =
            positions::position_at(&code.positions, address.lookup_offset(code.start))
                .map(|p| p.script_offset())
                .filter(|&o| o >= 0);
        let body = info
            .as_ref()
            .and_then(|i| i.bodies.get(code.index as usize).copied().flatten());
        let offset = match (body, in_function) {
            (Some(b), Some(o)) => u32::try_from(i64::from(b) + o).ok(),
            _ => None,
        };
        let function = info
            .as_ref()
            .and_then(|i| i.names.get(&code.index).cloned())
            .unwrap_or_else(|| format!("wasm-function[{}]", code.index));
        Some(WasmFrame {
            function,
            index: code.index,
            url,
            offset,
            tier: code.tier,
        })
    }

    /// The WasmModuleObject behind the frame's instance slot: the slot
    /// holds the WasmInstanceObject (up to 12.3) or its trusted instance
    /// data (12.4 on), which points back at the WasmInstanceObject.
    fn module_object(&self, instance: u64) -> Option<u64> {
        let heap = self.heap;
        let object = if heap.has_type(instance, self.instance_object_type) {
            instance
        } else {
            heap.field(instance, self.layout.instance_data_instance_object?)
                .filter(|&o| heap.has_type(o, self.instance_object_type))?
        };
        heap.field(object, self.layout.instance_module_object)
            .filter(|&m| heap.has_type(m, self.module_object_type))
    }

    /// `Managed<NativeModule>`: a Foreign whose address is a
    /// ManagedPtrDestructor, whose `shared_ptr_ptr_` points at the
    /// `std::shared_ptr<NativeModule>` (src/objects/managed.h).
    fn native_module(&self, managed: u64) -> Option<u64> {
        let mem = self.heap.mem;
        let destructor = self.heap.field(managed, self.layout.foreign_address)?;
        let shared_ptr = mem
            .read_u64(destructor.wrapping_add(self.layout.managed_shared_ptr_ptr))
            .ok()?;
        mem.read_u64(shared_ptr).ok().filter(|&n| n != 0)
    }

    /// The WasmCode of `native_module` holding `pc`: NativeModule::Lookup
    /// searches `owned_code_` (a map by instruction start) after moving
    /// `new_owned_code_` into it; a stopped process may still have code in
    /// the latter.
    fn code_at(&self, native_module: u64, pc: u64) -> Option<Code> {
        let mem = self.heap.mem;
        let map =
            native_module.wrapping_add(self.layout.native_module_owned_code.for_arch(self.arch));
        let header = map + rb_tree::HEADER;
        let count = mem.read_u64(header + rb_tree::COUNT).ok()?;
        let mut node = mem.read_u64(header + rb_tree::ROOT).ok()?;
        let mut best = None;
        let mut visits = 0usize;
        while node != 0 && node != header && visits < MAX_CODE_VISITS.min(count as usize + 1) {
            visits += 1;
            let key = mem.read_u64(node + rb_tree::KEY).ok()?;
            if key <= pc {
                best = Some(node);
                node = mem.read_u64(node + rb_tree::RIGHT).ok()?;
            } else {
                node = mem.read_u64(node + rb_tree::LEFT).ok()?;
            }
        }
        if let Some(code) = best
            .and_then(|n| mem.read_u64(n + rb_tree::VALUE).ok())
            .and_then(|c| self.code_if_holds(c, native_module, pc))
        {
            return Some(code);
        }
        // new_owned_code_: a std::vector<std::unique_ptr<WasmCode>>.
        let vector = map + rb_tree::SIZE;
        let begin = mem.read_u64(vector).ok()?;
        let end = mem.read_u64(vector + 8).ok()?;
        let n = (end.checked_sub(begin)? / 8).min(MAX_CODE_VISITS as u64);
        (0..n)
            .filter_map(|i| mem.read_u64(begin + i * 8).ok())
            .find_map(|c| self.code_if_holds(c, native_module, pc))
    }

    /// Reads the WasmCode at `code` if it belongs to `native_module` and
    /// its instructions hold `pc`.
    fn code_if_holds(&self, code: u64, native_module: u64, pc: u64) -> Option<Code> {
        let mem = self.heap.mem;
        let l = self.layout;
        if mem.read_u64(code + l.code_native_module).ok()? != native_module {
            return None;
        }
        let start = mem.read_u64(code + l.code_instructions).ok()?;
        let size = u64::from(mem.read_u32(code + l.code_instructions_size).ok()?);
        if size > MAX_INSTRUCTIONS || pc < start || pc >= start + size {
            return None;
        }
        let index = mem.read_u32(code + l.code_index).ok()?;
        let flags = mem.read_u8(code + l.code_flags).ok()?;
        let tier = match (flags >> l.code_tier_shift) & l.code_tier_mask {
            t if t == l.tier_liftoff => Tier::Baseline,
            t if t == l.tier_turbofan => Tier::Turbofan,
            _ => Tier::Unknown,
        };
        // meta_data_: protected instructions, relocation info, then the
        // source positions.
        let meta = mem.read_u64(code + l.code_meta_data).ok()?;
        let protected = u64::from(
            mem.read_u32(code + l.code_protected_instructions_size)
                .ok()?,
        );
        let reloc = u64::from(mem.read_u32(code + l.code_reloc_info_size).ok()?);
        let len = mem.read_u32(code + l.code_source_positions_size).ok()? as usize;
        let positions = if len == 0 || len > (16 << 20) {
            Vec::new()
        } else {
            mem.read_vec(meta + protected + reloc, len)
                .map(|b| positions::decode_position_table(&b, self.encoding))
                .unwrap_or_default()
        };
        Some(Code {
            start,
            index,
            tier,
            positions,
        })
    }

    /// The module's function bodies and names, from its wire bytes
    /// (`NativeModule::wire_bytes_`, a shared `OwnedVector<const uint8_t>`:
    /// data, then length), cached per NativeModule.
    fn module_info(
        &self,
        native_module: u64,
        modules: &std::cell::RefCell<HashMap<u64, Rc<ModuleInfo>>>,
    ) -> Option<Rc<ModuleInfo>> {
        let mem = self.heap.mem;
        let owned = mem
            .read_u64(native_module + self.layout.native_module_wire_bytes)
            .ok()?;
        let data = mem.read_u64(owned).ok()?;
        let len = mem.read_u64(owned + 8).ok()?;
        let key = (data, len);
        if let Some(info) = modules.borrow().get(&native_module) {
            if info.key == key {
                return Some(info.clone());
            }
        }
        if len > MAX_WIRE_BYTES {
            return None;
        }
        let bytes = mem.read_vec(data, len as usize).ok()?;
        let (bodies, names) = parse_module(&bytes);
        let info = Rc::new(ModuleInfo { key, bodies, names });
        modules.borrow_mut().insert(native_module, info.clone());
        Some(info)
    }
}

/// Per function index (imports first, as wasm numbers them), the offset
/// of each defined function's body in the module, and the name section's
/// function names. A malformed module gives what was read before the
/// error.
pub fn parse_module(bytes: &[u8]) -> (Vec<Option<u32>>, HashMap<u32, String>) {
    use wasmparser::{KnownCustom, Name, Parser, Payload, TypeRef};
    let mut bodies = Vec::new();
    let mut names = HashMap::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        match payload {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let Ok(import) = import else { break };
                    if matches!(import.ty, TypeRef::Func(_) | TypeRef::FuncExact(_)) {
                        bodies.push(None);
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                bodies.push(u32::try_from(body.range().start).ok());
            }
            Payload::CustomSection(section) => {
                if let KnownCustom::Name(reader) = section.as_known() {
                    for subsection in reader {
                        let Ok(Name::Function(map)) = subsection else {
                            continue;
                        };
                        for naming in map.into_iter().flatten() {
                            names.insert(naming.index, naming.name.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (bodies, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(id: u8, bytes: Vec<u8>) -> Vec<u8> {
        let mut out = vec![id, bytes.len() as u8];
        out.extend(bytes);
        out
    }

    fn name(s: &str) -> Vec<u8> {
        let mut out = vec![s.len() as u8];
        out.extend(s.as_bytes());
        out
    }

    fn body(ops: &[u8]) -> Vec<u8> {
        let mut out = vec![ops.len() as u8 + 1, 0];
        out.extend(ops);
        out
    }

    /// The module the `wasm` scenarios build (their `wasm.js`): two
    /// imports, two functions, a memory, a name for the second function.
    fn module() -> Vec<u8> {
        let mut m = vec![0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0];
        m.extend(section(1, vec![1, 0x60, 1, 0x7f, 1, 0x7f]));
        let mut imports = vec![2];
        for import in ["middle", "leaf"] {
            imports.extend(name("env"));
            imports.extend(name(import));
            imports.extend([0, 0]);
        }
        m.extend(section(2, imports));
        m.extend(section(3, vec![2, 0, 0]));
        m.extend(section(5, vec![1, 0, 1]));
        let mut exports = vec![2];
        for (export, index) in [("outer", 2), ("inner", 3)] {
            exports.extend(name(export));
            exports.extend([0, index]);
        }
        m.extend(section(7, exports));
        let mut code = vec![2];
        code.extend(body(&[
            0x20, 0, 0x41, 1, 0x6a, 0x10, 0, 0x41, 1, 0x6a, 0x0b,
        ]));
        code.extend(body(&[
            0x20, 0, 0x41, 2, 0x6c, 0x20, 0, 0x28, 2, 0, 0x6a, 0x10, 1, 0x41, 3, 0x6a, 0x0b,
        ]));
        m.extend(section(10, code));
        let mut names = name("name");
        let mut function_names = vec![1, 3];
        function_names.extend(name("inner"));
        names.extend(section(1, function_names));
        m.extend(section(0, names));
        m
    }

    #[test]
    fn bodies_are_numbered_after_the_imports() {
        let (bodies, names) = parse_module(&module());
        // V8 printed wasm-function[2]:0x52 and [3]:0x65 for the calls, 6
        // and 12 bytes into their bodies.
        assert_eq!(bodies, vec![None, None, Some(0x52 - 6), Some(0x65 - 12)]);
        assert_eq!(names.get(&3).map(String::as_str), Some("inner"));
        assert_eq!(names.get(&2), None);
    }

    #[test]
    fn malformed_modules_give_what_was_read() {
        let mut m = module();
        m.truncate(60);
        let (bodies, _) = parse_module(&m);
        assert!(bodies.len() <= 4);
        assert!(parse_module(b"not wasm").0.is_empty());
    }
}
