//! Relation protocols of the wsgi charm: pure functions from relation data to
//! typed readiness. No I/O, no processes.
