//! The socket unit `wsgi-<app>.socket`: systemd listens on the port and
//! passes the socket to gunicorn at each start (gunicorn reads
//! `LISTEN_FDS`). Connections that arrive while gunicorn restarts wait in
//! the socket's backlog instead of being refused, and the service itself
//! binds nothing, so it needs no capability even for port 80.

use crate::config::paths::AppName;

/// Render the socket unit for `app` on `port` (every address, as gunicorn's
/// `bind = 0.0.0.0:<port>`; the conf's bind must name the same address, or
/// gunicorn would bind a socket of its own on reload).
pub fn render_socket(app: &AppName, port: u16) -> String {
    format!(
        "\
# Written by the wsgi charm (wsgi-agent); changes are overwritten.
[Unit]
Description=WSGI application {app} (listening socket)

[Socket]
ListenStream=0.0.0.0:{port}
# As gunicorn's default backlog: connections queue here during a restart.
Backlog=2048
ReusePort=no

[Install]
WantedBy=sockets.target
"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn socket_unit() {
        insta::assert_snapshot!(
            "socket_default",
            render_socket(&AppName::new("hello").unwrap(), 80)
        );
    }
}
