//! Frame description: what kind of V8 frame a frame pointer heads (stub,
//! builtin, interpreted, baseline, optimized, wasm) and the JavaScript
//! frames it shows, named as V8's stack traces name them.

use super::code::CodeObject;
use super::heap::Heap;
use super::positions;
use super::{properties, wasm, JsFrame, Tier, V8Frame, V8FrameInfo, V8Runtime};
use crate::address::FrameAddress;
use crate::memory::Memory;

/// The frame types of wasm code itself (src/execution/frames.h): Liftoff
/// and TurboFan functions, and wasm code that called out to C.
const WASM_CODE_FRAMES: &[&str] = &["WasmFrame", "WasmExitFrame"];

/// Slot of a BuiltinExitFrame's target JSFunction above fp
/// (frame-constants.h `BuiltinExitFrameConstants::kTargetOffset`: the
/// caller's fp and pc, then new.target, then the target).
const BUILTIN_EXIT_TARGET_SLOT: i64 = 3;

impl V8Runtime {
    /// The JSFunction of the JavaScript frame whose frame pointer is `fp`.
    pub fn frame_function(&self, fp: u64, mem: &dyn Memory) -> Option<u64> {
        let heap = self.heap(mem);
        let f = mem
            .read_u64(fp.wrapping_add_signed(self.layout.fp_function))
            .ok()?;
        heap.is_js_function(f).then_some(f)
    }

    /// Describes a leaf whose frame is not built (prologue or epilogue):
    /// the function comes from the JSFunction register, not the frame.
    pub fn describe_unbuilt(&self, pc: u64, function: Option<u64>, mem: &dyn Memory) -> V8Frame {
        let heap = self.heap(mem);
        let function = function.filter(|&f| heap.is_js_function(f));
        let builtin = self.builtin_at(pc).map(str::to_string);
        // Past the teardown of its frame (the trampoline's epilogue) the
        // function is gone from the JSFunction register: the leaf is the
        // trampoline itself.
        let interpreter_with_function = self.is_interpreter(pc) && function.is_some();
        if builtin.is_none() && function.is_none() {
            if let Some(code) = self.scan_for_code(&heap, pc) {
                // Compiled regular expressions run without a JSFunction.
                if Some(code.kind) == self.layout.code_kind_regexp {
                    return V8Frame::Stub {
                        name: "RegExp".into(),
                        symbol: None,
                    };
                }
                if let Some(frames) = self.optimized_frames_by_code(&heap, &code, pc) {
                    return V8Frame::Js(frames);
                }
            }
        }
        if interpreter_with_function || builtin.is_none() {
            let mut frames = match function {
                Some(f) if !self.is_interpreter(pc) => {
                    // No frame pointer of its own: baseline positions,
                    // which need the frame's bytecode slot, stay unknown.
                    self.compiled_frames(&heap, FrameAddress::Instruction(pc), 0, f)
                }
                _ => {
                    let tier = if self.is_interpreter(pc) {
                        Tier::Interpreted
                    } else {
                        Tier::Unknown
                    };
                    vec![self.blank_frame(&heap, function, tier)]
                }
            };
            // In a prologue or epilogue the code has no position of its
            // own; V8 reports function entry (bytecode offset -1) as the
            // first position of the bytecode, and so does crosswind.
            if let (Some(f), [frame]) = (function, frames.as_mut_slice()) {
                if frame.line.is_none() {
                    self.fill_entry_position(&heap, frame, f);
                }
            }
            return V8Frame::Js(frames);
        }
        V8Frame::Builtin {
            symbol: builtin.unwrap_or_default(),
            function: function
                .filter(|&f| self.is_native_function(&heap, f))
                .map(|f| self.function_info(&heap, f).name.clone())
                .filter(|n| !n.is_empty()),
        }
    }

    /// Describes the V8 frame whose frame pointer is `fp` and which is at
    /// `address`.
    pub fn describe(&self, address: FrameAddress, fp: u64, mem: &dyn Memory) -> V8FrameInfo {
        let pc = address.pc();
        let heap = self.heap(mem);
        let l = &self.layout;
        let builtin = self.builtin_at(pc).map(str::to_string);
        let marker = mem
            .read_u64(fp.wrapping_add_signed(l.fp_context_or_marker))
            .ok();
        if let Some(m) = marker.and_then(|m| heap.frame_marker(m)) {
            return self.marked_frame(&heap, address, fp, m, builtin);
        }
        let function = mem
            .read_u64(fp.wrapping_add_signed(l.fp_function))
            .ok()
            .filter(|&f| heap.is_js_function(f));
        if self.is_interpreter(pc) {
            let mut frame = self.interpreted_frame(&heap, fp, function);
            if let Some(f) = function {
                self.name_from_receiver(&heap, fp, f, &mut frame);
                // A leaf in the trampoline before its first dispatch has no
                // bytecode offset saved yet: it is at function entry.
                if !address.is_return_address() && frame.line.is_none() {
                    self.fill_entry_position(&heap, &mut frame, f);
                }
            }
            return V8FrameInfo {
                frame: V8Frame::Js(vec![frame]),
                is_entry: false,
            };
        }
        if let Some(symbol) = builtin {
            // Only builtins exposed to JavaScript (`native` SFIs such as
            // Array.prototype.map) show in V8's stack traces; internal
            // closures (await reactions, the module resume function) do not
            // (CallSiteBuilder::IsNotHidden, src/execution/isolate.cc).
            let function = function
                .filter(|&f| self.is_native_function(&heap, f))
                .map(|f| self.function_info(&heap, f).name.clone())
                .filter(|n| !n.is_empty());
            return V8FrameInfo {
                frame: V8Frame::Builtin { symbol, function },
                is_entry: false,
            };
        }
        // Up to V8 11.x the JS-to-wasm wrapper of an exported function is
        // compiled code run as that JSFunction's frame; V8's stack traces
        // do not show it (StackFrame::JS_TO_WASM).
        if function.is_some_and(|f| self.is_wasm_export(&heap, f)) {
            return V8FrameInfo {
                frame: V8Frame::Stub {
                    name: "JsToWasmFrame".into(),
                    symbol: None,
                },
                is_entry: false,
            };
        }
        // Compiled regular expressions run without a JSFunction in the
        // frame (src/regexp/*/regexp-macro-assembler-*.cc).
        if function.is_none()
            && self
                .scan_for_code(&heap, pc)
                .is_some_and(|c| Some(c.kind) == l.code_kind_regexp)
        {
            return V8FrameInfo {
                frame: V8Frame::Stub {
                    name: "RegExp".into(),
                    symbol: None,
                },
                is_entry: false,
            };
        }
        let mut frames = match function {
            Some(f) => self.compiled_frames(&heap, address, fp, f),
            None => vec![JsFrame {
                function: String::new(),
                file: String::new(),
                line: None,
                column: None,
                tier: Tier::Unknown,
                inlined: false,
            }],
        };
        if let (Some(f), Some(outer)) = (function, frames.last_mut()) {
            self.name_from_receiver(&heap, fp, f, outer);
        }
        V8FrameInfo {
            frame: V8Frame::Js(frames),
            is_entry: false,
        }
    }

    /// Describes a frame whose context slot holds a frame-type marker `m`
    /// (a stub, builtin exit, entry or wasm frame); `builtin` is the
    /// builtin the frame's pc is in, if any.
    pub(super) fn marked_frame(
        &self,
        heap: &Heap,
        address: FrameAddress,
        fp: u64,
        m: i64,
        builtin: Option<String>,
    ) -> V8FrameInfo {
        let l = &self.layout;
        let name = l
            .frame_type_name(m)
            .map(str::to_string)
            .unwrap_or_else(|| format!("FrameType{m}"));
        let is_entry = m == l.frame_entry || m == l.frame_construct_entry;
        if WASM_CODE_FRAMES.contains(&name.as_str()) {
            if let Some(frame) = self.wasm_frame(heap, address, fp) {
                return V8FrameInfo {
                    frame: V8Frame::Wasm(frame),
                    is_entry: false,
                };
            }
        }
        if Some(m) == l.frame_builtin_exit {
            let target = heap
                .mem
                .read_u64(fp.wrapping_add(BUILTIN_EXIT_TARGET_SLOT as u64 * l.tagged_size))
                .ok()
                .filter(|&t| heap.is_js_function(t))
                // API functions (up to 11.x entered through a builtin
                // exit frame too) are not in V8's stack traces.
                .filter(|&t| !self.is_api_function(heap, t));
            if let Some(t) = target {
                return V8FrameInfo {
                    frame: V8Frame::Builtin {
                        symbol: builtin.unwrap_or(name),
                        function: Some(self.function_info(heap, t).name.clone()),
                    },
                    is_entry: false,
                };
            }
        }
        V8FrameInfo {
            frame: V8Frame::Stub {
                name,
                symbol: builtin,
            },
            is_entry,
        }
    }

    /// Names the frame's function as `JSFunction::GetDebugName` does (an own
    /// `name` data property wins), and an anonymous function after the
    /// property of its receiver that holds it, as V8's stack traces do
    /// (`Module._compile`). Only the
    /// physical frame has its receiver on the stack; inlined frames keep
    /// the name their function has.
    pub(super) fn name_from_receiver(
        &self,
        heap: &Heap,
        fp: u64,
        function: u64,
        frame: &mut JsFrame,
    ) {
        let Some(props) = self.layout.properties.as_ref() else {
            return;
        };
        if let Some(name) = properties::own_data_string(heap, props, &self.maps, function, "name") {
            frame.function = name;
        }
        if !frame.function.is_empty() {
            return;
        }
        let Some(off) = self.layout.fp_receiver else {
            return;
        };
        let Ok(receiver) = heap.mem.read_u64(fp.wrapping_add_signed(off)) else {
            return;
        };
        if let Some(name) = properties::method_name(heap, props, &self.maps, receiver, function) {
            frame.function = name;
        }
    }

    /// Whether a JSFunction is an API function: its SFI's function data is
    /// a FunctionTemplateInfo.
    pub(super) fn is_api_function(&self, heap: &Heap, function: u64) -> bool {
        let l = &self.layout;
        l.sfi_function_data
            .and_then(|off| heap.field(heap.field(function, l.jsfunction_shared)?, off))
            .is_some_and(|data| heap.has_type(data, l.type_function_template_info))
    }

    /// Whether `function` is an exported WebAssembly function (its
    /// SharedFunctionInfo's data is WasmExportedFunctionData).
    pub(super) fn is_wasm_export(&self, heap: &Heap, function: u64) -> bool {
        let l = &self.layout;
        l.type_wasm_exported_function_data.is_some()
            && l.sfi_function_data
                .and_then(|off| heap.field(heap.field(function, l.jsfunction_shared)?, off))
                .is_some_and(|data| heap.has_type(data, l.type_wasm_exported_function_data))
    }

    /// Names the wasm code frame at `fp` (see `wasm.rs`); `None` where the
    /// line has no wasm layout or the frame's objects do not check out.
    pub(super) fn wasm_frame(
        &self,
        heap: &Heap,
        address: FrameAddress,
        fp: u64,
    ) -> Option<wasm::WasmFrame> {
        let l = &self.layout;
        let namer = wasm::WasmNamer {
            heap,
            layout: l.wasm.as_ref()?,
            arch: self.arch.kind(),
            encoding: l.position_table_encoding,
            instance_object_type: l.type_wasm_instance_object,
            module_object_type: l.type_wasm_module_object,
            script_type: l.type_script,
            script_name: l.script_name,
            script_managed_native_module: l.script_wasm_native_module,
        };
        namer.describe(fp, address, &self.wasm_modules)
    }

    /// Whether the function's SharedFunctionInfo has the `native` flag;
    /// true when the layout does not say (the name then decides).
    pub(super) fn is_native_function(&self, heap: &Heap, function: u64) -> bool {
        let l = &self.layout;
        let (Some(flags_off), Some(bit)) = (l.sfi_flags, l.sfi_native_bit) else {
            return true;
        };
        heap.field(function, l.jsfunction_shared)
            .and_then(|sfi| heap.field_u32(sfi, flags_off))
            .is_none_or(|flags| flags & (1 << bit) != 0)
    }

    pub(super) fn interpreted_frame(&self, heap: &Heap, fp: u64, function: Option<u64>) -> JsFrame {
        let l = &self.layout;
        let mut frame = self.blank_frame(heap, function, Tier::Interpreted);
        let bytecode = heap
            .mem
            .read_u64(fp.wrapping_add_signed(l.fp_bytecode_array))
            .ok();
        let offset = heap
            .mem
            .read_u64(fp.wrapping_add_signed(l.fp_bytecode_offset))
            .ok()
            .and_then(|v| heap.smi(v))
            // The slot holds the offset from the tagged BytecodeArray pointer
            // (src/execution/frames.cc InterpretedFrame::GetBytecodeOffset).
            .map(|v| v - (l.bytecode_array_header - l.heap_object_tag as i64));
        if let (Some(bc), Some(off), Some(f)) = (bytecode, offset, function) {
            self.fill_position(heap, &mut frame, f, self.bytecode_position(heap, bc, off));
        }
        frame
    }

    /// The interpreted frame at `fp` as seen from inside a bytecode
    /// handler, `None` when fp does not head one (a frame marker, no
    /// function or bytecode). The position is the bytecode at
    /// `offset_register` (the handler's current bytecode, from the tagged
    /// BytecodeArray pointer) when that lies within the bytecode, else
    /// the frame's saved offset (the last call's).
    pub fn interpreted_frame_in_handler(
        &self,
        fp: u64,
        offset_register: Option<u64>,
        mem: &dyn Memory,
    ) -> Option<V8Frame> {
        let heap = self.heap(mem);
        let l = &self.layout;
        let marker = mem
            .read_u64(fp.wrapping_add_signed(l.fp_context_or_marker))
            .ok()?;
        if heap.frame_marker(marker).is_some() {
            return None;
        }
        let function = self.frame_function(fp, mem)?;
        let bytecode = mem
            .read_u64(fp.wrapping_add_signed(l.fp_bytecode_array))
            .ok()?;
        if !heap.has_type(bytecode, l.type_bytecode_array) {
            return None;
        }
        let base = l.bytecode_array_header - l.heap_object_tag as i64;
        let length = heap
            .field(bytecode, l.bytecode_array_length)
            .and_then(|v| heap.smi(v))
            .unwrap_or(0);
        let mut frame = match offset_register
            .and_then(|v| i64::try_from(v).ok())
            .map(|v| v - base)
            .filter(|o| (0..length).contains(o))
        {
            Some(offset) => {
                let mut frame = self.blank_frame(&heap, Some(function), Tier::Interpreted);
                let position = self.bytecode_position(&heap, bytecode, offset);
                self.fill_position(&heap, &mut frame, function, position);
                frame
            }
            None => self.interpreted_frame(&heap, fp, Some(function)),
        };
        self.name_from_receiver(&heap, fp, function, &mut frame);
        Some(V8Frame::Js(vec![frame]))
    }

    /// An interpreted frame the interpreter is moving to Sparkplug code
    /// (`InterpreterOnStackReplacement_ToBaseline`, src/builtins/<arch>/
    /// builtins-<arch>.cc): the builtin has put the feedback cell where the
    /// bytecode offset was and keeps the offset in a register while it
    /// calls C++ for the baseline pc. `bytecode_offset` is that register's
    /// value as unwound to this frame. `None` for any other frame.
    pub fn interpreted_frame_moving_to_baseline(
        &self,
        pc: u64,
        fp: u64,
        bytecode_offset: u64,
        mem: &dyn Memory,
    ) -> Option<V8Frame> {
        let heap = self.heap(mem);
        let l = &self.layout;
        if !self.is_interpreter(pc) {
            return None;
        }
        let slot = mem
            .read_u64(fp.wrapping_add_signed(l.fp_bytecode_offset))
            .ok()?;
        if !heap.is_heap_object(slot) {
            return None;
        }
        let function = mem
            .read_u64(fp.wrapping_add_signed(l.fp_function))
            .ok()
            .filter(|&f| heap.is_js_function(f))?;
        let bytecode = mem
            .read_u64(fp.wrapping_add_signed(l.fp_bytecode_array))
            .ok()?;
        let length = heap.smi(heap.field(bytecode, l.bytecode_array_length)?)?;
        let offset = i64::try_from(bytecode_offset)
            .ok()
            .filter(|o| (0..length).contains(o))?;
        let mut frame = self.blank_frame(&heap, Some(function), Tier::Interpreted);
        let position = self.bytecode_position(&heap, bytecode, offset);
        self.fill_position(&heap, &mut frame, function, position);
        frame.line?;
        Some(V8Frame::Js(vec![frame]))
    }

    pub(super) fn compiled_frames(
        &self,
        heap: &Heap,
        address: FrameAddress,
        fp: u64,
        function: u64,
    ) -> Vec<JsFrame> {
        let l = &self.layout;
        let Some(code) = self.find_code(heap, address.pc(), function) else {
            return vec![self.blank_frame(heap, Some(function), Tier::Unknown)];
        };
        // A caller returning into a lazy deoptimization exit stands at the
        // call the exit replaced.
        let address = match address {
            FrameAddress::Return(pc) => {
                address.with_pc(self.lazy_deopt_return(heap, &code, pc).unwrap_or(pc))
            }
            FrameAddress::Instruction(_) => address,
        };
        let pc_offset = address.pc() - code.start;
        if code.kind == l.code_kind_baseline {
            let mut frame = self.blank_frame(heap, Some(function), Tier::Baseline);
            let pos = (|| {
                let bc = heap
                    .mem
                    .read_u64(fp.wrapping_add_signed(l.fp_bytecode_array))
                    .ok()?;
                let table = heap.field(code.code, l.code_position_table?)?;
                let table = self.byte_array(heap, table)?;
                let bytecodes = self.byte_array_raw(heap, bc)?;
                let off = positions::baseline_bytecode_offset(
                    &table,
                    &bytecodes,
                    self.bytecode_sizes.as_ref()?,
                    pc_offset,
                )?;
                self.bytecode_position(heap, bc, off)
            })();
            self.fill_position(heap, &mut frame, function, pos);
            return vec![frame];
        }
        let tier = self.optimized_tier(code.kind).unwrap_or(Tier::Unknown);
        // Clamped at 0: a return address at the code's very start (which
        // the prologue before any call rules out) takes the position at
        // offset 0, where V8's offset -1 (and wasm naming's) is before
        // every position.
        let lookup = address.lookup_offset(code.start).max(0);
        let pos = (|| {
            let table = heap.field(code.code, l.code_position_table?)?;
            let entries = self.position_table(heap, table)?;
            positions::position_at(&entries, lookup)
        })();
        // At a call in Maglev code V8 summarizes the frame from the
        // deoptimization entry of the call's safepoint, not from the
        // position table, which on-stack-replaced code leaves at the loop
        // header; the entry's bytecode offset places the outermost frame.
        // Frames of functions Maglev inlined are placed the same way, by the
        // bytecode offsets of the entry's translation.
        if address.is_return_address() && tier == Tier::Maglev {
            if let Some(frames) = self.maglev_translated_frames(heap, &code, pc_offset, function) {
                return frames;
            }
            if pos.is_none_or(|p| p.inlining_id() < 0) {
                if let Some(frame) = self.maglev_call_frame(heap, &code, pc_offset, function) {
                    return vec![frame];
                }
            }
        }
        match pos {
            Some(p) => match heap.field(function, l.jsfunction_shared) {
                Some(sfi) => self.inlined_frames(heap, &code, sfi, p, tier),
                None => vec![self.blank_frame(heap, Some(function), tier)],
            },
            None => {
                let mut frame = self.blank_frame(heap, Some(function), tier);
                // A leaf before the code's first position (just past the
                // prologue) is at function entry, as unbuilt leaves are.
                if !address.is_return_address() {
                    self.fill_entry_position(heap, &mut frame, function);
                }
                vec![frame]
            }
        }
    }

    /// Frames for a leaf in optimized code whose JSFunction register no
    /// longer holds the function (an epilogue after the frame is torn
    /// down): the function comes from the code's deoptimization data.
    pub(super) fn optimized_frames_by_code(
        &self,
        heap: &Heap,
        code: &CodeObject,
        pc: u64,
    ) -> Option<Vec<JsFrame>> {
        let l = &self.layout;
        let tier = self.optimized_tier(code.kind)?;
        let deopt = heap.field(code.code, l.code_deopt_data?)?;
        let sfi = heap.unwrap_sfi(heap.array_get(deopt, l.deopt_sfi_index?)?)?;
        let table = heap.field(code.code, l.code_position_table?)?;
        let entries = self.position_table(heap, table)?;
        let pos = positions::position_at(&entries, (pc - code.start) as i64)?;
        Some(self.inlined_frames(heap, code, sfi, pos, tier))
    }
}
