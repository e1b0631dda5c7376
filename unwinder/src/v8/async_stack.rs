//! Async stack traces: the awaiting callers V8 prints as `at async NAME`
//! after the frames of a resumed async function. They are found as V8's
//! own `CaptureAsyncStackTrace` (src/execution/isolate.cc) finds them:
//! from the await closure that resumed the function, whose context holds
//! its generator object, to the promise that function will settle, that
//! promise's one reaction, and the awaiting async function (or promise
//! combinator) the reaction resumes, and so on outwards.

use std::collections::HashMap;

use super::heap::Heap;
use super::versions::{async_layout, AsyncLayout};
use super::{JsFrame, Tier, V8Runtime};
use crate::memory::Memory;
use crate::module::Module;

/// The builtins that resume an awaiting async function or async generator
/// when the awaited promise settles (isolate.cc IsBuiltinAsyncFulfillHandler
/// and IsBuiltinAsyncRejectHandler). A frame of one of them runs a resumed
/// function's continuation.
pub const AWAIT_CLOSURES: &[&str] = &[
    "AsyncFunctionAwaitResolveClosure",
    "AsyncFunctionAwaitRejectClosure",
    "AsyncGeneratorAwaitResolveClosure",
    "AsyncGeneratorAwaitRejectClosure",
    "AsyncGeneratorYieldWithAwaitResolveClosure",
    // Its name up to V8 10.x (Node.js 18).
    "AsyncGeneratorYieldResolveClosure",
];

/// Most promises one walk follows (V8 stops at `Error.stackTraceLimit`;
/// this bounds a walk over a corrupt or cyclic promise chain, which may
/// add no frame at all).
const MAX_CHAIN_STEPS: usize = 1024;

/// Where `builtin_metadata` names the builtins (see `builtin_name`).
const BUILTIN_METADATA_SYMBOLS: &[&str] = &[
    "_ZN2v88internal12_GLOBAL__N_1L16builtin_metadataE",
    "_ZN2v88internal12_GLOBAL__N_116builtin_metadataE",
];

/// Longest builtin name read.
const MAX_BUILTIN_NAME: usize = 96;

/// One frame V8 prints as `at async ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsyncFrame {
    /// An async function or async generator suspended at an await, at the
    /// await's position.
    Function(JsFrame),
    /// A promise combinator (`Promise.all`, `allSettled`, `any`) waiting
    /// for the element at `index`; `name` is the combinator's (`all`).
    Combinator {
        /// The combinator's function name: `all`, `allSettled` or `any`.
        name: &'static str,
        /// The index of the element whose promise this chain settles.
        index: u32,
    },
}

/// The binary's table of builtin names by id, and the names read so far.
#[derive(Debug, Default)]
pub(super) struct BuiltinNames {
    /// Address and entry count of `builtin_metadata`.
    table: Option<(u64, u64)>,
    read: std::cell::RefCell<HashMap<i64, Option<String>>>,
}

impl BuiltinNames {
    /// Finds the table in `exe`; an empty one on lines without an async
    /// layout.
    pub(super) fn find(exe: &Module, layout: Option<&AsyncLayout>) -> BuiltinNames {
        let table = layout.and_then(|l| {
            BUILTIN_METADATA_SYMBOLS.iter().find_map(|name| {
                let (_, addr, size) = exe
                    .lookup_data_symbols(name)
                    .into_iter()
                    .find(|(n, _, _)| n == name)?;
                Some((
                    addr.wrapping_add(exe.bias),
                    size / l.builtin_metadata_size.max(1),
                ))
            })
        });
        BuiltinNames {
            table,
            read: Default::default(),
        }
    }
}

/// The links of a promise chain step (see `next_in_chain`).
enum Step {
    /// An awaiting function's generator object.
    Await(u64),
    /// A combinator frame, then the promise it settles.
    Combinator(AsyncFrame, Option<u64>),
    /// Just the next promise.
    Promise(u64),
}

impl V8Runtime {
    /// The async callers of the function resumed by the await closure
    /// `handler` (the JSFunction of a frame of one of `AWAIT_CLOSURES`),
    /// outermost last; empty when the line has no async layout or the
    /// links do not check out.
    pub fn async_callers(&self, handler: u64, mem: &dyn Memory) -> Vec<AsyncFrame> {
        let heap = self.heap(mem);
        let Some(l) = async_layout(self.layout.version) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let Some(resumed) = self.await_generator(&heap, &l, handler) else {
            return out;
        };
        // V8 only follows a generator that is running (continuation
        // kGeneratorExecuting, negative); one that is suspended again has
        // been left.
        if self.continuation(&heap, &l, resumed).is_none_or(|c| c >= 0) {
            return out;
        }
        let mut promise = self.generator_promise(&heap, &l, resumed);
        for _ in 0..MAX_CHAIN_STEPS {
            let Some(p) = promise else {
                break;
            };
            promise = match self.next_in_chain(&heap, &l, p) {
                Some(Step::Await(generator)) => {
                    if self
                        .continuation(&heap, &l, generator)
                        .is_none_or(|c| c < 0)
                    {
                        break;
                    }
                    let Some(frame) = self.suspended_frame(&heap, &l, generator) else {
                        break;
                    };
                    out.push(AsyncFrame::Function(frame));
                    self.generator_promise(&heap, &l, generator)
                }
                Some(Step::Combinator(frame, next)) => {
                    out.push(frame);
                    next
                }
                Some(Step::Promise(next)) => Some(next),
                None => None,
            };
        }
        out
    }

    /// What the one reaction of a pending `promise` leads to.
    fn next_in_chain(&self, heap: &Heap, l: &AsyncLayout, promise: u64) -> Option<Step> {
        let flags = heap.smi(heap.field(promise, l.promise_flags)?)?;
        if flags & 3 != 0 {
            return None;
        }
        let reaction = heap.field(promise, l.promise_reactions_or_result)?;
        if !heap.has_type(reaction, self.layout.promises.reaction) {
            return None;
        }
        // A second reaction means more than one awaiter: V8 stops.
        if !heap.is_smi(heap.field(reaction, l.reaction_next)?) {
            return None;
        }
        let fulfill = heap.field(reaction, l.reaction_fulfill_handler)?;
        let reject = heap.field(reaction, l.reaction_reject_handler)?;
        let fulfill_builtin = self.function_builtin(heap, l, fulfill);
        let reject_builtin = self.function_builtin(heap, l, reject);
        let is = |b: &Option<String>, name: &str| b.as_deref() == Some(name);
        let awaits = |b: &Option<String>| b.as_deref().is_some_and(|n| AWAIT_CLOSURES.contains(&n));
        if awaits(&fulfill_builtin) || awaits(&reject_builtin) {
            return self.await_generator(heap, l, fulfill).map(Step::Await);
        }
        let combinator = if is(&fulfill_builtin, "PromiseAllResolveElementClosure") {
            Some(("all", fulfill))
        } else if is(&fulfill_builtin, "PromiseAllSettledResolveElementClosure") {
            Some(("allSettled", fulfill))
        } else if is(&reject_builtin, "PromiseAnyRejectElementClosure") {
            Some(("any", reject))
        } else {
            None
        };
        if let Some((name, element)) = combinator {
            return self.combinator_step(heap, l, name, element);
        }
        if is(&fulfill_builtin, "PromiseCapabilityDefaultResolve") {
            // builtins-promise.h kPromiseSlot: the first slot after the
            // context's fixed ones.
            let context = heap.field(fulfill, self.layout.promises.jsfunction_context?)?;
            let slot = self.context_slot(heap, context, self.layout.promises.context_min_slots?)?;
            return self.is_promise(heap, slot).then_some(Step::Promise(slot));
        }
        // A plain promise chain: the promise the reaction settles.
        let next = heap.field(reaction, l.reaction_promise_or_capability)?;
        self.promise_of(heap, l, next).map(Step::Promise)
    }

    /// A combinator's frame from its element closure `element`, and the
    /// promise the combinator settles (builtins-promise.h: the element
    /// context's capability slot follows its remaining-elements count).
    fn combinator_step(
        &self,
        heap: &Heap,
        l: &AsyncLayout,
        name: &'static str,
        element: u64,
    ) -> Option<Step> {
        let hash = heap.smi(heap.field(element, l.receiver_properties_or_hash)?)?;
        let frame = AsyncFrame::Combinator {
            name,
            index: u32::try_from(hash.checked_sub(1)?).ok()?,
        };
        let context = heap.field(element, self.layout.promises.jsfunction_context?)?;
        let capability_slot = self.layout.promises.context_min_slots?.checked_add(1)?;
        let next = self
            .context_slot(heap, context, capability_slot)
            .and_then(|capability| self.promise_of(heap, l, capability));
        Some(Step::Combinator(frame, next))
    }

    /// `obj` when it is a JSPromise, or a PromiseCapability's promise.
    fn promise_of(&self, heap: &Heap, l: &AsyncLayout, obj: u64) -> Option<u64> {
        if self.is_promise(heap, obj) {
            return Some(obj);
        }
        if heap.has_type(obj, self.layout.promises.capability) {
            let p = heap.field(obj, l.capability_promise)?;
            return self.is_promise(heap, p).then_some(p);
        }
        None
    }

    fn is_promise(&self, heap: &Heap, obj: u64) -> bool {
        heap.has_type(obj, self.layout.promises.js_promise)
    }

    /// The generator object an await closure's context holds.
    fn await_generator(&self, heap: &Heap, l: &AsyncLayout, closure: u64) -> Option<u64> {
        if !heap.is_js_function(closure) {
            return None;
        }
        let context = heap.field(closure, self.layout.promises.jsfunction_context?)?;
        let generator = self.context_slot(heap, context, l.context_extension_index)?;
        let t = &self.layout;
        (heap.has_type(generator, t.promises.async_function_object)
            || heap.has_type(generator, t.promises.async_generator_object))
        .then_some(generator)
    }

    /// The promise the caller of an async function (or the consumer of an
    /// async generator's current request) waits on.
    fn generator_promise(&self, heap: &Heap, l: &AsyncLayout, generator: u64) -> Option<u64> {
        let promise = if heap.has_type(generator, self.layout.promises.async_function_object) {
            heap.field(generator, l.async_function_promise)?
        } else {
            let request = heap.field(generator, l.async_generator_queue)?;
            if !heap.has_type(request, self.layout.promises.async_generator_request) {
                return None;
            }
            heap.field(request, l.generator_request_promise)?
        };
        self.is_promise(heap, promise).then_some(promise)
    }

    fn continuation(&self, heap: &Heap, l: &AsyncLayout, generator: u64) -> Option<i64> {
        heap.smi(heap.field(generator, l.generator_continuation)?)
    }

    /// A suspended generator's frame at its suspend point (isolate.cc
    /// AppendAsyncFrame: `input_or_debug_pos` is the bytecode offset from
    /// the tagged BytecodeArray pointer).
    fn suspended_frame(&self, heap: &Heap, l: &AsyncLayout, generator: u64) -> Option<JsFrame> {
        let function = heap.field(generator, l.generator_function)?;
        if !heap.is_js_function(function) {
            return None;
        }
        let layout = &self.layout;
        let offset = heap.smi(heap.field(generator, l.generator_input_or_debug_pos)?)?
            - (layout.bytecode_array_header - layout.heap_object_tag as i64);
        let mut frame = self.blank_frame(heap, Some(function), Tier::Interpreted);
        let position = self
            .function_bytecode(heap, function)
            .and_then(|bc| self.bytecode_position(heap, bc, offset));
        self.fill_position(heap, &mut frame, function, position);
        Some(frame)
    }

    /// The name of the builtin a JSFunction runs, from its
    /// SharedFunctionInfo's builtin id.
    fn function_builtin(&self, heap: &Heap, l: &AsyncLayout, function: u64) -> Option<String> {
        if !heap.is_js_function(function) {
            return None;
        }
        let sfi = heap.field(function, self.layout.jsfunction_shared)?;
        let id = heap.smi(heap.field(sfi, l.sfi_builtin_id)?)?;
        self.builtin_name(heap, l, id)
    }

    /// The name of builtin `id`, from the binary's `builtin_metadata`
    /// array (builtins.cc), whose entries start with a name pointer.
    fn builtin_name(&self, heap: &Heap, l: &AsyncLayout, id: i64) -> Option<String> {
        let (table, count) = self.builtin_names.table?;
        let id_u = u64::try_from(id).ok().filter(|&i| i < count)?;
        if let Some(known) = self.builtin_names.read.borrow().get(&id) {
            return known.clone();
        }
        let name = heap
            .mem
            .read_u64(table.wrapping_add(id_u * l.builtin_metadata_size))
            .ok()
            .and_then(|at| read_c_string(heap.mem, at));
        self.builtin_names
            .read
            .borrow_mut()
            .insert(id, name.clone());
        name
    }

    /// Slot `index` of a Context (laid out as a FixedArray).
    fn context_slot(&self, heap: &Heap, context: u64, index: i64) -> Option<u64> {
        let offset = self
            .layout
            .fixed_array_data
            .checked_add(index.checked_mul(self.layout.tagged_size as i64)?)?;
        heap.field(context, offset)
    }
}

/// A NUL-terminated name of at most `MAX_BUILTIN_NAME` bytes.
fn read_c_string(mem: &dyn Memory, at: u64) -> Option<String> {
    let mut buf = [0u8; MAX_BUILTIN_NAME];
    let n = (1..=MAX_BUILTIN_NAME)
        .rev()
        .step_by(16)
        .find(|&n| mem.read(at, &mut buf[..n]).is_ok())?;
    let end = buf[..n].iter().position(|&b| b == 0)?;
    std::str::from_utf8(&buf[..end]).ok().map(str::to_string)
}
