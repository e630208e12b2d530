//! The app's virtualenv: created with the system Python, filled from the
//! app's requirements.txt plus gunicorn, by uv when it is installed (several
//! times faster) else by pip, and redone only when its inputs changed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Cmd, HostError};

/// The gunicorn installed when the app's requirements do not name one.
pub const GUNICORN: &str = "gunicorn==27.0.1";
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
/// (interpreter, requirements, wheel directory listing, installer pin),
/// which changes exactly when a reinstall happened or is needed.
pub fn ensure(req: &VenvRequest<'_>) -> Result<String, HostError> {
    let requirements = req.app_dir.join("requirements.txt");
    let reqs = match std::fs::read(&requirements) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(HostError::io("read", &requirements, e)),
    };
    let inputs = inputs(req, &reqs);
    let marker = req.venv.join(MARKER);
    let python = req.venv.join("bin/python");
    if python.exists() && std::fs::read_to_string(&marker).ok().as_deref() == Some(inputs.as_str())
    {
        return Ok(inputs);
    }
    let _ = std::fs::remove_file(&marker);
    let installer = if which("uv").is_some() {
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
            std::fs::remove_dir_all(req.venv).map_err(|e| HostError::io("remove", req.venv, e))?;
        }
        create(req.venv, installer)?;
        std::fs::write(&created, "").map_err(|e| HostError::io("write", &created, e))?;
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
    if !names_gunicorn(&String::from_utf8_lossy(&reqs)) {
        cmd = cmd.arg(GUNICORN);
    }
    cmd.dir(req.app_dir).timeout(INSTALL_TIMEOUT).run()?;
    std::fs::write(&marker, &inputs).map_err(|e| HostError::io("write", &marker, e))?;
    Ok(inputs)
}

fn create(venv: &Path, installer: Installer) -> Result<(), HostError> {
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
    let mut text = format!("python={PYTHON}\npin={GUNICORN}\n");
    text.push_str(&format!(
        "requirements={}\n",
        crate::wsgi::desired::digest(reqs)
    ));
    if let Some(w) = req.wheels {
        let mut names: Vec<String> = std::fs::read_dir(w)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        text.push_str(&format!("wheels={}:{}\n", w.display(), names.join(",")));
    }
    crate::wsgi::desired::digest(text.as_bytes())
}

/// Whether a requirements file names gunicorn (then its pin wins).
pub fn names_gunicorn(requirements: &str) -> bool {
    requirements.lines().any(|l| {
        let l = l.trim_start().to_ascii_lowercase();
        l.strip_prefix("gunicorn").is_some_and(|rest| {
            !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
    })
}

/// A program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gunicorn_in_requirements_is_recognised() {
        assert!(names_gunicorn("flask\nGunicorn==22.0.0\n"));
        assert!(names_gunicorn("gunicorn\n"));
        assert!(names_gunicorn("  gunicorn[gevent]>=21\n"));
        assert!(!names_gunicorn("gunicorn-thing==1\nflask\n"));
        assert!(!names_gunicorn("# gunicorn\n"));
    }
}
