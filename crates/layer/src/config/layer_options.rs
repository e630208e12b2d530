//! The layer options of `layer.yaml` (`options.wsgi.application_root`,
//! `options.wsgi.username`), kept for layer:wsgi compatibility and read at run
//! time from the charm directory.

use std::path::PathBuf;

use serde::Deserialize;

use super::paths::{AppName, check_abs_path};

/// Validated layer options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerOptions {
    /// Where each application's directory lives (absolute, normalised).
    pub application_root: PathBuf,
    /// The system user and group gunicorn, the installer and
    /// provision_command run as: `wsgi.username` if set, else one of the
    /// application's own ([`default_user`]).
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

impl LayerOptions {
    /// The defaults for `app`: `/srv`, and a user of the app's own.
    pub fn for_app(app: &AppName) -> Self {
        Self {
            application_root: PathBuf::from("/srv"),
            username: default_user(app),
        }
    }
}

/// The user of an application that names none: `wsgi-<app>`, so that two
/// applications on one machine never share one (each reads only its own
/// environment file and signals only its own processes). Names longer than
/// useradd's 32 characters keep a prefix and a hash of the whole.
pub fn default_user(app: &AppName) -> String {
    let name = format!("wsgi-{app}");
    if name.len() <= 32 {
        return name;
    }
    let hash = machine::digest(app.as_str().as_bytes());
    format!("wsgi-{}-{}", &app.as_str()[..18], &hash[..8])
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
    /// Parse and validate the text of `layer.yaml` for `app`. Missing
    /// options take the defaults ([`LayerOptions::for_app`]); other options
    /// and layers are ignored.
    pub fn from_yaml(text: &str, app: &AppName) -> Result<Self, LayerOptionsError> {
        let file: File =
            serde_saphyr::from_str(text).map_err(|e| LayerOptionsError::Parse(e.to_string()))?;
        let defaults = Self::for_app(app);
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

    fn app() -> AppName {
        AppName::new("hello").unwrap()
    }

    #[test]
    fn reads_the_charm_layer_yaml() {
        let text = include_str!("../../../../layer.yaml");
        assert_eq!(
            LayerOptions::from_yaml(text, &app()).unwrap(),
            LayerOptions::for_app(&app())
        );
    }

    #[test]
    fn defaults_when_absent_and_a_user_per_app() {
        let d = LayerOptions::from_yaml("{}", &app()).unwrap();
        assert_eq!(d, LayerOptions::for_app(&app()));
        assert_eq!(d.username, "wsgi-hello");
        assert_eq!(
            LayerOptions::from_yaml("options: {basic: {use_venv: true}}", &app()).unwrap(),
            d
        );
        let named = LayerOptions::from_yaml("options: {wsgi: {username: web}}", &app()).unwrap();
        assert_eq!(named.username, "web");
        let long = AppName::new(&"a".repeat(60)).unwrap();
        let u = default_user(&long);
        assert!(u.len() <= 32 && is_valid_username(&u), "{u}");
        assert_ne!(u, default_user(&AppName::new(&"a".repeat(59)).unwrap()));
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
                LayerOptions::from_yaml(yaml, &app())
                    .unwrap_err()
                    .to_string(),
                want,
                "{yaml}"
            );
        }
        assert!(matches!(
            LayerOptions::from_yaml("options: [", &app()).unwrap_err(),
            LayerOptionsError::Parse(_)
        ));
    }
}
