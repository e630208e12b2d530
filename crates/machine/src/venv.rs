//! Virtualenvs: one per set of inputs (interpreter, installer,
//! requirements, wheel directory, indexes, pins), under `venvs/<key>`,
//! created with the system Python and filled by uv (the charm carries its
//! own) or pip. A complete venv is never installed into again: a release
//! with other inputs gets a new one beside it, so the venv that serves is
//! never modified, and releases with the same inputs share one.
//!
//! Everything that runs the app's code (a build backend, a `.pth` in a
//! wheel, pip itself, which is the venv's own Python) runs as the app's user
//! in a transient unit with the service's sandbox ([`crate::sandbox`]): it
//! may write the venv and its cache, nothing else. Root only makes the
//! directories, writes the installer's environment file and reads results;
//! it never executes anything in the venv or the release. Installer
//! configuration from the release or the machine is ignored (`uv
//! --no-config`, `PIP_CONFIG_FILE=/dev/null`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;
use crate::sandbox::Sandbox;

/// The interpreter venvs are made from.
pub const PYTHON: &str = "/usr/bin/python3";
/// pip or uv may build wheels: generous, but bounded.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Where the inputs of the last successful install are kept.
const MARKER: &str = ".wsgi-charm-inputs";
/// The largest requirements file read.
pub const MAX_REQUIREMENTS: u64 = 1 << 20;

/// What to install where.
#[derive(Debug, Clone)]
pub struct VenvRequest<'a> {
    /// The directory of the venvs (`<app dir>/venvs`).
    pub venvs: &'a Path,
    /// The app directory (holds requirements.txt; relative paths in it resolve here).
    pub app_dir: &'a Path,
    /// Install offline from this wheel directory.
    pub wheels: Option<&'a Path>,
    /// Packages installed beside the requirements (pins such as
    /// `gunicorn==27.0.1`).
    pub extra: &'a [String],
    /// The caller's pins, part of the inputs digest whether installed or
    /// not (a change of pin means a new venv).
    pub pins: &'a str,
    /// Who builds it, and with what.
    pub build: &'a Build,
}

/// The unprivileged build: its user, its writable cache, the directory for
/// root's files about it, the indexes and the environment it gets.
#[derive(Debug, Clone, Default)]
pub struct Build {
    /// The transient unit's name prefix (`wsgi-<app>-build`).
    pub unit: String,
    /// The user (and group) the installer runs as.
    pub user: String,
    /// Its HOME and the installer's cache, owned by the user.
    pub cache_dir: PathBuf,
    /// Root's directory for the installer's environment file (0700).
    pub run_dir: PathBuf,
    /// `--index-url`.
    pub index_url: Option<String>,
    /// `--extra-index-url`, each.
    pub extra_index_url: Vec<String>,
    /// pip's `--trusted-host`, uv's `--allow-insecure-host`, each.
    pub trusted_host: Vec<String>,
    /// Who installs.
    pub installer: Installer,
    /// Further variables for the installer (the model's proxy settings);
    /// they go in its environment file, never in argv or unit properties.
    pub env: Vec<(String, String)>,
}

/// Who installs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Installer {
    /// astral's uv, this binary (the charm's own; root-owned, so the app
    /// user can run it but not change it). uv needs no `venv` module or
    /// pip in the system Python.
    Uv(PathBuf),
    /// The venv's own pip (needs python3-venv).
    #[default]
    Pip,
}

impl Installer {
    fn name(&self) -> &'static str {
        match self {
            Installer::Uv(_) => "uv",
            Installer::Pip => "pip",
        }
    }
}

/// A complete venv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Venv {
    /// The digest of its inputs.
    pub key: String,
    /// The digest of the requirements.txt it was built from.
    pub requirements: String,
    /// `venvs/<key prefix>`.
    pub dir: PathBuf,
}

/// Reads a file the app ships without following a link (the release is
/// checked, but not trusted) and at most `cap` bytes; a missing file is
/// empty.
pub fn read_app_file(path: &Path, cap: u64) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    if bytes.len() as u64 > cap {
        return Err(Error::Invalid(format!(
            "{} is larger than {cap} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

/// The venv for the request: the complete one with the same inputs, or a
/// new one built beside the others. An incomplete one (a failed or killed
/// build) is removed and built again; nothing that serves is touched.
pub fn ensure(req: &VenvRequest<'_>) -> Result<Venv, Error> {
    let requirements = req.app_dir.join("requirements.txt");
    let reqs = read_app_file(&requirements, MAX_REQUIREMENTS)?;
    let key = inputs(req, &reqs);
    let dir = req.venvs.join(crate::release::store::venv_dir_name(&key));
    let marker = dir.join(MARKER);
    let python = dir.join("bin/python");
    let requirements = crate::digest(&reqs);
    if python.exists() && std::fs::read_to_string(&marker).ok().as_deref() == Some(key.as_str()) {
        return Ok(Venv {
            key,
            requirements,
            dir,
        });
    }
    let installer = &req.build.installer;
    tracing::info!(venv = %dir.display(), installer = installer.name(), "installing requirements");
    let sandbox = prepare(req, &dir)?;
    if dir.exists() {
        fs_err::remove_dir_all(&dir)?;
    }
    crate::fs::create_dirs(req.venvs)?;
    owned_dir(&dir, &req.build.user, 0o755)?;
    let (program, args) = create_argv(&dir, installer);
    sandbox.run(&program, &args).map_err(|e| match (installer, &e) {
        (Installer::Pip, Error::Failed { tail, .. }) if tail.contains("ensurepip") => {
            Error::Invalid(
                "installer=pip needs python3-venv on the machine (apt_dependencies=python3-venv), or use installer=uv".into(),
            )
        }
        _ => e,
    })?;
    let (program, args) = install_argv(req, installer, &dir, !reqs.is_empty());
    sandbox.run(&program, &args)?;
    fs_err::write(&marker, &key)?;
    Ok(Venv {
        key,
        requirements,
        dir,
    })
}

/// The line of an installer's failure that names the cause (the package
/// that is missing or does not resolve), for a status message; the whole
/// output is in the error itself.
pub fn cause(e: &Error) -> String {
    let tail = match e {
        Error::Failed { tail, .. } | Error::Timeout { tail, .. } => tail.as_str(),
        other => return other.to_string(),
    };
    // The tail's lines are joined with " | " (crate::text::last_lines).
    let lines: Vec<&str> = tail
        .lines()
        .flat_map(|l| l.split(" | "))
        .map(|l| l.trim().trim_start_matches(['×', '╰', '─', '▶', '│', ' ']))
        .filter(|l| !l.is_empty() && !l.starts_with("warning:"))
        .collect();
    // uv: "Because nosuch was not found in the package registry ...";
    // pip: "ERROR: No matching distribution found for nosuch".
    let because = lines
        .iter()
        .find_map(|l| l.find("Because ").map(|i| &l[i..]));
    let best = because
        .as_ref()
        .or_else(|| {
            lines
                .iter()
                .find(|l| l.contains("No matching distribution"))
        })
        .or_else(|| {
            lines
                .iter()
                .rev()
                .find(|l| l.starts_with("ERROR:") || l.starts_with("error:"))
        })
        .or_else(|| lines.last());
    let mut line = best.map_or_else(|| e.to_string(), |l| (*l).to_owned());
    // uv's "error: Request failed ..." says why on the lines after it.
    if because.is_none()
        && let Some(i) = lines.iter().position(|l| *l == line)
    {
        for more in lines[i + 1..]
            .iter()
            .filter_map(|l| {
                l.strip_prefix("cause:")
                    .or_else(|| l.strip_prefix("Caused by:"))
            })
            .take(2)
        {
            line.push_str("; ");
            line.push_str(more.trim());
        }
    }
    match e {
        Error::Timeout { secs, .. } => format!("timed out after {secs} s: {line}"),
        _ => line,
    }
}

/// The directories and the environment file the sandbox needs, and the
/// sandbox itself.
fn prepare(req: &VenvRequest<'_>, venv: &Path) -> Result<Sandbox, Error> {
    let b = req.build;
    owned_dir(&b.cache_dir, &b.user, 0o700)?;
    crate::fs::create_dirs(&b.run_dir)?;
    fs_err::set_permissions(
        &b.run_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;
    let cache = b.cache_dir.display().to_string();
    let mut env: Vec<(String, String)> = vec![
        ("HOME".into(), cache.clone()),
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("LANG".into(), "C.UTF-8".into()),
        // Configuration from the release or the machine is not read.
        ("PIP_CONFIG_FILE".into(), "/dev/null".into()),
        ("PIP_NO_INPUT".into(), "1".into()),
        ("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into()),
        ("PIP_CACHE_DIR".into(), format!("{cache}/pip")),
        ("UV_CACHE_DIR".into(), format!("{cache}/uv")),
        ("UV_NO_PROGRESS".into(), "1".into()),
        // The system Python only: never a download of another.
        ("UV_PYTHON_DOWNLOADS".into(), "never".into()),
        // The system's CA store, as pip uses: behind a TLS-inspecting proxy
        // uv's bundled roots fail with UnknownIssuer.
        ("UV_SYSTEM_CERTS".into(), "1".into()),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
    ];
    env.extend(b.env.iter().cloned());
    let env_file = b.run_dir.join("build.env");
    let mut text = String::new();
    for (k, v) in &env {
        if v.contains(['\n', '\r', '\0']) {
            return Err(Error::Invalid(format!(
                "the installer's variable {k} contains a line break"
            )));
        }
        let escaped = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('`', "\\`")
            .replace('$', "\\$");
        let _ = writeln!(text, "{k}=\"{escaped}\"");
    }
    crate::fs::write_if_changed(&env_file, text.as_bytes(), 0o600, Some((0, 0)))?;
    Ok(Sandbox {
        name: b.unit.clone(),
        user: b.user.clone(),
        dir: req.app_dir.to_owned(),
        writable: vec![venv.to_owned(), b.cache_dir.clone()],
        env_files: vec![env_file],
        env: Vec::new(),
        timeout: INSTALL_TIMEOUT,
        umask: "0022",
        extra: Vec::new(),
    })
}

/// A directory owned by `user` (created, or its owner and mode fixed).
fn owned_dir(dir: &Path, user: &str, mode: u32) -> Result<(), Error> {
    let (uid, gid) = crate::users::lookup(user)?
        .ok_or_else(|| Error::Invalid(format!("user {user} does not exist")))?;
    crate::fs::create_dirs(dir)?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| Error::io("chown", dir, e))?;
    fs_err::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    Ok(())
}

fn create_argv(venv: &Path, installer: &Installer) -> (String, Vec<String>) {
    let venv = venv.display().to_string();
    match installer {
        Installer::Uv(uv) => (
            uv.display().to_string(),
            ["venv", "--no-config", "--quiet", "--python", PYTHON, &venv]
                .map(str::to_owned)
                .to_vec(),
        ),
        Installer::Pip => (
            PYTHON.to_owned(),
            ["-m", "venv", &venv].map(str::to_owned).to_vec(),
        ),
    }
}

fn install_argv(
    req: &VenvRequest<'_>,
    installer: &Installer,
    venv: &Path,
    has_requirements: bool,
) -> (String, Vec<String>) {
    let python = venv.join("bin/python");
    let (program, mut args) = match installer {
        Installer::Uv(uv) => (
            uv.display().to_string(),
            vec![
                "pip".to_owned(),
                "install".into(),
                "--no-config".into(),
                "--python".into(),
                python.display().to_string(),
            ],
        ),
        Installer::Pip => (
            venv.join("bin/pip").display().to_string(),
            vec!["install".to_owned(), "--progress-bar=off".into()],
        ),
    };
    let b = req.build;
    if let Some(w) = req.wheels {
        args.extend(["--no-index".into(), "--find-links".into()]);
        args.push(w.display().to_string());
    } else {
        if let Some(i) = &b.index_url {
            args.extend(["--index-url".into(), i.clone()]);
        }
        for i in &b.extra_index_url {
            args.extend(["--extra-index-url".into(), i.clone()]);
        }
    }
    let trusted = match installer {
        Installer::Uv(_) => "--allow-insecure-host",
        Installer::Pip => "--trusted-host",
    };
    for h in &b.trusted_host {
        args.extend([trusted.to_owned(), h.clone()]);
    }
    if has_requirements {
        args.push("--requirement".into());
        args.push(req.app_dir.join("requirements.txt").display().to_string());
    }
    args.extend(req.extra.iter().cloned());
    (program, args)
}

fn inputs(req: &VenvRequest<'_>, reqs: &[u8]) -> String {
    let mut text = format!(
        "python={PYTHON}\npin={}\ninstaller={}\n",
        req.pins,
        req.build.installer.name()
    );
    let _ = writeln!(text, "requirements={}", crate::digest(reqs));
    if let Some(w) = req.wheels {
        let mut names: Vec<String> = std::fs::read_dir(w)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let _ = writeln!(text, "wheels={}:{}", w.display(), names.join(","));
    }
    // Where the code comes from is an input too (an old digest, without
    // these lines, stays the same when there are none).
    let b = req.build;
    if let Some(i) = &b.index_url {
        let _ = writeln!(text, "index={i}");
    }
    for i in &b.extra_index_url {
        let _ = writeln!(text, "extra-index={i}");
    }
    for h in &b.trusted_host {
        let _ = writeln!(text, "trusted-host={h}");
    }
    crate::digest(text.as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn app_files_are_read_without_links_and_capped() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::write(&real, "flask\n").unwrap();
        assert_eq!(read_app_file(&real, 100).unwrap(), b"flask\n");
        let link = d.path().join("link");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        assert!(read_app_file(&link, 100).is_err(), "a link is followed");
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = read_app_file(&fifo, 100).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(read_app_file(&real, 3).is_err());
        assert!(read_app_file(&d.path().join("none"), 3).unwrap().is_empty());
    }

    #[test]
    fn the_cause_of_a_failed_install_is_one_line() {
        let failed = |tail: &str| Error::Failed {
            cmd: "uv pip install".into(),
            exit: crate::process::Exit::Code(1),
            tail: tail.into(),
        };
        let uv = "Using Python 3.11\n  × No solution found when resolving dependencies:\n  ╰─▶ Because nosuchpkg-xyz was not found in the package registry and you require nosuchpkg-xyz, we can conclude that your requirements are unsatisfiable.";
        assert!(cause(&failed(uv)).starts_with("Because nosuchpkg-xyz was not found"));
        let pip = "Collecting x\nERROR: Could not find a version that satisfies the requirement nosuchpkg-xyz\nERROR: No matching distribution found for nosuchpkg-xyz";
        assert_eq!(
            cause(&failed(pip)),
            "ERROR: No matching distribution found for nosuchpkg-xyz"
        );
        assert_eq!(cause(&failed("one\nlast words")), "last words");
        assert_eq!(
            cause(&failed(
                "x | × No solution | ╰─▶ Because a was not found | warning: w"
            )),
            "Because a was not found"
        );
        assert_eq!(
            cause(&failed(
                "error: Request failed after 3 retries in 8.8s | cause: Failed to fetch: http://127.0.0.1:9/simple/six/ | cause: error sending request | cause: tcp connect error"
            )),
            "error: Request failed after 3 retries in 8.8s; Failed to fetch: http://127.0.0.1:9/simple/six/; error sending request"
        );
        assert_eq!(
            cause(&failed(
                "error: No solution found | cause: Because b was not found"
            )),
            "Because b was not found"
        );
        assert_eq!(
            cause(&failed(
                "error: Request failed after 3 retries | Caused by: Failed to fetch: `http://127.0.0.1:9/simple/six/` | Caused by: Connection refused"
            )),
            "error: Request failed after 3 retries; Failed to fetch: `http://127.0.0.1:9/simple/six/`; Connection refused"
        );
    }

    #[test]
    fn installer_arguments_carry_the_operators_indexes_only() {
        let build = Build {
            index_url: Some("https://mirror/simple".into()),
            extra_index_url: vec!["https://extra/simple".into()],
            trusted_host: vec!["mirror".into()],
            ..Build::default()
        };
        let build = Build {
            installer: Installer::Uv("/usr/local/lib/wsgi-charm/uv".into()),
            ..build
        };
        let req = VenvRequest {
            venvs: Path::new("/srv/a/venvs"),
            app_dir: Path::new("/srv/a/current"),
            wheels: None,
            extra: &["gunicorn==27.0.1".to_owned()],
            pins: "gunicorn==27.0.1",
            build: &build,
        };
        let (program, uv) = install_argv(&req, &build.installer, Path::new("/srv/a/venvs/k"), true);
        assert_eq!(program, "/usr/local/lib/wsgi-charm/uv");
        assert_eq!(
            uv.join(" "),
            "pip install --no-config --python /srv/a/venvs/k/bin/python --index-url https://mirror/simple \
             --extra-index-url https://extra/simple --allow-insecure-host mirror \
             --requirement /srv/a/current/requirements.txt gunicorn==27.0.1"
        );
        let (pip, args) = install_argv(&req, &Installer::Pip, Path::new("/srv/a/venvs/k"), false);
        assert_eq!(pip, "/srv/a/venvs/k/bin/pip");
        assert!(args.contains(&"--trusted-host".to_owned()));
        // The digest moves with the index, and not without one.
        let plain = Build::default();
        let without = VenvRequest {
            build: &plain,
            ..req.clone()
        };
        assert_ne!(inputs(&req, b""), inputs(&without, b""));
        // And with the installer: a pip venv is not a uv one.
        let pip = Build {
            installer: Installer::Pip,
            ..build.clone()
        };
        let with_pip = VenvRequest {
            build: &pip,
            ..req.clone()
        };
        assert_ne!(inputs(&req, b""), inputs(&with_pip, b""));
    }
}
