//! The reactive engine (to be built: issue 2).
