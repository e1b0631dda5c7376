//! Frame addresses: where a frame is, and which address its unwind rules,
//! symbol and source position are looked up at.

/// Where a frame is: the instruction it was stopped at, or the return
/// address its callee will go back to.
///
/// Metadata is looked up at [`FrameAddress::lookup`]: the pc itself for an
/// instruction, the byte before it for a return address. A return address
/// points after the call, and when the call is the last instruction of a
/// function (a call to a function that does not return, such as `abort`)
/// it is already the first byte of the next function: DWARF CFI and
/// symbols of a caller must be looked up at the call instruction, which
/// any address inside it names. V8 does the same for its source-position
/// tables, keyed by code offset: a caller's position is the one in force
/// at the byte before its return address (`Code::SourcePosition`,
/// `WasmFrame::position`); see [`FrameAddress::lookup_offset`].
///
/// The walker takes only the innermost frame to be stopped at an
/// instruction, every other frame's pc as the return address its callee
/// saved. (A frame a signal interrupted is at an instruction too, but the
/// walker does not recognize signal frames.)
///
/// Some V8 tables are keyed by the return address itself (safepoints,
/// deoptimization exits, baseline code's bytecode-offset mapping, the
/// builtin a frame is in for `StackFrame::ComputeType`); those take
/// [`FrameAddress::pc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameAddress {
    /// The frame was stopped at this instruction, as the innermost is.
    Instruction(u64),
    /// The frame will resume at this return address when its callee returns.
    Return(u64),
}

impl FrameAddress {
    /// The address of a frame `depth` frames out from the innermost (0),
    /// which is at an instruction; every caller is at a return address.
    pub fn at_depth(depth: usize, pc: u64) -> FrameAddress {
        if depth == 0 {
            FrameAddress::Instruction(pc)
        } else {
            FrameAddress::Return(pc)
        }
    }

    /// The program counter, as the registers hold it.
    pub fn pc(self) -> u64 {
        match self {
            FrameAddress::Instruction(pc) | FrameAddress::Return(pc) => pc,
        }
    }

    /// The address to look up unwind rules, symbols and source positions
    /// at (see the type's documentation).
    pub fn lookup(self) -> u64 {
        match self {
            FrameAddress::Instruction(pc) => pc,
            FrameAddress::Return(pc) => pc.saturating_sub(1),
        }
    }

    /// [`FrameAddress::lookup`] as an offset into code starting at `start`,
    /// for source-position tables. Signed: a return address at `start`
    /// itself looks up offset -1, before every entry of a table, as V8
    /// does (`WasmFrame::position`, `GetSourcePositionBefore`).
    pub fn lookup_offset(self, start: u64) -> i64 {
        (self.pc().wrapping_sub(start) as i64).wrapping_sub(i64::from(self.is_return_address()))
    }

    /// Whether this is a return address (a caller's frame).
    pub fn is_return_address(self) -> bool {
        matches!(self, FrameAddress::Return(_))
    }

    /// The same kind of address at `pc`: for a frame V8 resumes elsewhere
    /// than the return address on the stack (a lazy deoptimization exit
    /// stands for the call it replaced).
    pub fn with_pc(self, pc: u64) -> FrameAddress {
        match self {
            FrameAddress::Instruction(_) => FrameAddress::Instruction(pc),
            FrameAddress::Return(_) => FrameAddress::Return(pc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FrameAddress;

    #[test]
    fn instruction_is_looked_up_at_itself() {
        let a = FrameAddress::Instruction(0x1000);
        assert_eq!(a.pc(), 0x1000);
        assert_eq!(a.lookup(), 0x1000);
        assert!(!a.is_return_address());
        assert_eq!(a.lookup_offset(0x1000), 0);
        assert_eq!(a.lookup_offset(0xff0), 0x10);
    }

    #[test]
    fn return_address_is_looked_up_at_the_call() {
        let a = FrameAddress::Return(0x1000);
        assert_eq!(a.pc(), 0x1000);
        assert_eq!(a.lookup(), 0xfff);
        assert!(a.is_return_address());
        assert_eq!(a.lookup_offset(0xff0), 0xf);
        // A return address at the code's start is before all of its
        // positions.
        assert_eq!(a.lookup_offset(0x1000), -1);
    }

    #[test]
    fn return_address_zero_does_not_wrap() {
        assert_eq!(FrameAddress::Return(0).lookup(), 0);
    }

    #[test]
    fn depth_decides_the_kind() {
        assert_eq!(FrameAddress::at_depth(0, 7), FrameAddress::Instruction(7));
        assert_eq!(FrameAddress::at_depth(1, 7), FrameAddress::Return(7));
    }

    #[test]
    fn with_pc_keeps_the_kind() {
        assert_eq!(FrameAddress::Return(1).with_pc(9), FrameAddress::Return(9));
        assert_eq!(
            FrameAddress::Instruction(1).with_pc(9),
            FrameAddress::Instruction(9)
        );
    }
}
