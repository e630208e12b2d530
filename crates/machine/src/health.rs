//! The health probe: HTTP GET on loopback until the app answers or the
//! deadline passes. One plain-HTTP request to 127.0.0.1 needs no client
//! library: a status line is all that is read.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::Error;

/// GETs `http://127.0.0.1:port{path}` with bounded backoff until it answers
/// 2xx or 3xx, for at most `timeout`; returns the status line.
pub fn wait_healthy(port: u16, path: &str, timeout: Duration) -> Result<String, Error> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(50);
    // The last HTTP answer says more than a later timeout or refusal.
    let mut answered: Option<String> = None;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let result = probe(
            port,
            path,
            left.clamp(Duration::from_millis(100), Duration::from_secs(5)),
        );
        match result {
            Ok(line) if is_healthy(&line) => return Ok(line),
            Ok(line) => answered = Some(line),
            Err(e) if answered.is_none() && start.elapsed() + pause >= timeout => {
                return Err(Error::Invalid(format!("GET {path} on port {port}: {e}")));
            }
            Err(_) => {}
        }
        if start.elapsed() + pause >= timeout {
            let line = answered.unwrap_or_default();
            return Err(Error::Invalid(format!(
                "GET {path} on port {port} answered {line}"
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

fn is_healthy(status_line: &str) -> bool {
    let code = status_line.split_whitespace().nth(1).unwrap_or("");
    code.starts_with('2') || code.starts_with('3')
}

/// One request; the status line of the answer.
pub fn probe(port: u16, path: &str, timeout: Duration) -> Result<String, std::io::Error> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: wsgi-agent health check\r\n\r\n"
    )?;
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    while !got.contains(&b'\n') && got.len() < 256 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let first = String::from_utf8_lossy(&got);
    let line = first.lines().next().unwrap_or("").trim().to_owned();
    if line.starts_with("HTTP/") && is_healthy(&line) {
        Ok(line)
    } else if line.starts_with("HTTP/") {
        // An error page often says why (the app's exception): keep its start.
        while got.len() < 4096 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&got);
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let snippet: String = body
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        Ok(if snippet.is_empty() {
            line
        } else {
            format!("{line}: {snippet}")
        })
    } else {
        Err(std::io::Error::other(format!(
            "not an HTTP answer: {line:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;
    use std::net::TcpListener;

    fn serve(answer: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let mut b = [0u8; 512];
                let _ = c.read(&mut b);
                let _ = c.write_all(answer.as_bytes());
            }
        });
        port
    }

    #[test]
    fn healthy_on_2xx() {
        let port = serve("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let line = wait_healthy(port, "/", Duration::from_secs(2)).unwrap();
        assert_eq!(line, "HTTP/1.1 200 OK");
    }

    #[test]
    fn a_500_until_the_deadline_names_it() {
        let port = serve(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 40\r\n\r\nerror: InsufficientPrivilege: permission\n denied",
        );
        let e = wait_healthy(port, "/health", Duration::from_millis(400)).unwrap_err();
        assert!(e.to_string().contains("500 Internal Server Error"), "{e}");
        assert!(
            e.to_string()
                .contains("error: InsufficientPrivilege: permission denied"),
            "{e}"
        );
        assert!(e.to_string().contains("/health"), "{e}");
    }

    #[test]
    fn nothing_listening_is_refused_within_the_deadline() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Instant::now();
        let e = wait_healthy(port, "/", Duration::from_millis(500)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(3));
        assert!(e.to_string().contains("refused"), "{e}");
    }
}
