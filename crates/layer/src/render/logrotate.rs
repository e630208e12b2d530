//! `/etc/logrotate.d/wsgi-<app>`: rotation of wsgi_logfile_path.
//!
//! `copytruncate`, not `create`: the unit makes only the log file itself
//! writable (`ReadWritePaths=<file>`, a bind mount of that inode), and
//! gunicorn keeps it open; truncating in place keeps both valid without
//! signalling gunicorn. logrotate runs as root, and no `su` is needed as long
//! as the file's directory is root-owned and not group/world-writable (the
//! host creates it so); logrotate refuses such a directory otherwise.

use std::path::Path;

use crate::config::paths::check_abs_path;

/// Why no snippet could be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("logrotate: {0}")]
pub struct LogrotateError(pub String);

/// Render the snippet for one log file (absolute, normalised, safe characters:
/// logrotate reads whitespace as a separator and `*?[` as globs).
pub fn render_logrotate(log_file: &Path) -> Result<String, LogrotateError> {
    let p = log_file
        .to_str()
        .ok_or_else(|| LogrotateError(format!("{log_file:?} is not UTF-8")))?;
    check_abs_path(p).map_err(LogrotateError)?;
    Ok(format!(
        "\
# Written by the wsgi charm (wsgi-agent); changes are overwritten.
{p} {{
    weekly
    rotate 4
    compress
    delaycompress
    missingok
    notifempty
    copytruncate
}}
"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    #[test]
    fn default_snippet() {
        insta::assert_snapshot!(
            "logrotate_default",
            render_logrotate(Path::new("/var/log/wsgi.service.log")).unwrap()
        );
    }

    #[test]
    fn refuses_globs_and_spaces() {
        assert!(render_logrotate(Path::new("/var/log/*.log")).is_err());
        assert!(render_logrotate(Path::new("/var/log/a b")).is_err());
        assert!(render_logrotate(Path::new("/var/log/a\n}")).is_err());
    }
}
