//! `/etc/wsgi/<app>/gunicorn.conf.py`, rendered.
//!
//! gunicorn executes this file at start, again on every SIGHUP (`systemctl
//! reload`), and afresh in a master started by SIGUSR2. It re-reads the
//! environment file each time into `raw_env`, which is how environment and
//! DATABASE_URL changes become a reload instead of a restart
//! (hardened-unit.md §2b). Every value from config or relations is written
//! as a Python literal: strings through [`python_str`] (JSON escapes, all
//! valid in Python; tests run the real python3 on the output), numbers as
//! decimal integers.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use super::quote::python_str;
use crate::config::Config;
use crate::config::paths::AppPaths;

/// What gunicorn.conf.py is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GunicornSpec {
    /// Port bound on 0.0.0.0.
    pub port: u16,
    /// Resolved number of workers.
    pub workers: u32,
    /// Worker class.
    pub worker_class: String,
    /// Threads per worker.
    pub threads: u32,
    /// Worker timeout, seconds.
    pub timeout: u32,
    /// Keep-alive, seconds.
    pub keepalive: u32,
    /// Requests before a worker is recycled (0 = never).
    pub max_requests: u32,
    /// Jitter on max_requests (10% of it).
    pub max_requests_jitter: u32,
    /// Addresses (or networks) of the proxies trusted for X-Forwarded-*:
    /// loopback plus the website relation's ingress addresses.
    pub forwarded_allow_ips: Vec<String>,
    /// errorlog/accesslog file; None for `-` (the journal).
    pub log_file: Option<PathBuf>,
    /// `module:callable`.
    pub wsgi_app: String,
    /// gunicorn's `chdir`: the `current` link, resolved again by each new
    /// worker, so a reload serves a newly switched release.
    pub chdir: PathBuf,
    /// The environment file read into `raw_env`.
    pub env_file: PathBuf,
}

/// Why the conf could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gunicorn.conf.py: {0}")]
pub struct GunicornConfError(pub String);

impl GunicornSpec {
    /// The spec from config, paths and the website relation's proxy addresses
    /// (loopback is always trusted, as gunicorn's default does).
    pub fn new(config: &Config, paths: &AppPaths, proxies: &[String]) -> Self {
        let mut ips = vec!["127.0.0.1".to_owned(), "::1".to_owned()];
        for p in proxies {
            if !ips.contains(p) {
                ips.push(p.clone());
            }
        }
        Self {
            port: config.port,
            workers: config.workers,
            worker_class: config.worker_class.clone(),
            threads: config.threads,
            timeout: config.timeout,
            keepalive: config.keepalive,
            max_requests: config.max_requests,
            max_requests_jitter: config.max_requests_jitter(),
            forwarded_allow_ips: ips,
            log_file: config.log_file(paths),
            wsgi_app: config.wsgi_module.clone(),
            chdir: paths.current_app.clone(),
            env_file: paths.env_file.clone(),
        }
    }
}

/// True for an IP address or a network `addr/prefix` gunicorn accepts in
/// forwarded_allow_ips: it checks each with Python's strict
/// `ipaddress.ip_network`, so a network with host bits set (`10.0.0.1/24`)
/// is refused too (gunicorn would exit at start).
pub fn is_ip_or_network(s: &str) -> bool {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return false;
    };
    let Some(prefix) = prefix else {
        return true;
    };
    if prefix.is_empty() || prefix.len() > 3 || !prefix.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let Ok(len) = prefix.parse::<u32>() else {
        return false;
    };
    match ip {
        IpAddr::V4(v4) => len <= 32 && u32::from(v4).checked_shl(len).unwrap_or(0) == 0,
        IpAddr::V6(v6) => len <= 128 && u128::from(v6).checked_shl(len).unwrap_or(0) == 0,
    }
}

/// The Python reader of the environment file and the USR2 hook, verbatim.
/// `_read_env` implements the escaping of [`super::envfile`] (the subset of
/// systemd's EnvironmentFile= rules the charm writes) and never raises: an
/// exception in this file during a reload makes the master exit (outage).
/// On a read error it keeps the last environment read successfully by this
/// master (kept on a module in sys.modules, which survives the re-execution
/// of this file on reload), so a transient error never strips DATABASE_URL.
const PYTHON_BODY: &str = r##"

def _read_env(path):
    # The charm writes one KEY="value" line per variable; inside the quotes a
    # backslash comes before each of " \ ` $ (systemd's EnvironmentFile= rule).
    state = sys.modules.get("_wsgi_charm_env")
    if state is None:
        state = sys.modules["_wsgi_charm_env"] = types.ModuleType("_wsgi_charm_env")
        state.last = []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        pairs = []
        for number, line in enumerate(text.split("\n"), 1):
            if not line or line[0] in "#;":
                continue
            key, sep, rest = line.partition("=")
            value, ok, i = [], False, 1
            if sep and _KEY.fullmatch(key) and rest[:1] == '"':
                while i < len(rest):
                    c = rest[i]
                    if c == "\\" and i + 1 < len(rest):
                        n = rest[i + 1]
                        value.append(n if n in '"\\`$' else c + n)
                        i += 2
                    elif c == '"':
                        ok = i == len(rest) - 1
                        break
                    else:
                        value.append(c)
                        i += 1
            if ok:
                pairs.append(key + "=" + "".join(value))
            else:
                print(f"gunicorn.conf.py: {path}:{number}: not KEY=\"value\", skipped",
                      file=sys.stderr)
    except Exception as e:  # never raise: see above
        print(f"gunicorn.conf.py: cannot read {path}: {e}; keeping the environment read before",
              file=sys.stderr)
        return list(state.last)
    state.last = pairs
    return pairs


raw_env = _read_env(ENV_FILE)


def _trusted(peer, allowed):
    import ipaddress
    if "*" in allowed:
        return True
    try:
        ip = ipaddress.ip_address(peer)
    except ValueError:
        return False
    for net in allowed:
        try:
            if ip in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            pass
    return False


def _client_address(app, allowed):
    # gunicorn takes the scheme from a trusted proxy's X-Forwarded-Proto but
    # leaves REMOTE_ADDR the proxy's. Behind a trusted proxy the client is the
    # address the proxy appended last to X-Forwarded-For.
    def wsgi(environ, start_response):
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded and _trusted(environ.get("REMOTE_ADDR", ""), allowed):
            client = forwarded.split(",")[-1].strip()
            if client:
                environ["REMOTE_ADDR"] = client
        return app(environ, start_response)
    return wsgi


def on_starting(server):
    # gunicorn writes to one place; this adds the log file beside the journal.
    # The master opens it once (workers inherit it); logrotate copytruncates.
    if not LOG_FILE:
        return
    import logging
    try:
        handler = logging.FileHandler(LOG_FILE)
    except OSError as e:
        server.log.warning("cannot open %s: %s; logging to the journal only", LOG_FILE, e)
        return
    handler.setFormatter(logging.Formatter(
        "%(asctime)s [%(process)d] [%(levelname)s] %(message)s", "[%Y-%m-%d %H:%M:%S %z]"))
    logging.getLogger("gunicorn.error").addHandler(handler)
    access = logging.FileHandler(LOG_FILE)
    access.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("gunicorn.access").addHandler(access)


def post_worker_init(worker):
    worker.wsgi = _client_address(worker.wsgi, forwarded_allow_ips.split(","))
    # After a SIGUSR2 re-exec the new master's workers still carry GUNICORN_PID (the old
    # master). Once one of them has imported the app, tell systemd that the new master is
    # the main process (needs NotifyAccess=all). Then the old master can be sent SIGTERM.
    if not os.environ.get("GUNICORN_PID"):
        return
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr[0] == "@":
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(b"MAINPID=%d\nSTATUS=re-executed master serving" % worker.ppid)
    except OSError as e:
        worker.log.warning("cannot notify systemd of the new master: %s", e)
        return
    worker.log.info("told systemd MAINPID=%d", worker.ppid)
"##;

/// Render gunicorn.conf.py.
pub fn render_gunicorn_conf(spec: &GunicornSpec) -> Result<String, GunicornConfError> {
    if let Some(bad) = spec
        .forwarded_allow_ips
        .iter()
        .find(|ip| !is_ip_or_network(ip))
    {
        return Err(GunicornConfError(format!(
            "forwarded_allow_ips: {bad:?} is not an IP address or network"
        )));
    }
    let path = |p: &std::path::Path| {
        p.to_str()
            .map(python_str)
            .ok_or_else(|| GunicornConfError(format!("{p:?} is not UTF-8")))
    };
    // gunicorn logs to stderr (the journal); the log file, when set, gets
    // the same lines through a handler added in on_starting.
    let log = match &spec.log_file {
        Some(p) => path(p)?,
        None => "None".to_owned(),
    };
    // One comma-separated string: gunicorn 27 refuses a list here ("Not a string").
    let ips = python_str(&spec.forwarded_allow_ips.join(","));
    let mut out = String::new();
    // write! to a String cannot fail.
    let _ = write!(
        out,
        "\
# Written by the wsgi charm (wsgi-agent); changes are overwritten.
# gunicorn reads this file at start, again on every SIGHUP (systemctl reload),
# and a master started by SIGUSR2 reads it afresh.
import os
import re
import socket
import sys
import types

ENV_FILE = {env_file}
_KEY = re.compile(r\"[A-Za-z_][A-Za-z0-9_]*\")

wsgi_app = {wsgi_app}
chdir = {chdir}
# The socket is systemd's (LISTEN_FDS); bind names the same address, so a
# reload keeps it instead of binding one of gunicorn's own.
bind = [{bind}]
workers = {workers}
worker_class = {worker_class}
threads = {threads}
timeout = {timeout}
keepalive = {keepalive}
max_requests = {max_requests}
max_requests_jitter = {jitter}
forwarded_allow_ips = {ips}
errorlog = \"-\"
accesslog = \"-\"
LOG_FILE = {log}
capture_output = True
# Off: with preload a reload (HUP) would not re-import the app, and READY
# would wait for the import.
preload_app = False
# USR2 masters would share the socket path; the old one unlinks it on exit.
control_socket_disable = True
",
        env_file = path(&spec.env_file)?,
        wsgi_app = python_str(&spec.wsgi_app),
        chdir = path(&spec.chdir)?,
        bind = python_str(&format!("0.0.0.0:{}", spec.port)),
        workers = spec.workers,
        worker_class = python_str(&spec.worker_class),
        threads = spec.threads,
        timeout = spec.timeout,
        keepalive = spec.keepalive,
        max_requests = spec.max_requests,
        jitter = spec.max_requests_jitter,
    );
    out.push_str(PYTHON_BODY);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]
    use super::*;
    use crate::config::paths::AppName;
    use serde_json::json;
    use std::path::Path;

    fn spec(config: serde_json::Value, proxies: &[&str]) -> GunicornSpec {
        let c = Config::from_json(&config, 2).unwrap();
        let paths = AppPaths::new(Path::new("/srv"), &AppName::new("hello").unwrap()).unwrap();
        let proxies: Vec<String> = proxies
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        GunicornSpec::new(&c, &paths, &proxies)
    }

    #[test]
    fn default_conf() {
        insta::assert_snapshot!(
            "gunicorn_conf_default",
            render_gunicorn_conf(&spec(json!({}), &[])).unwrap()
        );
    }

    #[test]
    fn busy_conf() {
        let s = spec(
            json!({
                "port": 8080, "workers": 9, "worker_class": "gthread", "threads": 4,
                "timeout": 120, "keepalive": 5, "max_requests": 1000,
                "wsgi_module": "myproject.wsgi:application", "wsgi_logfile_path": "",
            }),
            &["10.0.0.9", "fd00::1", "10.1.0.0/16", "10.0.0.9"],
        );
        insta::assert_snapshot!("gunicorn_conf_busy", render_gunicorn_conf(&s).unwrap());
    }

    #[test]
    fn refuses_a_bad_proxy_address() {
        let s = spec(json!({}), &["10.0.0.1\", \"x"]);
        assert_eq!(
            render_gunicorn_conf(&s).unwrap_err().to_string(),
            "gunicorn.conf.py: forwarded_allow_ips: \"10.0.0.1\\\", \\\"x\" is not an IP address or network"
        );
    }

    #[test]
    fn ip_or_network() {
        for ok in [
            "10.0.0.1",
            "::1",
            "10.0.0.0/8",
            "fd00::/64",
            "0.0.0.0/0",
            "10.0.0.1/32",
        ] {
            assert!(is_ip_or_network(ok), "{ok}");
        }
        for bad in [
            "",
            "*",
            "10.0.0.1/33",
            "10.0.0.1/",
            "host",
            "::1/129",
            "1.2.3.4/+1",
        ] {
            assert!(!is_ip_or_network(bad), "{bad}");
        }
    }
}
