//! The hook runtime: from the process environment to a committed (or rolled
//! back) hook. To be built (issue 2).
