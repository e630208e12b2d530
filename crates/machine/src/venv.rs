//! A virtualenv: created with the system Python, filled from a
//! requirements.txt plus extra packages, by uv when it is installed (several
//! times faster) else by pip, and redone only when its inputs changed.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::{Cmd, Error};

/// The interpreter venvs are made from.
pub const PYTHON: &str = "/usr/bin/python3";
/// pip or uv may build wheels: generous, but bounded.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Where the inputs of the last successful install are kept.
const MARKER: &str = ".wsgi-charm-inputs";
/// Written once the venv is created whole.
const CREATED: &str = ".wsgi-charm-created";

/// What to install where.
#[derive(Debug, Clone)]
pub struct VenvRequest<'a> {
    /// The venv directory.
    pub venv: &'a Path,
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
}

/// Which installer ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installer {
    /// astral's uv.
    Uv,
    /// The venv's own pip.
    Pip,
}

/// Makes the venv match the request; returns a digest naming its inputs
/// (interpreter, requirements, wheel directory listing, extra packages),
/// which changes exactly when a reinstall happened or is needed.
pub fn ensure(req: &VenvRequest<'_>) -> Result<String, Error> {
    let requirements = req.app_dir.join("requirements.txt");
    let reqs = match std::fs::read(&requirements) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("read", &requirements, e)),
    };
    let inputs = inputs(req, &reqs);
    let marker = req.venv.join(MARKER);
    let python = req.venv.join("bin/python");
    if python.exists() && std::fs::read_to_string(&marker).ok().as_deref() == Some(inputs.as_str())
    {
        return Ok(inputs);
    }
    let _ = std::fs::remove_file(&marker);
    let installer = if crate::which("uv").is_some() {
        Installer::Uv
    } else {
        Installer::Pip
    };
    tracing::info!(venv = %req.venv.display(), ?installer, "installing requirements");
    // A venv whose creation was interrupted (a killed hook) may have a
    // python but no pip: only a venv marked complete is reused.
    let created = req.venv.join(CREATED);
    if !python.exists() || !created.exists() {
        if req.venv.exists() {
            fs_err::remove_dir_all(req.venv)?;
        }
        create(req.venv, installer)?;
        fs_err::write(&created, "")?;
    }
    let mut cmd = match installer {
        Installer::Uv => Cmd::new("uv")
            .args(["pip", "install", "--python"])
            .arg(&python)
            .env("UV_NO_PROGRESS", "1")
            // The system's CA store, as pip uses: behind a TLS-inspecting
            // proxy uv's bundled roots fail with UnknownIssuer.
            .env("UV_NATIVE_TLS", "1"),
        Installer::Pip => Cmd::new(req.venv.join("bin/pip")).args([
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar=off",
        ]),
    };
    if let Some(w) = req.wheels {
        cmd = cmd.args(["--no-index", "--find-links"]).arg(w);
    }
    if !reqs.is_empty() {
        cmd = cmd.arg("--requirement").arg(&requirements);
    }
    cmd = cmd.args(req.extra);
    cmd.dir(req.app_dir).timeout(INSTALL_TIMEOUT).run()?;
    fs_err::write(&marker, &inputs)?;
    Ok(inputs)
}

fn create(venv: &Path, installer: Installer) -> Result<(), Error> {
    let cmd = match installer {
        Installer::Uv => Cmd::new("uv")
            .args(["venv", "--quiet", "--python", PYTHON])
            .arg(venv)
            .env("UV_NATIVE_TLS", "1"),
        Installer::Pip => Cmd::new(PYTHON).args(["-m", "venv"]).arg(venv),
    };
    cmd.timeout(Duration::from_secs(300)).run().map(drop)
}

fn inputs(req: &VenvRequest<'_>, reqs: &[u8]) -> String {
    let mut text = format!("python={PYTHON}\npin={}\n", req.pins);
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
    crate::digest(text.as_bytes())
}
