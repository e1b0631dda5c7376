//! Compiled CFI rows: the few forms of DWARF call-frame rules the unwinder
//! applies. Modules compile them from `.eh_frame`, recordings keep them,
//! and the walker applies them; this module depends on nothing else.

/// A register rule after compiling a CFI row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegRule {
    /// The register is unchanged in the caller.
    Same,
    /// The caller's value is unknown (for the return address: end of stack).
    Undefined,
    /// Saved at CFA + offset.
    AtCfa(i64),
    /// Value is CFA + offset.
    ValCfa(i64),
    /// Value is in another register.
    InReg(u16),
}

/// A CFI row compiled into the handful of forms compilers emit: the CFA
/// as register + offset, and a rule for every register that has one. Rows
/// with DWARF expressions are not compiled (`None`), and the caller falls
/// back to frame records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledRow {
    /// DWARF register the CFA is computed from.
    pub cfa_reg: u16,
    /// Offset added to that register to give the CFA.
    pub cfa_offset: i64,
    /// Rules for the registers that have one: (DWARF register, rule).
    pub rules: Vec<(u16, RegRule)>,
}
