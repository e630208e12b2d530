//! Who listens on a TCP port, from /proc/net/tcp{,6} and /proc/*/fd.

use std::path::Path;

/// The pid of the process with a listening socket on `port` (any address):
/// None when nothing listens, Some(0) when something does but its process
/// is not visible.
pub fn listener_of(port: u16) -> Option<u32> {
    listener_in(Path::new("/proc"), port)
}

fn listener_in(proc: &Path, port: u16) -> Option<u32> {
    let mut inodes: Vec<String> = Vec::new();
    for table in ["net/tcp", "net/tcp6"] {
        let text = std::fs::read_to_string(proc.join(table)).unwrap_or_default();
        inodes.extend(listening_inodes(&text, port));
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let mut pids: Vec<u32> = std::fs::read_dir(proc)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // The lowest pid holding it: a master that forked its workers (which
    // inherit the socket) comes before them.
    pids.sort_unstable();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(proc.join(pid.to_string()).join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && wanted.iter().any(|w| target.as_os_str() == w.as_str())
            {
                return Some(pid);
            }
        }
    }
    Some(0)
}

/// Inodes of sockets in state LISTEN (0A) on `port` in a /proc/net/tcp table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit(':').next()?;
            let listening = *f.get(3)? == "0A";
            (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| f.get(9).map(|s| (*s).to_owned()))
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;

    #[test]
    fn finds_this_process_listening() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(listener_of(port), Some(std::process::id()));
        drop(l);
        // A child another test thread is forking holds a copy of the socket
        // until its exec closes it: wait for that, then nothing listens.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while listener_of(port).is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(listener_of(port), None);
    }

    #[test]
    fn parses_the_table() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                 0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1\n\
                 1: 0100007F:1F90 0100007F:C000 01 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        assert_eq!(listening_inodes(t, 8080), ["12345"]);
        assert!(listening_inodes(t, 80).is_empty());
        assert!(listening_inodes("garbage\n\u{0} x y z\n", 1).is_empty());
    }
}
