//! The unit's log: `tracing` events and panics go to `juju-log` (Juju shows
//! them in `juju debug-log`), and to stderr for a panic. Logging never fails
//! a hook: a `juju-log` that cannot run is ignored.

use tracing::Level;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};

use super::client::HookTools;
use super::runner::ProcessRunner;

/// A juju-log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// `ERROR`
    Error,
    /// `WARNING`
    Warning,
    /// `INFO`
    Info,
    /// `DEBUG`
    Debug,
    /// `TRACE`
    Trace,
}

impl LogLevel {
    /// The word `juju-log --log-level` takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "ERROR",
            LogLevel::Warning => "WARNING",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
            LogLevel::Trace => "TRACE",
        }
    }
}

/// One `juju-log` line; a failure to log is ignored (logging must not fail
/// a hook).
pub fn juju_log(level: LogLevel, message: &str) {
    let _ = HookTools::new(Box::new(ProcessRunner::from_path())).log(level, message);
}

/// Sends tracing events to juju-log at the level `WSGI_AGENT_LOG` names
/// (trace, debug, info, warn, error, off); quiet by default (warnings and
/// errors), since every line is a tool call that lands in the controller's
/// log. Installs a panic hook that logs the panic's message and place.
pub fn init() {
    std::panic::set_hook(Box::new(|info| {
        let message = format!("panic: {info}");
        juju_log(LogLevel::Error, &message);
        eprintln!("wsgi-agent: {message}");
    }));
    let level = match std::env::var("WSGI_AGENT_LOG").as_deref() {
        Ok("trace") => LevelFilter::TRACE,
        Ok("debug") => LevelFilter::DEBUG,
        Ok("info") => LevelFilter::INFO,
        Ok("error") => LevelFilter::ERROR,
        Ok("off") => LevelFilter::OFF,
        _ => LevelFilter::WARN,
    };
    let subscriber = tracing_subscriber::registry().with(JujuLog.with_filter(level));
    // Only fails when one is set already (a test): keep that one.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

struct JujuLog;

impl<S: tracing::Subscriber> Layer<S> for JujuLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        #[derive(Default)]
        struct Message {
            text: String,
            fields: String,
        }
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                if field.name() == "message" {
                    let _ = write!(self.text, "{value:?}");
                } else {
                    let _ = write!(self.fields, " {}={value:?}", field.name());
                }
            }
        }
        let mut m = Message::default();
        event.record(&mut m);
        let level = match *event.metadata().level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warning,
            Level::INFO => LogLevel::Info,
            Level::DEBUG => LogLevel::Debug,
            Level::TRACE => LogLevel::Trace,
        };
        juju_log(level, &format!("{}{}", m.text, m.fields));
    }
}
