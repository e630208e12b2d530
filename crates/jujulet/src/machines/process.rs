//! What machines need of the host's processes and mounts beyond the
//! machine crate's toolkit: the container's init, and the mounts under a
//! directory.

use std::path::{Path, PathBuf};

pub use machine::proc::{Proc, children, descendants};
pub use machine::process::output_within;
pub use machine::text::{tail, tail_file};
pub use machine::wait::wait_until;

/// The container's init among `nspawn`'s children: the first one in
/// another PID namespace (nspawn may fork helpers that stay in ours).
pub fn container_init(nspawn: u32) -> Option<Proc> {
    let ours = std::fs::read_link("/proc/self/ns/pid").ok()?;
    children(nspawn)
        .into_iter()
        .find(|c| std::fs::read_link(format!("/proc/{c}/ns/pid")).is_ok_and(|ns| ns != ours))
        .and_then(Proc::of)
}

/// Mount points at or under `dir`, deepest first (the order to unmount in).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    out.dedup();
    out
}

/// mountinfo escapes space, tab, newline and backslash as \ooo octal.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo(r"/a\134"), r"/a\");
    }
}
