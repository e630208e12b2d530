//! What an app's requirements.txt may say. The installer runs unprivileged
//! and sandboxed, but a requirements file still chooses where code comes
//! from; that is the operator's to decide (the `index_url`,
//! `extra_index_url` and `trusted_host` options), so lines that change it
//! are refused, naming the line:
//!
//! - index and find-links options (`-i`, `--index-url`, `--extra-index-url`,
//!   `-f`, `--find-links`, `--trusted-host`);
//! - `-r`/`-c`/`-e` and direct `file:` references to paths outside the
//!   application directory (nested files are read and checked too).
//!
//! Everything else passes to the installer as the app wrote it: packages,
//! version specifiers, `--hash` and `--require-hashes`, VCS and https URLs,
//! local paths inside the application.

use std::path::{Component, Path, PathBuf};

/// Files nested deeper than this with `-r`/`-c` are refused.
const MAX_DEPTH: usize = 8;

/// One refused line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} line {line}: {problem}")]
pub struct RequirementsError {
    /// The file, relative to the application directory.
    pub file: String,
    /// Its line number (the first line of a continued one).
    pub line: usize,
    /// What is wrong and what to do.
    pub problem: String,
}

/// Checks `requirements.txt` (relative to `app_dir`) and every file it
/// includes; `read` reads a file of the app (without following links).
pub fn check(
    app_dir: &Path,
    read: &mut dyn FnMut(&Path) -> anyhow::Result<String>,
) -> Result<(), anyhow::Error> {
    check_file(app_dir, Path::new("requirements.txt"), read, 0)
}

fn check_file(
    app_dir: &Path,
    rel: &Path,
    read: &mut dyn FnMut(&Path) -> anyhow::Result<String>,
    depth: usize,
) -> Result<(), anyhow::Error> {
    let text = read(&app_dir.join(rel))?;
    let file = rel.display().to_string();
    let here = rel.parent().unwrap_or(Path::new(""));
    for (line, words) in logical_lines(&text) {
        let err = |problem: String| RequirementsError {
            file: file.clone(),
            line,
            problem,
        };
        let mut it = words.iter();
        while let Some(word) = it.next() {
            let (name, inline) = match word.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
                _ => (word.as_str(), None),
            };
            let value = |it: &mut std::slice::Iter<'_, String>| {
                inline
                    .clone()
                    .or_else(|| it.next().cloned())
                    .ok_or_else(|| err(format!("{name} needs a value")))
            };
            match name {
                "-i" | "--index-url" | "--extra-index-url" | "-f" | "--find-links"
                | "--trusted-host" => {
                    let option = match name {
                        "-i" | "--index-url" => "index_url",
                        "--extra-index-url" => "extra_index_url",
                        "--trusted-host" => "trusted_host",
                        _ => "pip_cache_dir (a wheel directory inside the application)",
                    };
                    return Err(err(format!(
                        "{name} changes where code comes from; the operator sets it: juju config <app> {option}=..."
                    ))
                    .into());
                }
                "-r" | "--requirement" | "-c" | "--constraint" => {
                    let target = value(&mut it)?;
                    let inside = inside(here, &target).ok_or_else(|| {
                        err(format!("{name} {target} leaves the application directory"))
                    })?;
                    if depth >= MAX_DEPTH {
                        return Err(err(format!("{name} {target}: files nest too deep")).into());
                    }
                    check_file(app_dir, &inside, read, depth + 1)?;
                }
                "-e" | "--editable" => {
                    let target = value(&mut it)?;
                    if !is_url(&target) && inside(here, &target).is_none() {
                        return Err(err(format!(
                            "{name} {target} leaves the application directory"
                        ))
                        .into());
                    }
                }
                _ if word.starts_with("file:") || word.contains("@file:") => {
                    return Err(err(format!(
                        "{word}: file: URLs are refused; name a path inside the application directory"
                    ))
                    .into());
                }
                _ if is_local_path(word) && inside(here, word).is_none() => {
                    return Err(err(format!("{word} leaves the application directory")).into());
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Lines joined where they end in a backslash, comments removed (a `#`
/// at the start or after whitespace), split into words; with the number of
/// each one's first line.
fn logical_lines(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (start, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        let line = strip_comment(raw);
        if let Some(cont) = line.strip_suffix('\\') {
            acc.push_str(cont);
            acc.push(' ');
            pending = Some((start, acc));
            continue;
        }
        acc.push_str(line);
        let words: Vec<String> = acc.split_whitespace().map(str::to_owned).collect();
        if !words.is_empty() {
            out.push((start, words));
        }
    }
    if let Some((start, acc)) = pending {
        let words: Vec<String> = acc.split_whitespace().map(str::to_owned).collect();
        if !words.is_empty() {
            out.push((start, words));
        }
    }
    out
}

fn strip_comment(line: &str) -> &str {
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if c == '#' && prev_space {
            return &line[..i];
        }
        prev_space = c.is_whitespace();
    }
    line
}

fn is_url(s: &str) -> bool {
    s.contains("://") && !s.starts_with("file:")
}

/// A word pip reads as a local path: it starts with `.` or `/`, or names a
/// directory (`pkg/`, `a/b`) without being a URL or a `name @ url`.
fn is_local_path(s: &str) -> bool {
    !is_url(s) && (s.starts_with('.') || s.starts_with('/') || s.contains('/'))
}

/// `target`, relative to the directory `here` of the file naming it, as a
/// path relative to the application directory; None when it leaves it.
fn inside(here: &Path, target: &str) -> Option<PathBuf> {
    let t = Path::new(target);
    if t.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for c in here.join(t).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn run(files: &[(&str, &str)]) -> Result<(), String> {
        let files: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (Path::new("/srv/a/current").join(p), (*t).to_owned()))
            .collect();
        check(Path::new("/srv/a/current"), &mut |p| {
            files
                .get(p)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{} is missing", p.display()))
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn plain_requirements_pass() {
        let ok = "flask==3.0.0 --hash=sha256:abc \\\n    --hash=sha256:def\n\
                  # a comment -r /etc/shadow\n--require-hashes\n\
                  requests[socks]>=2 ; python_version > '3.8'\n\
                  git+https://github.com/x/y@v1#egg=y\n./vendor/pkg\n-e .\n-r more.txt\n";
        assert_eq!(
            run(&[("requirements.txt", ok), ("more.txt", "six\n")]),
            Ok(())
        );
    }

    #[test]
    fn lines_that_choose_where_code_comes_from_are_refused_by_line() {
        let cases = [
            (
                "flask\n--index-url https://evil/simple\n",
                "requirements.txt line 2: --index-url changes where code comes from; the operator sets it: juju config <app> index_url=...",
            ),
            (
                "-i https://evil/simple\n",
                "requirements.txt line 1: -i changes where code comes from; the operator sets it: juju config <app> index_url=...",
            ),
            (
                "--extra-index-url=https://evil/simple\n",
                "requirements.txt line 1: --extra-index-url changes where code comes from; the operator sets it: juju config <app> extra_index_url=...",
            ),
            (
                "--trusted-host evil\n",
                "requirements.txt line 1: --trusted-host changes where code comes from; the operator sets it: juju config <app> trusted_host=...",
            ),
            (
                "-f http://evil/\n",
                "requirements.txt line 1: -f changes where code comes from; the operator sets it: juju config <app> pip_cache_dir (a wheel directory inside the application)=...",
            ),
            (
                "-r /etc/shadow\n",
                "requirements.txt line 1: -r /etc/shadow leaves the application directory",
            ),
            (
                "-c ../../x\n",
                "requirements.txt line 1: -c ../../x leaves the application directory",
            ),
            (
                "-e /opt/pkg\n",
                "requirements.txt line 1: -e /opt/pkg leaves the application directory",
            ),
            (
                "pkg @ file:///etc/pkg\n",
                "requirements.txt line 1: file:///etc/pkg: file: URLs are refused; name a path inside the application directory",
            ),
            (
                "../outside\n",
                "requirements.txt line 1: ../outside leaves the application directory",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                run(&[("requirements.txt", text)]),
                Err(want.to_owned()),
                "{text}"
            );
        }
        // In a nested file, named by its path.
        assert_eq!(
            run(&[
                ("requirements.txt", "-r sub/more.txt\n"),
                ("sub/more.txt", "x\n-r ../../../etc/passwd\n")
            ]),
            Err(
                "sub/more.txt line 2: -r ../../../etc/passwd leaves the application directory"
                    .into()
            )
        );
        // A file that includes itself ends at the depth bound.
        assert!(
            run(&[("requirements.txt", "-r requirements.txt\n")])
                .unwrap_err()
                .contains("nest too deep")
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "[ -~\\n\\\\]{0,200}") {
            let _ = run(&[("requirements.txt", &text)]);
        }
    }
}
