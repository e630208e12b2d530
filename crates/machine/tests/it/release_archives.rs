//! Hostile tar archives, generated: any entry type, names with `..` and
//! empty components, links chained through earlier links, sizes given by
//! PAX `size` records that the header's own field hides, any mode. Whatever
//! the archive, unpacking writes and resolves nothing outside the release,
//! keeps to its size and entry caps, leaves no group- or world-writable or
//! set-id file, leaves nothing behind when it refuses, and never panics.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use machine::release::{Limits, unpack_with};
use proptest::prelude::*;

use crate::cases;

#[derive(Debug, Clone)]
enum Kind {
    File { len: usize, pax: Option<u64> },
    Dir,
    Symlink(String),
    HardLink(String),
    Fifo,
    CharDev,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    kind: Kind,
    mode: u32,
}

fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("up"),
            Just("up2"),
            Just(".."),
            Just("."),
            Just(""),
            Just("requirements.txt"),
            Just("etc"),
        ],
        1..4,
    )
    .prop_map(|parts| parts.join("/"))
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        name(),
        Just("..".to_owned()),
        Just("up/..".to_owned()),
        Just("up2/../..".to_owned()),
        Just("/etc/shadow".to_owned()),
        Just("/dev/ptmx".to_owned()),
        Just("../../../../etc/passwd".to_owned()),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => (0usize..2048, prop::option::of(0u64..200_000)).prop_map(|(len, pax)| Kind::File { len, pax }),
        2 => Just(Kind::Dir),
        3 => target().prop_map(Kind::Symlink),
        1 => target().prop_map(Kind::HardLink),
        1 => Just(Kind::Fifo),
        1 => Just(Kind::CharDev),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (name(), kind(), 0u32..0o10000).prop_map(|(name, kind, mode)| Entry { name, kind, mode })
}

/// A raw 512-byte header with the name written as is (tar::Builder refuses
/// `..`, which is the point here).
fn header(name: &str, kind: tar::EntryType, size: u64, mode: u32, link: &str) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    {
        let raw = h.as_old_mut();
        let n = name.as_bytes();
        raw.name[..n.len().min(100)].copy_from_slice(&n[..n.len().min(100)]);
        let l = link.as_bytes();
        raw.linkname[..l.len().min(100)].copy_from_slice(&l[..l.len().min(100)]);
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_cksum();
    let mut out = [0u8; 512];
    out.copy_from_slice(h.as_bytes());
    out
}

fn pad(data: &mut Vec<u8>) {
    while !data.len().is_multiple_of(512) {
        data.push(0);
    }
}

fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        match &e.kind {
            Kind::File { len, pax } => {
                if let Some(real) = pax {
                    // "NN size=REAL\n", NN counting itself.
                    let body = format!(" size={real}\n");
                    let mut n = body.len() + 2;
                    if format!("{n}{body}").len() != n {
                        n += 1;
                    }
                    let record = format!("{n}{body}");
                    out.extend(header(
                        "pax",
                        tar::EntryType::XHeader,
                        record.len() as u64,
                        0o644,
                        "",
                    ));
                    out.extend(record.as_bytes());
                    pad(&mut out);
                }
                // The header's own size says `len`; a PAX record may say more.
                let real = pax.map_or(*len as u64, |p| p);
                out.extend(header(
                    &e.name,
                    tar::EntryType::Regular,
                    *len as u64,
                    e.mode,
                    "",
                ));
                out.extend(std::iter::repeat_n(b'x', real as usize));
                pad(&mut out);
            }
            Kind::Dir => out.extend(header(&e.name, tar::EntryType::Directory, 0, e.mode, "")),
            Kind::Symlink(t) => out.extend(header(&e.name, tar::EntryType::Symlink, 0, e.mode, t)),
            Kind::HardLink(t) => out.extend(header(&e.name, tar::EntryType::Link, 0, e.mode, t)),
            Kind::Fifo => out.extend(header(&e.name, tar::EntryType::Fifo, 0, e.mode, "")),
            Kind::CharDev => out.extend(header(&e.name, tar::EntryType::Char, 0, e.mode, "")),
        }
    }
    out.extend([0u8; 1024]);
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        out.push(p.clone());
        if e.file_type().unwrap().is_dir() {
            walk(&p, out);
        }
    }
}

const LIMITS: Limits = Limits {
    max_bytes: 64 * 1024,
    max_entries: 40,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]
    #[test]
    fn nothing_escapes_the_release_and_the_caps_hold(entries in prop::collection::vec(entry(), 0..16)) {
        let scratch = tempfile::tempdir().unwrap();
        let outside = scratch.path().join("outside");
        let root = scratch.path().join("app");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        let tar = scratch.path().join("app.tar");
        std::fs::write(&tar, archive(&entries)).unwrap();
        let releases = root.join("sources");
        let result = unpack_with(&tar, &releases, &LIMITS);

        // Nothing outside the app directory, ever.
        prop_assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        let mut top: Vec<String> = std::fs::read_dir(&root).unwrap().flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        top.sort();
        let mut files = Vec::new();
        if releases.exists() {
            walk(&releases, &mut files);
        }
        match &result {
            Ok(_) => {
                prop_assert!(top == ["sources"], "{:?}", top);
                let real_root = std::fs::canonicalize(&releases).unwrap();
                let (mut bytes, mut count) = (0u64, 0usize);
                for f in &files {
                    let meta = std::fs::symlink_metadata(f).unwrap();
                    count += 1;
                    if meta.file_type().is_symlink() {
                        let to = std::fs::canonicalize(f);
                        prop_assert!(to.as_ref().is_ok_and(|t| t.starts_with(&real_root)), "{} -> {:?}", f.display(), to);
                    } else {
                        prop_assert!(meta.is_file() || meta.is_dir(), "{} is special", f.display());
                        let mode = meta.permissions().mode();
                        prop_assert_eq!(mode & 0o7022, 0, "{} has mode {:o}", f.display(), mode);
                        if meta.is_file() {
                            bytes += meta.len();
                        }
                    }
                }
                prop_assert!(bytes <= LIMITS.max_bytes, "{} bytes", bytes);
                // The entries, plus the release's own marker file.
                prop_assert!(count <= LIMITS.max_entries + 2, "{} entries", count);
            }
            Err(_) => {
                // Refused whole: no source, no partial.
                prop_assert!(files.is_empty(), "left behind: {:?}", files);
            }
        }
    }
}

/// The two findings of the security review, as the archives it built.
#[test]
fn a_chain_of_links_to_shadow_and_a_pax_size_bomb_are_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let mut chain = vec![Entry {
        name: "a".into(),
        kind: Kind::Dir,
        mode: 0o755,
    }];
    chain.push(Entry {
        name: "a/up".into(),
        kind: Kind::Symlink("..".into()),
        mode: 0o777,
    });
    for i in 2..10 {
        let prev = if i == 2 {
            "up".to_owned()
        } else {
            format!("up{}", i - 1)
        };
        chain.push(Entry {
            name: format!("a/up{i}"),
            kind: Kind::Symlink(format!("{prev}/..")),
            mode: 0o777,
        });
    }
    chain.push(Entry {
        name: "a/shadow".into(),
        kind: Kind::Symlink("up9/etc/shadow".into()),
        mode: 0o777,
    });
    chain.push(Entry {
        name: "requirements.txt".into(),
        kind: Kind::Symlink("a/shadow".into()),
        mode: 0o777,
    });
    let tar = scratch.path().join("chain.tar");
    std::fs::write(&tar, archive(&chain)).unwrap();
    let root = scratch.path().join("app");
    let e = unpack_with(&tar, &root.join("sources"), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("resolves outside the archive"), "{e}");

    // 1 KiB that the header says is empty, a PAX record says 1 MiB.
    let bomb = [Entry {
        name: "wsgi.py".into(),
        kind: Kind::File {
            len: 0,
            pax: Some(1 << 20),
        },
        mode: 0o644,
    }];
    let tar = scratch.path().join("bomb.tar");
    std::fs::write(&tar, archive(&bomb)).unwrap();
    let e = unpack_with(&tar, &root.join("sources"), &LIMITS)
        .unwrap_err()
        .to_string();
    assert!(e.contains("too large"), "{e}");
}
