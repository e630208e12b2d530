//! The layer options of `layer.yaml` (`options.wsgi.application_root`,
//! `options.wsgi.username`), kept for layer:wsgi compatibility and read at run
//! time from the charm directory.

use std::path::PathBuf;

use serde::Deserialize;

use super::paths::check_abs_path;

/// Validated layer options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOptions {
    /// Where each application's directory lives (absolute, normalised).
    pub application_root: PathBuf,
    /// The system user and group gunicorn and provision_command run as.
    pub username: String,
}

/// Why `layer.yaml` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerOptionsError {
    /// Not YAML, or not the expected shape.
    #[error("layer.yaml: {0}")]
    Parse(String),
    /// A value failed validation; the text names the option.
    #[error("layer.yaml: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    options: Options,
}

#[derive(Deserialize, Default)]
struct Options {
    #[serde(default)]
    wsgi: Wsgi,
}

#[derive(Deserialize, Default)]
struct Wsgi {
    application_root: Option<String>,
    username: Option<String>,
}

impl Default for LayerOptions {
    /// layer:wsgi's defaults: `/srv` and `wsgi`.
    fn default() -> Self {
        Self {
            application_root: PathBuf::from("/srv"),
            username: "wsgi".to_owned(),
        }
    }
}

/// True for a name `useradd` accepts and that is safe in a unit file:
/// `[a-z_][a-z0-9_-]*`, at most 32 characters.
pub fn is_valid_username(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
        && name.len() <= 32
}

impl LayerOptions {
    /// Parse and validate the text of `layer.yaml`. Missing options take
    /// layer:wsgi's defaults; other options and layers are ignored.
    pub fn from_yaml(text: &str) -> Result<Self, LayerOptionsError> {
        let file: File =
            serde_saphyr::from_str(text).map_err(|e| LayerOptionsError::Parse(e.to_string()))?;
        let defaults = Self::default();
        let mut problems = Vec::new();
        let root = file
            .options
            .wsgi
            .application_root
            .unwrap_or_else(|| defaults.application_root.display().to_string());
        if let Err(e) = check_abs_path(&root) {
            problems.push(format!("wsgi.application_root: {e}"));
        } else if root == "/" {
            problems.push("wsgi.application_root: \"/\" is not allowed".to_owned());
        }
        let username = file.options.wsgi.username.unwrap_or(defaults.username);
        if !is_valid_username(&username) {
            problems.push(format!(
                "wsgi.username: {username:?} is not a system user name ([a-z_][a-z0-9_-]*, at most 32 characters)"
            ));
        } else if username == "root" {
            problems.push(
                "wsgi.username: \"root\" is not allowed (gunicorn never runs as root)".to_owned(),
            );
        }
        if problems.is_empty() {
            Ok(Self {
                application_root: PathBuf::from(root),
                username,
            })
        } else {
            Err(LayerOptionsError::Invalid(problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    #[test]
    fn reads_the_charm_layer_yaml() {
        let text = include_str!("../../../../layer.yaml");
        assert_eq!(
            LayerOptions::from_yaml(text).unwrap(),
            LayerOptions::default()
        );
    }

    #[test]
    fn defaults_when_absent() {
        assert_eq!(
            LayerOptions::from_yaml("{}").unwrap(),
            LayerOptions::default()
        );
        assert_eq!(
            LayerOptions::from_yaml("options: {basic: {use_venv: true}}").unwrap(),
            LayerOptions::default()
        );
    }

    #[test]
    fn validation_errors_name_the_option() {
        let cases = [
            (
                "options: {wsgi: {application_root: srv}}",
                "layer.yaml: wsgi.application_root: \"srv\" is not an absolute path",
            ),
            (
                "options: {wsgi: {application_root: /}}",
                "layer.yaml: wsgi.application_root: \"/\" is not allowed",
            ),
            (
                "options: {wsgi: {username: \"Bad User\"}}",
                "layer.yaml: wsgi.username: \"Bad User\" is not a system user name ([a-z_][a-z0-9_-]*, at most 32 characters)",
            ),
            (
                "options: {wsgi: {username: root}}",
                "layer.yaml: wsgi.username: \"root\" is not allowed (gunicorn never runs as root)",
            ),
        ];
        for (yaml, want) in cases {
            assert_eq!(
                LayerOptions::from_yaml(yaml).unwrap_err().to_string(),
                want,
                "{yaml}"
            );
        }
        assert!(matches!(
            LayerOptions::from_yaml("options: [").unwrap_err(),
            LayerOptionsError::Parse(_)
        ));
    }
}
